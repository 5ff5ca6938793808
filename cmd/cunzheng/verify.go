package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cunzheng/cunzheng/api/client"
	"github.com/cunzheng/cunzheng/evidence"
	"github.com/cunzheng/cunzheng/evidence/verify"
)

type verifyOptions struct {
	receipt, nodeURL  string
	genesis, manifest string
	json              bool
}

func (a *app) verifyCommand() *cobra.Command {
	var o verifyOptions
	c := &cobra.Command{
		Use:   "verify (--receipt R | --node URL) (--genesis FP | --manifest genesis.json) FILE",
		Short: "Verify that a file was preserved (核验), offline from a receipt or against a node",
		Long: `Verify that FILE is the evidence preserved on the network pinned by its
genesis fingerprint (--genesis, or --manifest with the genesis.json file whose
fingerprint is printed). Trust starts only there: never at a manifest the
receipt or a node supplies.

With --receipt, nothing touches the network: the file is hashed and every
check is run against the receipt and printed by name — receipt format,
manifest, submission signature, metadata opening, leaf, digest matches,
inclusion proof, checkpoint signatures vs policy — followed by a verdict.

With --node, the node is asked whether the file's SHA-256 is preserved
(no receipt needed; the node learns only the digest) and each record it
returns is verified here in the same way.

Exit codes: 0 VERIFIED, 1 NOT VERIFIED (mismatch, invalid proof, or not
preserved), 2 usage error.`,
		Args: exactArgs(1, "one evidence FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (o.receipt == "") == (o.nodeURL == "") {
				return usageErrorf("verify needs exactly one of --receipt (offline) or --node")
			}
			if (o.genesis == "") == (o.manifest == "") {
				return usageErrorf("verify needs exactly one of --genesis FINGERPRINT or --manifest genesis.json: the network to trust")
			}
			fp, err := a.pinnedNetwork(o)
			if err != nil {
				return err
			}
			if o.nodeURL != "" {
				return a.verifyAtNode(cmd.Context(), o, fp, args[0])
			}
			return a.verifyReceipt(o, fp, args[0])
		},
	}
	f := c.Flags()
	f.StringVar(&o.receipt, "receipt", "", "receipt file (offline verification)")
	f.StringVar(&o.nodeURL, "node", "", "node URL: look the file's digest up instead of using a receipt")
	f.StringVar(&o.genesis, "genesis", "", "pinned genesis fingerprint (64 hex digits)")
	f.StringVar(&o.manifest, "manifest", "", "genesis manifest file (genesis.json) to pin instead of --genesis")
	f.BoolVar(&o.json, "json", false, "print the structured result as JSON")
	return c
}

// pinnedNetwork resolves --genesis or --manifest to the fingerprint to trust.
func (a *app) pinnedNetwork(o verifyOptions) (evidence.Fingerprint, error) {
	if o.genesis != "" {
		fp, err := parseGenesisFlag(o.genesis)
		if err != nil {
			return evidence.Fingerprint{}, err
		}
		return *fp, nil
	}
	m, fp, err := loadManifestFile(o.manifest)
	if err != nil {
		return fp, err
	}
	if !o.json {
		fmt.Fprintf(a.stdout, "manifest     %s: genesis fingerprint %s (network %s)\n", o.manifest, fp, m.Origin)
	}
	return fp, nil
}

func (a *app) verifyReceipt(o verifyOptions, fp evidence.Fingerprint, file string) error {
	receipt, err := readSmallFile(o.receipt, evidence.MaxReceiptSize)
	if err != nil {
		return fmt.Errorf("receipt: %w", err)
	}
	d, err := a.hashForVerify(o, file)
	if err != nil {
		return err
	}
	res := verify.Receipt(receipt, d.SHA256, fp)
	if o.json {
		if err := writeJSON(a.stdout, withTimes(res)); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(a.stdout, "file         %s\nsha256       %x\nreceipt      %s\n", file, d.SHA256, o.receipt)
		printResult(a.stdout, res)
	}
	if !res.OK() {
		return errReported
	}
	return nil
}

