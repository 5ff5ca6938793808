package checkpoint

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

// ProofHeader is the first line of a C2SP tlog-proof@v1 proof.
const ProofHeader = "c2sp.org/tlog-proof@v1"

// MaxProofHashes bounds an inclusion proof (a tree of 2^63 leaves needs 63).
const MaxProofHashes = 63

// Proof is a C2SP tlog-proof@v1: an index, an inclusion proof and the signed
// checkpoint it is against.
type Proof struct {
	Extra      []byte // optional, unauthenticated
	Index      int64
	Hashes     tlog.RecordProof
	Checkpoint []byte // signed note, verbatim
}

// Format renders the proof in the spec's text form.
func (p *Proof) Format() []byte {
	var b bytes.Buffer
	b.WriteString(ProofHeader + "\n")
	if p.Extra != nil {
		b.WriteString("extra " + base64.StdEncoding.EncodeToString(p.Extra) + "\n")
	}
	b.WriteString("index " + strconv.FormatInt(p.Index, 10) + "\n")
	for _, h := range p.Hashes {
		b.WriteString(base64.StdEncoding.EncodeToString(h[:]) + "\n")
	}
	b.WriteString("\n")
	b.Write(p.Checkpoint)
	return b.Bytes()
}

// ParseProof strictly parses a tlog-proof@v1. The checkpoint is returned
// verbatim and is not verified here.
func ParseProof(text []byte) (*Proof, error) {
	head, cp, ok := bytes.Cut(text, []byte("\n\n"))
	if !ok {
		return nil, fmt.Errorf("%w: proof has no blank line before the checkpoint", ErrMalformed)
	}
	lines := strings.Split(string(head), "\n")
	if lines[0] != ProofHeader {
		return nil, fmt.Errorf("%w: proof header %q, want %q", ErrMalformed, lines[0], ProofHeader)
	}
	lines = lines[1:]
	p := &Proof{Checkpoint: cp}
	if len(lines) > 0 && strings.HasPrefix(lines[0], "extra ") {
		e, err := DecodeBase64(strings.TrimPrefix(lines[0], "extra "))
		if err != nil {
			return nil, fmt.Errorf("%w: proof extra: %v", ErrMalformed, err)
		}
		p.Extra = e
		lines = lines[1:]
	}
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "index ") {
		return nil, fmt.Errorf("%w: proof has no index line", ErrMalformed)
	}
	is := strings.TrimPrefix(lines[0], "index ")
	idx, err := strconv.ParseInt(is, 10, 64)
	if err != nil || idx < 0 || strconv.FormatInt(idx, 10) != is {
		return nil, fmt.Errorf("%w: proof index %q", ErrMalformed, is)
	}
	p.Index = idx
	lines = lines[1:]
	if len(lines) > MaxProofHashes {
		return nil, fmt.Errorf("%w: %d proof hashes, limit %d", ErrMalformed, len(lines), MaxProofHashes)
	}
	for _, l := range lines {
		h, err := DecodeBase64(l)
		if err != nil || len(h) != tlog.HashSize {
			return nil, fmt.Errorf("%w: proof hash %q", ErrMalformed, l)
		}
		p.Hashes = append(p.Hashes, tlog.Hash(h))
	}
	if len(cp) == 0 {
		return nil, fmt.Errorf("%w: proof has no checkpoint", ErrMalformed)
	}
	return p, nil
}
