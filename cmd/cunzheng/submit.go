package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/cunzheng/cunzheng/api/client"
	"github.com/cunzheng/cunzheng/evidence"
	"github.com/cunzheng/cunzheng/evidence/verify"
)

// receiptSuffix names the receipt written beside each evidence file.
const receiptSuffix = ".receipt"

// submitOptions are the submit command's flags.
type submitOptions struct {
	nodeURL, keyPath, genesis string
	caseRef, title, url       string
	device, kind              string
	json                      bool
}

// submitResult is one file's outcome; --json prints it as one line.
type submitResult struct {
	File     string `json:"file"`
	Receipt  string `json:"receipt,omitempty"`
	RecordID string `json:"record_id,omitempty"`
	Index    uint64 `json:"index"`
	Digest   string `json:"digest,omitempty"`
	Size     uint64 `json:"size"`
	Time     string `json:"time,omitempty"` // leader's received time, RFC 3339 UTC
	// Final is false for a committed receipt (no final checkpoint yet:
	// `cunzheng receipt refresh` later); TokenTime is 存证时间 from the
	// receipt's timestamp token, RFC 3339 UTC, when it has one.
	Final     bool   `json:"final"`
	TokenTime string `json:"token_time,omitempty"`
	Serial    string `json:"token_serial,omitempty"`
	Node      string `json:"-"`
	Existing  bool   `json:"existing"`
	Opening   bool   `json:"opening"` // the receipt carries the metadata opening
	Network   string `json:"network,omitempty"`
	Error     string `json:"error,omitempty"`
	Warning   string `json:"warning,omitempty"`
}

