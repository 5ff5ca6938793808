package evidence

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/cunzheng/cunzheng/chain/checkpoint"
)

// ReceiptHeader opens every receipt file; the version is in it.
const ReceiptHeader = "cunzheng-receipt/v1"

// MaxReceiptSize bounds a receipt file.
const MaxReceiptSize = 1 << 20

// Receipt is the self-contained proof a submitter keeps: the Submission and
// (optionally) the opening of its private part, the leaf, the manifest chain
// from genesis, any timestamp tokens, and a C2SP tlog-proof@v1 against a
// final checkpoint, embedded verbatim.
//
// File form (UTF-8 text, one field per line, in this order):
//
//	cunzheng-receipt/v1
//	network <genesis fingerprint, hex>
//	manifest <base64 canonical manifest>     (one or more; genesis first)
//	submission <base64 canonical Submission>
//	opening <base64 canonical Opening>       (optional; strip before sharing to withhold metadata)
//	leaf <base64 canonical leaf>
//	committed <log index>                    (a committed receipt only; see below)
//	timestamp <base64 RFC 3161 token>        (zero or more; over SHA-256 of the proof's checkpoint body)
//	extension <base64 canonical Extension>   (optional; an upgrade to a newer final checkpoint, see below)
//	<blank line>
//	<C2SP tlog-proof@v1 text, verbatim, to the end of the file>
//
// A committed receipt is what a submitter gets when the record is committed
// and durable but no final checkpoint covered it within the deadline: it
// names the index and has no proof and no token; `cunzheng receipt refresh`
// turns it into a final one.
//
// An extended receipt is a final one that `cunzheng receipt refresh
// --extend` upgraded to a newer final checkpoint: the extension line
// carries that checkpoint, a consistency proof from the embedded proof's
// tree to it, and tokens over it (see Extension). The proof, its
// checkpoint and the timestamp lines stay exactly as issued; the manifest
// lines then run up to the version in force at the newer checkpoint. A
// committed receipt never has an extension.
type Receipt struct {
	Network    Fingerprint
	Manifests  [][]byte
	Submission []byte
	Opening    []byte // nil when withheld
	Leaf       []byte
	Timestamps [][]byte
	Proof      []byte // tlog-proof@v1 text; empty in a committed receipt
	// Committed is set in a committed receipt: the record's log index,
	// with no proof yet.
	Committed *uint64
	// Extension is the canonical Extension, nil when the receipt is not
	// extended.
	Extension []byte
}

// RecordID is the human record number (存证编号): the network's short
// fingerprint and the log index.
func RecordID(network Fingerprint, index int64) string {
	return fmt.Sprintf("CZ-%X-%d", network[:4], index)
}

// Marshal renders the receipt file.
func (r *Receipt) Marshal() []byte {
	var b bytes.Buffer
	enc := base64.StdEncoding.EncodeToString
	b.WriteString(ReceiptHeader + "\n")
	b.WriteString("network " + r.Network.String() + "\n")
	for _, m := range r.Manifests {
		b.WriteString("manifest " + enc(m) + "\n")
	}
	b.WriteString("submission " + enc(r.Submission) + "\n")
	if r.Opening != nil {
		b.WriteString("opening " + enc(r.Opening) + "\n")
	}
	b.WriteString("leaf " + enc(r.Leaf) + "\n")
	if r.Committed != nil {
		b.WriteString("committed " + strconv.FormatUint(*r.Committed, 10) + "\n")
	}
	for _, t := range r.Timestamps {
		b.WriteString("timestamp " + enc(t) + "\n")
	}
	if r.Extension != nil {
		b.WriteString("extension " + enc(r.Extension) + "\n")
	}
	b.WriteString("\n")
	b.Write(r.Proof)
	return b.Bytes()
}

// ParseReceipt strictly parses a receipt file: fields in order, canonical
// base64, nothing unknown. It checks form only; evidence/verify checks
// meaning.
func ParseReceipt(data []byte) (*Receipt, error) {
	if len(data) > MaxReceiptSize {
		return nil, fmt.Errorf("%w: receipt is %d bytes, limit %d", ErrTooLarge, len(data), MaxReceiptSize)
	}
	head, proof, ok := bytes.Cut(data, []byte("\n\n"))
	if !ok {
		return nil, fmt.Errorf("%w: receipt has no blank line before its proof", ErrMalformed)
	}
	lines := strings.Split(string(head), "\n")
	if lines[0] != ReceiptHeader {
		return nil, fmt.Errorf("%w: not a cunzheng receipt (first line %q, want %q)", ErrMalformed, lines[0], ReceiptHeader)
	}
	r := &Receipt{Proof: proof}
	i := 1
	field := func(name string) ([]byte, bool, error) {
		if i >= len(lines) {
			return nil, false, nil
		}
		v, found := strings.CutPrefix(lines[i], name+" ")
		if !found {
			return nil, false, nil
		}
		i++
		if name == "network" || name == "committed" {
			return []byte(v), true, nil
		}
		raw, err := checkpoint.DecodeBase64(v)
		if err != nil || len(raw) == 0 {
			return nil, false, fmt.Errorf("%w: receipt %s line is not canonical base64", ErrMalformed, name)
		}
		return raw, true, nil
	}
	require := func(name string) ([]byte, error) {
		v, ok, err := field(name)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("%w: receipt line %d: want %q", ErrMalformed, i+1, name)
		}
		return v, nil
	}
	nw, err := require("network")
	if err != nil {
		return nil, err
	}
	if r.Network, err = ParseFingerprint(string(nw)); err != nil || r.Network.String() != string(nw) {
		return nil, fmt.Errorf("%w: receipt network line", ErrMalformed)
	}
	for {
		m, ok, err := field("manifest")
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		r.Manifests = append(r.Manifests, m)
	}
	if len(r.Manifests) == 0 {
		return nil, fmt.Errorf("%w: receipt has no manifest", ErrMalformed)
	}
	if r.Submission, err = require("submission"); err != nil {
		return nil, err
	}
	if r.Opening, _, err = field("opening"); err != nil {
		return nil, err
	}
	if r.Leaf, err = require("leaf"); err != nil {
		return nil, err
	}
	if c, ok, _ := field("committed"); ok {
		n, err := strconv.ParseUint(string(c), 10, 63)
		if err != nil || strconv.FormatUint(n, 10) != string(c) {
			return nil, fmt.Errorf("%w: receipt committed line", ErrMalformed)
		}
		r.Committed = &n
	}
	for {
		t, ok, err := field("timestamp")
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		r.Timestamps = append(r.Timestamps, t)
	}
	if r.Extension, _, err = field("extension"); err != nil {
		return nil, err
	}
	if i != len(lines) {
		return nil, fmt.Errorf("%w: receipt line %d is unexpected: %.40q", ErrMalformed, i+1, lines[i])
	}
	if r.Committed != nil {
		if len(proof) != 0 || len(r.Timestamps) != 0 || r.Extension != nil {
			return nil, fmt.Errorf("%w: a committed receipt carries no proof, no timestamp and no extension", ErrMalformed)
		}
		return r, nil
	}
	if _, err := checkpoint.ParseProof(proof); err != nil {
		return nil, fmt.Errorf("receipt proof: %w", err)
	}
	if r.Extension != nil {
		if _, err := ParseExtension(r.Extension); err != nil {
			return nil, fmt.Errorf("receipt extension: %w", err)
		}
	}
	return r, nil
}