// lookupOutput is the --json form of verify --node.
type lookupOutput struct {
	Digest    string       `json:"digest"`
	Network   string       `json:"network"`
	Preserved bool         `json:"preserved"`
	Verified  bool         `json:"verified"`
	Results   []resultJSON `json:"results"`
}

func (a *app) verifyAtNode(ctx context.Context, o verifyOptions, fp evidence.Fingerprint, file string) error {
	cl, err := newClient(o.nodeURL)
	if err != nil {
		return err
	}
	d, err := a.hashForVerify(o, file)
	if err != nil {
		return err
	}
	out := lookupOutput{Digest: hex.EncodeToString(d.SHA256), Network: fp.String(), Results: []resultJSON{}}
	if !o.json {
		fmt.Fprintf(a.stdout, "file         %s\nsha256       %x\nnode         %s\n", file, d.SHA256, cl.URL())
	}
	resp, err := cl.Lookup(ctx, d.SHA256)
	if errors.Is(err, client.ErrNotFound) {
		if o.json {
			return errors.Join(writeJSON(a.stdout, out), errReported)
		}
		fmt.Fprintf(a.stdout, "NOT VERIFIED (未上链): sha256 %x is not preserved on the network of node %s\n", d.SHA256, cl.URL())
		return errReported
	}
	if err != nil {
		return err
	}
	if len(resp.Records) == 0 {
		return fmt.Errorf("node %s says the digest is preserved but returned no record", cl.URL())
	}
	out.Preserved, out.Verified = true, true
	for i, rec := range resp.Records {
		chain := resp.Manifests
		if n := rec.ManifestVersions; n > 0 && n <= len(chain) {
			chain = chain[:n]
		}
		res := verify.Lookup(rec.Leaf, []byte(rec.Proof), chain, d.SHA256, fp)
		out.Results = append(out.Results, withTimes(res))
		out.Verified = out.Verified && res.OK()
		if !o.json {
			fmt.Fprintf(a.stdout, "\nrecord %d of %d (index %d)\n", i+1, len(resp.Records), rec.Index)
			printResult(a.stdout, res)
		}
	}
	if o.json {
		if err := writeJSON(a.stdout, out); err != nil {
			return err
		}
	}
	if !out.Verified {
		return errReported
	}
	return nil
}

func (a *app) hashForVerify(o verifyOptions, file string) (fileDigest, error) {
	var progress io.Writer
	if a.stderrTTY && !o.json {
		progress = a.stderr
	}
	d, err := hashFile(file, progress)
	if err != nil {
		return d, fmt.Errorf("evidence file: %w", err)
	}
	return d, nil
}

