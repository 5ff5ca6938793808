package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cunzheng/cunzheng/evidence"
	"github.com/cunzheng/cunzheng/evidence/tsa"
	"github.com/cunzheng/cunzheng/evidence/verify"
)

func (a *app) receiptCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "receipt",
		Short: "Work with receipt files (export, refresh)",
	}
	groupCommand(c)
	c.AddCommand(a.receiptExportCommand(), a.receiptRefreshCommand())
	return c
}

type receiptExportOptions struct {
	receipt, out, genesis string
}

func (a *app) receiptExportCommand() *cobra.Command {
	var o receiptExportOptions
	c := &cobra.Command{
		Use:   "export --receipt R --out DIR [--genesis FP]",
		Short: "Write a receipt's parts as plain files, for checking with other tools (openssl)",
		Long: `Verify a receipt, then write its parts to DIR as plain files, so they can be
checked without cunzheng:

  leaf.bin, submission.bin   the canonical leaf and Submission
  opening.bin                the metadata opening (when the receipt has it)
  tlog-proof.txt             the C2SP tlog-proof@v1 block, verbatim
  checkpoint.txt             the checkpoint body the time service stamped
  token.der, token.tsr       the RFC 3161 token, bare and as a TimeStampResp
  tsa.pem                    the time service's signing certificate
  ca.pem, tsa-chain.pem      for a CA-issued certificate: the root, and the
                             certificates between it and the signing one
  genesis.json, manifest-vN.json
                             the manifest chain, as manifest files
  newer-checkpoint.note, newer-checkpoint.txt, consistency-proof.txt,
  newer-token.der            for an extended receipt: the newer checkpoint
                             as signed and its body, the RFC 6962
                             consistency proof (base64 hashes, one a line)
                             from the tree of checkpoint.txt to it, and the
                             token over newer-checkpoint.txt (when there is
                             one)

and print the openssl ts -verify command that checks the token over
checkpoint.txt. Once the time service's certificate has expired, openssl
needs -attime with the token's time; the command printed includes it then.

The receipt is verified first (against --genesis; without it, against the
network the receipt names, which only checks it is self-consistent) and
nothing is written unless it verifies. Existing files in DIR are never
overwritten. The evidence file itself is not needed nor checked here: use
cunzheng verify for that.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "receipt", "out"); err != nil {
				return err
			}
			return a.exportReceipt(o)
		},
	}
	f := c.Flags()
	f.StringVar(&o.receipt, "receipt", "", "receipt file")
	f.StringVar(&o.out, "out", "", "directory to write the parts to (created if missing)")
	f.StringVar(&o.genesis, "genesis", "", "pinned genesis fingerprint (64 hex digits)")
	return c
}

// verifiedReceipt reads and verifies a receipt file against --genesis, or
// the network the receipt names when genesis is empty (a warning says so).
// The evidence file is not at hand, so the digest check is made against the
// Submission's own digest: every other check stands.
func (a *app) verifiedReceipt(path, genesis string) (*evidence.Receipt, *verify.Result, []byte, error) {
	pinned, err := parseGenesisFlag(genesis)
	if err != nil {
		return nil, nil, nil, err
	}
	raw, err := readSmallFile(path, evidence.MaxReceiptSize)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("receipt: %w", err)
	}
	rc, err := evidence.ParseReceipt(raw)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("receipt %s: %w", path, err)
	}
	sub, err := evidence.ParseSubmission(rc.Submission)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("receipt %s: submission: %w", path, err)
	}
	if pinned == nil {
		pinned = &rc.Network
		fmt.Fprintf(a.stderr, "cunzheng: warning: network %s, as the receipt states it; pass --genesis to pin it\n", rc.Network)
	}
	return rc, verify.Receipt(raw, sub.Primary(), *pinned), raw, nil
}

// exportFile is one file receipt export writes.
type exportFile struct {
	name string
	data []byte
}

func (a *app) exportReceipt(o receiptExportOptions) error {
	rc, res, _, err := a.verifiedReceipt(o.receipt, o.genesis)
	if err != nil {
		return err
	}
	switch res.Verdict {
	case verify.Verified:
	case verify.Committed:
		return fmt.Errorf("%s is a committed receipt (record %d): it has no proof and no timestamp token yet; run cunzheng receipt refresh first", o.receipt, res.Index)
	default:
		return fmt.Errorf("%s does not verify, not exporting it: %s", o.receipt, oneLine(res.Reason))
	}
	files := []exportFile{{"leaf.bin", rc.Leaf}, {"submission.bin", rc.Submission}}
	if rc.Opening != nil {
		files = append(files, exportFile{"opening.bin", rc.Opening})
	}
	files = append(files, exportFile{"tlog-proof.txt", rc.Proof}, exportFile{"checkpoint.txt", []byte(res.Checkpoint)})
	if rc.Extension != nil {
		ext, err := evidence.ParseExtension(rc.Extension)
		if err != nil {
			return fmt.Errorf("receipt extension: %w", err)
		}
		var proof strings.Builder
		for _, h := range ext.Consistency {
			proof.WriteString(base64.StdEncoding.EncodeToString(h[:]) + "\n")
		}
		files = append(files, exportFile{"newer-checkpoint.note", ext.Checkpoint}, exportFile{"newer-checkpoint.txt", []byte(res.Extended.Checkpoint)},
			exportFile{"consistency-proof.txt", []byte(proof.String())})
		if len(ext.Timestamps) > 0 {
			files = append(files, exportFile{"newer-token.der", ext.Timestamps[0]})
		}
	}
	for i, canon := range rc.Manifests {
		m, err := evidence.ParseManifest(canon)
		if err != nil {
			return fmt.Errorf("receipt manifest %d: %w", i+1, err)
		}
		mf, err := evidence.MarshalManifestFile(m)
		if err != nil {
			return err
		}
		name := "genesis.json"
		if i > 0 {
			name = fmt.Sprintf("manifest-v%d.json", m.Sequence)
		}
		files = append(files, exportFile{name, mf})
	}
	var plan *opensslPlan
	if res.Timestamp != nil {
		if plan, err = planOpenSSL(rc, res, o.out, a.now()); err != nil {
			return err
		}
		files = append(files, plan.files...)
	}
	if err := writeNewFiles(o.out, files); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "exported record %s (index %d) from %s to %s:\n", res.RecordID, res.Index, o.receipt, o.out)
	for _, f := range files {
		fmt.Fprintf(a.stdout, "  %s\n", filepath.Join(o.out, f.name))
	}
	if plan == nil {
		fmt.Fprintf(a.stdout, "\nthe receipt carries no timestamp token: there is nothing to check with openssl (%s)\n",
			oneLine(checkDetail(res, verify.CheckTimestamp)))
		return nil
	}
	tok := res.Timestamp
	fmt.Fprintf(a.stdout, "\n存证时间 %s, RFC 3161 token serial %s by %s\n", formatTime(tok.Time), tok.Serial, tok.Authority)
	fmt.Fprintf(a.stdout, "check the token with openssl (it signs SHA-256 of checkpoint.txt):\n  %s\n", plan.command())
	for _, n := range plan.notes {
		fmt.Fprintf(a.stdout, "note: %s\n", n)
	}
	return nil
}

// opensslPlan is what openssl ts -verify needs for a receipt's token.
type opensslPlan struct {
	files []exportFile
	args  []string // after "openssl"
	notes []string
}

func (p *opensslPlan) command() string {
	q := make([]string, len(p.args))
	for i, s := range p.args {
		q[i] = shellQuote(s)
	}
	return "openssl " + strings.Join(q, " ")
}

// planOpenSSL picks the receipt's earliest token (the one the verdict
// rests on), the time service's certificates from the manifest in force,
// and the openssl arguments: a self-signed certificate is its own CAfile;
// a CA-issued one has its root as CAfile and the rest as -untrusted. When
// a certificate has expired by now, -attime is the token's time.
func planOpenSSL(rc *evidence.Receipt, res *verify.Result, dir string, now time.Time) (*opensslPlan, error) {
	var token []byte
	for _, t := range rc.Timestamps {
		if got, err := evidence.VerifyToken(t, []byte(res.Checkpoint), res.CheckpointManifest); err == nil && *got == *res.Timestamp {
			token = t
			break
		}
	}
	if token == nil {
		return nil, errors.New("the receipt's earliest timestamp token is not among its tokens (verifier changed underfoot?)")
	}
	var member *evidence.Member
	for _, m := range res.CheckpointManifest.TimeServices() {
		if m.Name == res.Timestamp.Authority {
			member = &m
			break
		}
	}
	if member == nil {
		return nil, fmt.Errorf("time service %q is not in manifest version %d", res.Timestamp.Authority, res.CheckpointManifest.Sequence)
	}
	certs := make([]*x509.Certificate, len(member.TSACerts))
	for i, der := range member.TSACerts {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("time service %s certificate %d: %w", member.Name, i+1, err)
		}
		certs[i] = c
	}
	tsr, err := tsa.WrapResponse(token)
	if err != nil {
		return nil, err
	}
	p := &opensslPlan{files: []exportFile{{"token.der", token}, {"token.tsr", tsr}, {"tsa.pem", pemCerts(certs[:1])}}}
	path := func(name string) string { return filepath.Join(dir, name) }
	p.args = []string{"ts", "-verify", "-in", path("token.tsr"), "-data", path("checkpoint.txt")}
	last := certs[len(certs)-1]
	switch {
	case len(certs) == 1 && selfSigned(last):
		p.args = append(p.args, "-CAfile", path("tsa.pem"))
	case selfSigned(last):
		p.files = append(p.files, exportFile{"ca.pem", pemCerts(certs[len(certs)-1:])},
			exportFile{"tsa-chain.pem", pemCerts(certs[:len(certs)-1])})
		p.args = append(p.args, "-CAfile", path("ca.pem"), "-untrusted", path("tsa-chain.pem"))
	default:
		// The manifest pins the chain only up to a certificate its issuer
		// signed: the root has to come from the CA itself.
		p.files = append(p.files, exportFile{"tsa-chain.pem", pemCerts(certs)})
		p.args = append(p.args, "-CAfile", "ROOT-CA.pem", "-untrusted", path("tsa-chain.pem"))
		p.notes = append(p.notes, fmt.Sprintf("the manifest does not list the root CA that issued %q: put it in ROOT-CA.pem, from the CA", last.Issuer))
	}
	notAfter := certs[0].NotAfter
	for _, c := range certs[1:] {
		if c.NotAfter.Before(notAfter) {
			notAfter = c.NotAfter
		}
	}
	at := strconv.FormatInt(res.Timestamp.Time.Unix(), 10)
	if now.After(notAfter) {
		p.args = append(p.args, "-attime", at)
		p.notes = append(p.notes, fmt.Sprintf("the time service's certificate expired %s, so the command checks it at the token's time (-attime %s)",
			notAfter.UTC().Format(time.RFC3339), at))
	} else {
		p.notes = append(p.notes, fmt.Sprintf("once the time service's certificate expires (%s), add -attime %s (the token's time) to the command",
			notAfter.UTC().Format(time.RFC3339), at))
	}
	return p, nil
}

// selfSigned reports whether c signs itself. CheckSignatureFrom would also
// want c to be a CA, which a self-signed TSA certificate is not.
func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil
}

func pemCerts(certs []*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// writeNewFiles writes files into dir, creating it if needed. None of them
// may exist yet: it checks all before writing any, and each is created
// exclusively, so a file that appears meanwhile is not overwritten either.
func writeNewFiles(dir string, files []exportFile) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s exists; not overwriting it (export to an empty directory)", p)
		}
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		fh, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return err
		}
		_, err = fh.Write(f.data)
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	return nil
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_./:=+,@%-]+$`)

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func checkDetail(res *verify.Result, name string) string {
	for _, c := range res.Checks {
		if c.Name == name {
			return c.Detail
		}
	}
	return ""
}

type receiptRefreshOptions struct {
	receipt, nodeURL, genesis, out string
	extend                         bool
}

// exitPending is receipt refresh's exit code when the node has nothing
// better than the receipt already held.
const exitPending = 3

func (a *app) receiptRefreshCommand() *cobra.Command {
	var o receiptRefreshOptions
	c := &cobra.Command{
		Use:   "refresh --receipt R --node URL [--genesis FP] [--out FILE] [--extend]",
		Short: "Turn a committed receipt into a final one, add its timestamp token, or extend it to a newer checkpoint",
		Long: `Fetch the current receipt of a record whose receipt is committed (no final
checkpoint yet) or final without a timestamp token. The receipt's own
Submission is sent again to the node (POST /v1/submissions); the network
recognises it and answers with the same record's best receipt. The old
receipt's metadata opening is kept (nodes never hold it).

Both receipts are verified against the pinned network (--genesis; without
it, the network the receipt names), the node must serve that network, and
the new receipt must be for the same record (same index, same leaf).
It is then written to --out, or replaces R atomically.

With --extend, a receipt that is already complete (final and timestamped,
or final in a network without a time service) is extended instead: the
node's latest final checkpoint, its first timestamp token (when it has
one yet), the consistency proof from the tree of the receipt's own
checkpoint to it, and the manifest chain up to the version in force there
go into the receipt's extension line. The receipt's proof, checkpoint and
original token stay as issued, and its time claim stays the original
token's; an existing extension is replaced, always extending from the
receipt's own checkpoint. Extending is never automatic: it changes a
receipt that already proves what it should. A receipt that is not yet
complete is refreshed as without --extend; run again to extend it.

Exit codes: 0 refreshed or extended, or nothing to refresh; 1 failed or
refused; 2 usage error; 3 the node has nothing newer yet (still committed,
still no token, or no checkpoint newer than the receipt's): nothing
written, try again later.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "receipt", "node"); err != nil {
				return err
			}
			return a.refreshReceipt(cmd.Context(), o)
		},
	}
	f := c.Flags()
	f.StringVar(&o.receipt, "receipt", "", "receipt file to refresh")
	f.StringVar(&o.nodeURL, "node", "", "node URL")
	f.StringVar(&o.genesis, "genesis", "", "pinned genesis fingerprint (64 hex digits)")
	f.StringVar(&o.out, "out", "", "write the new receipt here instead of replacing R")
	f.BoolVar(&o.extend, "extend", false, "extend a complete receipt to the node's latest final checkpoint")
	return c
}

func (a *app) refreshReceipt(ctx context.Context, o receiptRefreshOptions) error {
	cl, err := newClient(o.nodeURL)
	if err != nil {
		return err
	}
	if o.out != "" && o.out != o.receipt {
		if _, err := os.Lstat(o.out); !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s exists; not overwriting it", o.out)
		}
	}
	rc, old, _, err := a.verifiedReceipt(o.receipt, o.genesis)
	if err != nil {
		return err
	}
	pinned, _ := evidence.ParseFingerprint(old.Network)
	if old.Verdict != verify.Committed && old.Verdict != verify.Verified {
		return fmt.Errorf("%s does not verify against network %s, not refreshing it: %s", o.receipt, old.Network, oneLine(old.Reason))
	}
	if _, _, err := nodeManifest(ctx, cl, &pinned); err != nil {
		return err
	}
	complete := old.Verdict == verify.Verified && (old.Timestamp != nil || len(old.Manifest.TimeServices()) == 0)
	switch {
	case complete && o.extend:
		return a.extendReceipt(ctx, cl, o, rc, old, pinned)
	case old.Verdict == verify.Committed:
	case old.Verdict == verify.Verified && old.Timestamp != nil:
		fmt.Fprintf(a.stdout, "%s is final and timestamped (存证时间 %s): nothing to refresh\n", o.receipt, formatTime(old.Timestamp.Time))
		return nil
	case old.Verdict == verify.Verified && len(old.Manifest.TimeServices()) == 0:
		fmt.Fprintf(a.stdout, "%s is final, and network %s has no time service to add a token: nothing to refresh\n", o.receipt, old.Origin)
		return nil
	}
	resp, err := cl.Submit(ctx, rc.Submission)
	if err != nil {
		return err
	}
	nrc, err := evidence.ParseReceipt([]byte(resp.Receipt))
	if err != nil {
		return fmt.Errorf("node's receipt: %w", err)
	}
	if !bytes.Equal(nrc.Submission, rc.Submission) || !bytes.Equal(nrc.Leaf, rc.Leaf) {
		return fmt.Errorf("node %s answered with a receipt for another record (index %d), not this one (index %d)", cl.URL(), resp.Index, old.Index)
	}
	nrc.Opening = rc.Opening
	receipt := nrc.Marshal()
	sub := old.Submission
	res := verify.Receipt(receipt, sub.Primary(), pinned)
	if res.Verdict != verify.Verified && res.Verdict != verify.Committed {
		return fmt.Errorf("node %s's receipt does not verify, not writing it: %s", cl.URL(), oneLine(res.Reason))
	}
	if res.Index != old.Index {
		return fmt.Errorf("node %s answered for index %d, the receipt is for index %d", cl.URL(), res.Index, old.Index)
	}
	var changes []string
	if old.Verdict == verify.Committed && res.Verdict == verify.Verified {
		changes = append(changes, fmt.Sprintf("committed → final: index %d in a tree of size %d, signed by %s",
			res.Index, res.TreeSize, strings.Join(res.Signers, ", ")))
	}
	if res.Timestamp != nil {
		changes = append(changes, fmt.Sprintf("timestamp token added: 存证时间 %s, token serial %s by %s",
			formatTime(res.Timestamp.Time), res.Timestamp.Serial, res.Timestamp.Authority))
	}
	if len(changes) == 0 {
		what := "still only committed (已提交，尚未最终确认): no final checkpoint covers it yet"
		if res.Verdict == verify.Verified {
			what = "final, but still without a timestamp token"
		}
		fmt.Fprintf(a.stdout, "record %s is %s; %s is unchanged, try again later\n", res.RecordID, what, o.receipt)
		return &exitError{code: exitPending}
	}
	target, err := writeReceipt(o, receipt)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "refreshed record %s, wrote %s\n", res.RecordID, target)
	for _, c := range changes {
		fmt.Fprintf(a.stdout, "  %s\n", c)
	}
	if res.Timestamp == nil && len(res.Manifest.TimeServices()) > 0 {
		fmt.Fprintln(a.stdout, "  no timestamp token yet: refresh again later to add it")
	}
	if o.extend {
		fmt.Fprintln(a.stdout, "  not extended: the receipt was not complete; refresh --extend again to extend it")
	}
	return nil
}

// writeReceipt writes a refreshed receipt to --out, or atomically over
// --receipt, keeping its permissions, and returns the path written.
func writeReceipt(o receiptRefreshOptions, receipt []byte) (string, error) {
	target := o.out
	if target == "" {
		target = o.receipt
	}
	perm := os.FileMode(0o644)
	if fi, err := os.Stat(o.receipt); err == nil {
		perm = fi.Mode().Perm()
	}
	if err := writeFileAtomic(target, receipt, perm); err != nil {
		return "", fmt.Errorf("write %s: %w", target, err)
	}
	return target, nil
}