func (a *app) submitCommand() *cobra.Command {
	var o submitOptions
	c := &cobra.Command{
		Use:   "submit --node URL --key KEY [flags] FILE...",
		Short: "Preserve evidence files and write a receipt beside each",
		Long: `Preserve evidence files. Each file is hashed here (SHA-256, streaming); only
its digest, size, kind and a salted commitment to the metadata (--case,
--title, --url, --device, and the file's name) are signed with your key and
sent. The file itself never leaves this machine.

For each FILE the node's receipt is verified locally against the network's
genesis fingerprint, the metadata opening is added, and the result is written
to FILE.receipt. Submitting the same file again with the same key and
metadata returns the same record and writes a byte-identical receipt.

Without --genesis the node's own manifest is trusted for this check; its
fingerprint is printed so you can compare it with the one the network
publishes.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErrorf("%s needs at least one FILE", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireFlags(cmd, "node", "key"); err != nil {
				return err
			}
			return a.submit(cmd.Context(), o, args)
		},
	}
	f := c.Flags()
	f.StringVar(&o.nodeURL, "node", "", "node URL, e.g. http://127.0.0.1:8080")
	f.StringVar(&o.keyPath, "key", "", "submitter private key file (cunzheng keygen submitter)")
	f.StringVar(&o.genesis, "genesis", "", "expected genesis fingerprint (64 hex digits)")
	f.StringVar(&o.caseRef, "case", "", "case reference, e.g. (2026)京0491民初123号")
	f.StringVar(&o.title, "title", "", "title or description of the evidence")
	f.StringVar(&o.url, "url", "", "URL captured, for web evidence")
	f.StringVar(&o.device, "device", "", "capture device or tool")
	f.StringVar(&o.kind, "kind", "file", "evidence kind: file, web-capture, video, audio, image, document, chat-log, email")
	f.BoolVar(&o.json, "json", false, "print one JSON object per file")
	return c
}

func (a *app) submit(ctx context.Context, o submitOptions, files []string) error {
	kind, err := evidence.ParseKind(o.kind)
	if err != nil {
		return usageErrorf("--kind: %v", err)
	}
	pinned, err := parseGenesisFlag(o.genesis)
	if err != nil {
		return err
	}
	cl, err := newClient(o.nodeURL)
	if err != nil {
		return err
	}
	priv, err := loadPrivateKey(o.keyPath)
	if err != nil {
		return err
	}
	m, fp, err := nodeManifest(ctx, cl, pinned)
	if err != nil {
		return err
	}
	if pinned == nil && !o.json {
		fmt.Fprintf(a.stderr, "network %s (%s), as the node reports it; pass --genesis to pin it\n", fp, m.Origin)
	}
	var progress io.Writer
	if a.stderrTTY && !o.json {
		progress = a.stderr
	}
	failed := 0
	for _, file := range files {
		res := a.submitFile(ctx, cl, o, kind, priv, m, fp, file, progress)
		if res.Error != "" {
			failed++
		}
		a.printSubmitResult(o.json, res)
	}
	if failed > 0 {
		if o.json {
			return errReported
		}
		return fmt.Errorf("%d of %d files not preserved", failed, len(files))
	}
	return nil
}

// submitFile preserves one file and writes its receipt. Errors are returned
// inside the result so the other files still go through.
func (a *app) submitFile(ctx context.Context, cl *client.Client, o submitOptions, kind evidence.Kind,
	priv ed25519.PrivateKey, m *evidence.Manifest, fp evidence.Fingerprint, file string, progress io.Writer) *submitResult {
	res := &submitResult{File: file, Network: fp.String()}
	fail := func(err error) *submitResult {
		res.Error = oneLine(err.Error())
		return res
	}
	d, err := hashFile(file, progress)
	if err != nil {
		return fail(err)
	}
	res.Digest, res.Size = hex.EncodeToString(d.SHA256), d.Size
	op := &evidence.Opening{
		CaseRef:  o.caseRef,
		Title:    o.title,
		URL:      o.url,
		Device:   o.device,
		FileName: filepath.Base(file),
	}
	// The salt is derived from the private key and the file, so the same file
	// and metadata always give the same Submission, and so the same receipt.
	if err := op.DeriveSalt(priv.Seed(), d.SHA256); err != nil {
		return fail(fmt.Errorf("metadata: %w", err))
	}
	opening, err := op.Marshal()
	if err != nil {
		return fail(fmt.Errorf("metadata: %w", err))
	}
	commitment, err := op.Commitment()
	if err != nil {
		return fail(fmt.Errorf("metadata: %w", err))
	}
	signer := evidence.Ed25519Signer{Key: priv}
	sub := &evidence.Submission{
		Digests:    []evidence.Digest{{Alg: evidence.SHA256, Value: d.SHA256}},
		Kind:       kind,
		Size:       d.Size,
		Submitter:  signer.Public(),
		Commitment: commitment,
	}
	if err := sub.Sign(m.Origin, signer); err != nil {
		return fail(err)
	}
	subBytes, err := sub.Marshal()
	if err != nil {
		return fail(err)
	}
	resp, err := cl.Submit(ctx, subBytes)
	if err != nil {
		return fail(err)
	}
	res.Index, res.RecordID, res.Existing = resp.Index, resp.RecordID, resp.Existing
	rc, err := evidence.ParseReceipt([]byte(resp.Receipt))
	if err != nil {
		return fail(fmt.Errorf("node's receipt: %w", err))
	}
	if bytes.Equal(rc.Submission, subBytes) {
		rc.Opening = opening
		res.Opening = true
	} else {
		// An earlier submission of this file by this key, with other
		// metadata: its opening was in the receipt written back then.
		rc.Opening = nil
		res.Warning = "this file was already preserved by this key with other metadata; the receipt is for that earlier record and carries no metadata opening (use the earlier receipt for it)"
	}
	receipt := rc.Marshal()
	vr := verify.Receipt(receipt, d.SHA256, fp)
	if !vr.OK() && vr.Verdict != verify.Committed {
		return fail(fmt.Errorf("the node's receipt does not verify, not writing it: %s", vr.Reason))
	}
	res.RecordID, res.Index, res.Final, res.Node = vr.RecordID, uint64(vr.Index), vr.OK(), cl.URL()
	res.Time = vr.LeaderTime.UTC().Format(time.RFC3339Nano)
	if tok := vr.Timestamp; tok != nil {
		res.TokenTime, res.Serial = tok.Time.UTC().Format(time.RFC3339Nano), tok.Serial
	}
	path := file + receiptSuffix
	// An existing receipt is replaced only by identical bytes: a receipt
	// carrying a metadata opening must never be lost to one without it.
	// A committed receipt, or one without a token, may be upgraded.
	if old, err := os.ReadFile(path); err == nil && !bytes.Equal(old, receipt) && !receiptUpgrade(old, receipt) {
		why := "differs from the node's receipt for this record"
		if !res.Opening {
			why = "differs: this key preserved this file earlier with other metadata, and the node returned that record"
		}
		return fail(fmt.Errorf("%s exists and %s; not overwriting it (move it away to write a new one)", path, why))
	}
	if err := writeFileAtomic(path, receipt, 0o644); err != nil {
		return fail(fmt.Errorf("write receipt: %w", err))
	}
	res.Receipt = path
	return res
}

func (a *app) printSubmitResult(asJSON bool, r *submitResult) {
	if r.Error != "" {
		fmt.Fprintf(a.stderr, "cunzheng: %s: %s\n", r.File, r.Error)
	}
	if asJSON {
		b, _ := json.Marshal(r)
		fmt.Fprintf(a.stdout, "%s\n", b)
		return
	}
	if r.Error != "" {
		return
	}
	if r.Warning != "" {
		fmt.Fprintf(a.stderr, "warning: %s: %s\n", r.File, r.Warning)
	}
	status := "preserved"
	if r.Existing {
		status = "already preserved"
	}
	t, _ := time.Parse(time.RFC3339Nano, r.Time)
	fmt.Fprintf(a.stdout, "%s %s\n  record ID  %s\n  index      %d\n  sha256     %s\n", status, r.File, r.RecordID, r.Index, r.Digest)
	if r.TokenTime != "" {
		tt, _ := time.Parse(time.RFC3339Nano, r.TokenTime)
		fmt.Fprintf(a.stdout, "  存证时间   %s (trusted timestamp, token serial %s)\n", formatTime(tt), r.Serial)
		fmt.Fprintf(a.stdout, "  leader     %s (leader's received time)\n", formatTime(t))
	} else {
		fmt.Fprintf(a.stdout, "  time       %s (leader's received time)\n", formatTime(t))
	}
	fmt.Fprintf(a.stdout, "  receipt    %s\n", r.Receipt)
	if !r.Final {
		fmt.Fprintf(a.stdout, "  status     committed, not yet final (已提交，尚未最终确认): run cunzheng receipt refresh --receipt %s --node %s\n",
			shellQuote(r.Receipt), r.Node)
	}
}

// receiptUpgrade reports whether next is a better receipt for the same
// record than old: final where old was committed, or the same proof with a
// timestamp token where old had none; metadata opening unchanged.
func receiptUpgrade(old, next []byte) bool {
	o, err1 := evidence.ParseReceipt(old)
	n, err2 := evidence.ParseReceipt(next)
	if err1 != nil || err2 != nil || o.Network != n.Network || !bytes.Equal(o.Submission, n.Submission) ||
		!bytes.Equal(o.Leaf, n.Leaf) || !bytes.Equal(o.Opening, n.Opening) {
		return false
	}
	if o.Committed != nil {
		return n.Committed == nil
	}
	return len(o.Timestamps) == 0 && len(n.Timestamps) > 0 && bytes.Equal(o.Proof, n.Proof)
}

// formatTime shows t in UTC+08:00, the zone 存证时间 is shown in (DESIGN §5),
// and in UTC.
func formatTime(t time.Time) string {
	const layout = "2006-01-02 15:04:05.000"
	return t.In(utcPlus8).Format(layout) + " UTC+08:00 (" + t.UTC().Format(layout) + " UTC)"
}

// utcPlus8 is the zone 存证时间 is shown in.
var utcPlus8 = time.FixedZone("UTC+08:00", 8*60*60)