// printResult prints every check by name, with a word beside the symbol so
// the verdict never depends on seeing a glyph (or a colour), then the record
// and the verdict line.
func printResult(w io.Writer, r *verify.Result) {
	fmt.Fprintln(w, "checks:")
	for _, c := range r.Checks {
		mark := "✓ OK  "
		if !c.OK {
			mark = "✗ FAIL"
		}
		detail := ""
		if c.Detail != "" {
			detail = " — " + oneLine(c.Detail)
		}
		fmt.Fprintf(w, "  %s  %s%s\n", mark, c.Name, detail)
	}
	if r.OK() {
		fmt.Fprintf(w, "record ID    %s (存证编号)\n", r.RecordID)
		fmt.Fprintf(w, "index        %d (tree size %d)\n", r.Index, r.TreeSize)
		fmt.Fprintf(w, "block height %d\n", r.Height)
		printTimes(w, r)
		fmt.Fprintf(w, "signers      %s\n", strings.Join(r.Signers, ", "))
		if x := r.Extended; x != nil {
			fmt.Fprintf(w, "extended     to the final tree of size %d, signed by %s\n", x.TreeSize, strings.Join(x.Signers, ", "))
		}
		fmt.Fprintf(w, "digest       %s\n", r.Digest)
		if r.Kind != "" {
			fmt.Fprintf(w, "evidence     %s, %d bytes\n", r.Kind, r.Size)
		}
		if op := r.Opening; op != nil {
			for _, f := range []struct{ name, v string }{
				{"file name", op.FileName}, {"case", op.CaseRef}, {"title", op.Title}, {"url", op.URL}, {"device", op.Device},
			} {
				if f.v != "" {
					fmt.Fprintf(w, "%-12s %s\n", f.name, f.v)
				}
			}
		}
		fmt.Fprintf(w, "network      %s (%s)\n", r.Network, r.Origin)
		fmt.Fprintf(w, "VERIFIED (核验通过): this file existed unchanged no later than %s\n", timeSource(r))
		return
	}
	if r.Verdict == verify.Committed {
		fmt.Fprintf(w, "record ID    %s (存证编号)\n", r.RecordID)
		fmt.Fprintf(w, "index        %d\n", r.Index)
		printTimes(w, r)
		fmt.Fprintln(w, "COMMITTED (已提交，尚未最终确认): committed, not yet final — run cunzheng receipt refresh --receipt R --node URL for the final receipt")
		return
	}
	label := "NOT VERIFIED"
	if r.Verdict == verify.Mismatch {
		label = "NOT VERIFIED (不一致)"
	}
	fmt.Fprintf(w, "%s: %s\n", label, oneLine(r.Reason))
}

// printTimes shows 存证时间: the time service's token time when the receipt
// has a token, with the leader's received time second; else the leader's
// received time, labelled as such.
func printTimes(w io.Writer, r *verify.Result) {
	if tok := r.Timestamp; tok != nil {
		fmt.Fprintf(w, "存证时间     %s — trusted timestamp (RFC 3161) by %s, token serial %s\n", formatTime(tok.Time), tok.Authority, tok.Serial)
		fmt.Fprintf(w, "leader time  %s — leader's received time\n", formatTime(r.LeaderTime))
		return
	}
	fmt.Fprintf(w, "time         %s — leader's received time (no trusted timestamp token)\n", formatTime(r.LeaderTime))
}

func timeSource(r *verify.Result) string {
	if r.Timestamp != nil {
		return "存证时间 above (trusted timestamp)"
	}
	return "the leader's received time above"
}

// preservationTime is 存证时间 as --json shows it: in UTC+08:00 and UTC,
// from the timestamp token when there is one, else the leader's clock.
type preservationTime struct {
	Source      string `json:"source"` // "timestamp token" or "leader received time"
	UTCPlus8    string `json:"utc_plus_8"`
	UTC         string `json:"utc"`
	Serial      string `json:"token_serial,omitempty"`
	TimeService string `json:"time_service,omitempty"`
}

// resultJSON is a verification result with its 存证时间 spelled out.
type resultJSON struct {
	*verify.Result
	PreservationTime *preservationTime `json:"preservation_time,omitempty"`
}

func withTimes(r *verify.Result) resultJSON {
	out := resultJSON{Result: r}
	const layout = "2006-01-02T15:04:05.000Z07:00"
	switch {
	case r.Timestamp != nil:
		t := r.Timestamp
		out.PreservationTime = &preservationTime{Source: "timestamp token", UTCPlus8: t.Time.In(utcPlus8).Format(layout),
			UTC: t.Time.UTC().Format(layout), Serial: t.Serial, TimeService: t.Authority}
	case !r.LeaderTime.IsZero():
		out.PreservationTime = &preservationTime{Source: "leader received time", UTCPlus8: r.LeaderTime.In(utcPlus8).Format(layout),
			UTC: r.LeaderTime.UTC().Format(layout)}
	}
	return out
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
