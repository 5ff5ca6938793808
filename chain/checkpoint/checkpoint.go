// Package checkpoint formats, signs and checks C2SP tlog-checkpoint signed
// notes (https://c2sp.org/tlog-checkpoint) and C2SP tlog-proof@v1 proofs
// (https://c2sp.org/tlog-proof), and decides whether a checkpoint meets a
// network's finality policy: enough distinct institutions' signatures, plus
// the C2SP tlog-cosignature/v1 cosignatures of any witnesses it requires.
//
// Checkpoint bodies are exactly three lines — origin, tree size, root — with
// no extension lines, so the body is a pure function of the tree and every
// honest replica computes the same bytes. Signatures use the signed-note
// format of golang.org/x/mod/sumdb/note.
package checkpoint

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Errors callers branch on.
var (
	// ErrMalformed marks text that is not in the exact spec form.
	ErrMalformed = errors.New("checkpoint: malformed")
	// ErrWrongOrigin marks a checkpoint of another log.
	ErrWrongOrigin = errors.New("checkpoint: wrong origin")
	// ErrPolicy marks a checkpoint without enough valid institution signatures.
	ErrPolicy = errors.New("checkpoint: signatures do not meet policy")
)

// Checkpoint is the tree a body commits to.
type Checkpoint struct {
	Origin string
	Size   int64
	Root   tlog.Hash
}

// Body returns the three-line checkpoint body.
func (c Checkpoint) Body() []byte {
	return []byte(c.Origin + "\n" + strconv.FormatInt(c.Size, 10) + "\n" +
		base64.StdEncoding.EncodeToString(c.Root[:]) + "\n")
}

// ParseBody strictly parses a three-line body: no extension lines, a decimal
// size without leading zeros, a canonical base64 32-byte root.
func ParseBody(text string) (Checkpoint, error) {
	var c Checkpoint
	if !strings.HasSuffix(text, "\n") {
		return c, fmt.Errorf("%w: body does not end in a newline", ErrMalformed)
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) != 3 {
		return c, fmt.Errorf("%w: body has %d lines, want 3 (no extension lines)", ErrMalformed, len(lines))
	}
	if lines[0] == "" || strings.ContainsAny(lines[0], " \t+") {
		return c, fmt.Errorf("%w: origin line %q", ErrMalformed, lines[0])
	}
	n, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != lines[1] {
		return c, fmt.Errorf("%w: tree size %q", ErrMalformed, lines[1])
	}
	root, err := DecodeBase64(lines[2])
	if err != nil || len(root) != tlog.HashSize {
		return c, fmt.Errorf("%w: root hash %q", ErrMalformed, lines[2])
	}
	c.Origin, c.Size = lines[0], n
	copy(c.Root[:], root)
	return c, nil
}

// Sign returns the signed note of c's body with the given signers.
func Sign(c Checkpoint, signers ...note.Signer) ([]byte, error) {
	out, err := note.Sign(&note.Note{Text: string(c.Body())}, signers...)
	if err != nil {
		return nil, fmt.Errorf("sign checkpoint %s@%d: %w", c.Origin, c.Size, err)
	}
	return out, nil
}

// Policy says whose signatures make a checkpoint final.
type Policy struct {
	Origin    string
	Verifiers note.Verifiers // the voting institutions' keys
	Threshold int            // distinct institutions needed
	// Witnesses are the external witnesses' cosignature/v1 keys (nil =
	// none): their cosignatures verify and are reported, but never count
	// toward Threshold.
	Witnesses note.Verifiers
	// RequiredWitnesses names the witnesses whose cosignature a final
	// checkpoint must carry.
	RequiredWitnesses []string
}

// Final is a checkpoint that met the policy.
type Final struct {
	Checkpoint
	Note      *note.Note
	Signers   []string // names of institutions whose signatures verified
	Witnesses []string // names of witnesses whose cosignatures verified
}

// bothVerifiers looks a key up among the institutions, then the witnesses.
type bothVerifiers struct{ institutions, witnesses note.Verifiers }

func (b bothVerifiers) Verifier(name string, hash uint32) (note.Verifier, error) {
	v, err := b.institutions.Verifier(name, hash)
	if err == nil || b.witnesses == nil {
		return v, err
	}
	if w, werr := b.witnesses.Verifier(name, hash); werr == nil {
		return w, nil
	}
	return nil, err
}

// Open verifies a signed checkpoint against the policy. Every signature by a
// known key, an institution's or a witness's, must verify (a forged one is
// an error, never silently skipped); signatures by unknown keys are ignored
// for the policy and left in Note.UnverifiedSigs.
func Open(signed []byte, p Policy) (*Final, error) {
	if err := checkSignatureLines(signed); err != nil {
		return nil, err
	}
	var vs note.Verifiers = bothVerifiers{p.Verifiers, p.Witnesses}
	n, err := note.Open(signed, vs)
	if err != nil {
		var unv *note.UnverifiedNoteError
		if errors.As(err, &unv) {
			return nil, fmt.Errorf("%w: no signature by any institution of the network", ErrPolicy)
		}
		return nil, fmt.Errorf("open checkpoint: %w", err)
	}
	c, err := ParseBody(n.Text)
	if err != nil {
		return nil, err
	}
	if c.Origin != p.Origin {
		return nil, fmt.Errorf("%w: %q, want %q", ErrWrongOrigin, c.Origin, p.Origin)
	}
	seen := map[string]bool{}
	var names, witnesses []string
	for _, s := range n.Sigs {
		if seen[s.Name] {
			continue
		}
		seen[s.Name] = true
		if _, err := p.Verifiers.Verifier(s.Name, s.Hash); err == nil {
			names = append(names, s.Name)
		} else {
			witnesses = append(witnesses, s.Name)
		}
	}
	if len(names) < p.Threshold {
		return nil, fmt.Errorf("%w: %d of %d required institutions signed (%s)", ErrPolicy, len(names), p.Threshold, strings.Join(names, ", "))
	}
	for _, w := range p.RequiredWitnesses {
		if !slices.Contains(witnesses, w) {
			return nil, fmt.Errorf("%w: required witness %s did not cosign", ErrPolicy, w)
		}
	}
	return &Final{Checkpoint: c, Note: n, Signers: names, Witnesses: witnesses}, nil
}

// checkSignatureLines refuses what note.Open lets through but a checkpoint
// with one byte-exact form must not: signatures in non-canonical base64
// (note.Open ignores the padding bits, so a flipped bit there still
// verified), and a second signature line by the same key (note.Open skips it
// without verifying it, so a forged one rode along unnoticed). Everything
// else is left to note.Open.
func checkSignatureLines(signed []byte) error {
	split := bytes.LastIndex(signed, []byte("\n\n"))
	if split < 0 {
		return nil
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(string(signed[split+2:]), "\n") {
		rest, ok := strings.CutPrefix(line, "\u2014 ")
		if !ok {
			continue
		}
		name, b64, _ := strings.Cut(rest, " ")
		sig, err := DecodeBase64(b64)
		if err != nil || len(sig) < 5 || base64.StdEncoding.EncodeToString(sig) != b64 {
			return fmt.Errorf("%w: signature by %q is not canonical base64", ErrMalformed, name)
		}
		id := name + "+" + string(sig[:4])
		if seen[id] {
			return fmt.Errorf("%w: two signatures by key %q", ErrMalformed, name)
		}
		seen[id] = true
	}
	return nil
}
