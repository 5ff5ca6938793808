// Package witness is the C2SP tlog-witness protocol
// (https://c2sp.org/tlog-witness): the add-checkpoint request and response
// formats, a witness server that cosigns other logs' checkpoints with
// C2SP tlog-cosignature/v1 after checking consistency with the latest
// checkpoint it cosigned, and the client a log uses to collect witness
// cosignatures.
//
// The witness records "latest size and root per origin" by compare-and-swap,
// synced before it answers, so no crash, restart or race can make it cosign
// a tree that rolls back or forks what it cosigned before. The formats are
// small and strict, so they are written here rather than taken from
// filippo.io/torchwood, whose witness lives in an internal package; the
// tests check both against it.
package witness

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/cunzheng/cunzheng/chain/checkpoint"
)

// Limits of the protocol's texts.
const (
	// MaxProofLines is the most consistency proof lines a request may
	// carry (the spec's 63: one per tree level).
	MaxProofLines = 63
	// MaxRequestSize bounds an add-checkpoint request body: the old size
	// line, 63 proof lines and a checkpoint signed by every member of the
	// largest network (64 institutions) fit with room to spare.
	MaxRequestSize = 64 << 10
	// MaxResponseSize bounds a witness's answer (cosignature lines).
	MaxResponseSize = 8 << 10
	// MaxCosignatureLines bounds the cosignature lines of one answer.
	MaxCosignatureLines = 16
)

// ErrMalformed marks a request or response not exactly in the spec form.
var ErrMalformed = errors.New("witness: malformed")

// Request is an add-checkpoint request: the size of the checkpoint the
// witness last cosigned for this log, a consistency proof from it, and the
// new signed checkpoint.
type Request struct {
	OldSize    int64
	Proof      tlog.TreeProof
	Checkpoint []byte // signed note
}

// Format returns the request body.
func (r *Request) Format() []byte {
	var b bytes.Buffer
	b.WriteString("old " + strconv.FormatInt(r.OldSize, 10) + "\n")
	for _, h := range r.Proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h[:]) + "\n")
	}
	b.WriteString("\n")
	b.Write(r.Checkpoint)
	return b.Bytes()
}

// ParseRequest strictly parses an add-checkpoint request body: "old N"
// with N in canonical decimal, at most MaxProofLines canonical base64
// hashes (none when N is 0), an empty line, and a signed note. The note's
// signatures are checked later, by whoever knows the log's keys.
func ParseRequest(body []byte) (*Request, error) {
	if len(body) > MaxRequestSize {
		return nil, fmt.Errorf("%w: request is %d bytes, limit %d", ErrMalformed, len(body), MaxRequestSize)
	}
	head, signed, ok := bytes.Cut(body, []byte("\n\n"))
	if !ok {
		return nil, fmt.Errorf("%w: no empty line before the checkpoint", ErrMalformed)
	}
	lines := strings.Split(string(head), "\n")
	sizeText, ok := strings.CutPrefix(lines[0], "old ")
	if !ok {
		return nil, fmt.Errorf("%w: first line %q is not \"old <size>\"", ErrMalformed, lines[0])
	}
	old, err := strconv.ParseInt(sizeText, 10, 64)
	if err != nil || old < 0 || strconv.FormatInt(old, 10) != sizeText {
		return nil, fmt.Errorf("%w: old size %q", ErrMalformed, sizeText)
	}
	proofLines := lines[1:]
	if len(proofLines) > MaxProofLines {
		return nil, fmt.Errorf("%w: %d consistency proof lines, limit %d", ErrMalformed, len(proofLines), MaxProofLines)
	}
	if old == 0 && len(proofLines) > 0 {
		return nil, fmt.Errorf("%w: a proof from size 0 must be empty", ErrMalformed)
	}
	r := &Request{OldSize: old, Checkpoint: signed}
	for i, line := range proofLines {
		h, err := checkpoint.DecodeBase64(line)
		if err != nil || len(h) != tlog.HashSize {
			return nil, fmt.Errorf("%w: consistency proof line %d %q", ErrMalformed, i+1, line)
		}
		r.Proof = append(r.Proof, tlog.Hash(h))
	}
	if _, _, err := splitNote(signed); err != nil {
		return nil, err
	}
	return r, nil
}

// splitNote returns the body and signature lines of a signed note after
// checking its shape: a body, an empty line, and one or more lines
// starting "— ", all newline-ended. The signatures themselves (their
// encoding included) are the verifier's business: a bad one is a
// signature failure (403), not a malformed request.
func splitNote(signed []byte) (body, sigs []byte, err error) {
	i := bytes.LastIndex(signed, []byte("\n\n"))
	if i < 0 || len(signed) == i+2 || signed[len(signed)-1] != '\n' {
		return nil, nil, fmt.Errorf("%w: checkpoint is not a signed note", ErrMalformed)
	}
	for _, line := range strings.Split(string(signed[i+2:len(signed)-1]), "\n") {
		if !strings.HasPrefix(line, "\u2014 ") {
			return nil, nil, fmt.Errorf("%w: checkpoint line %q is not a signature", ErrMalformed, line)
		}
	}
	return signed[:i+1], signed[i+2:], nil
}

// ParseCosignatures strictly parses a witness's 200 answer: one or more
// (at most MaxCosignatureLines) signed-note signature lines "— <name>
// <base64>\n". It returns them in order; their signatures are checked by
// the caller with the keys it trusts.
func ParseCosignatures(text []byte) ([]string, error) {
	if len(text) > MaxResponseSize {
		return nil, fmt.Errorf("%w: answer is %d bytes, limit %d", ErrMalformed, len(text), MaxResponseSize)
	}
	if len(text) == 0 || text[len(text)-1] != '\n' {
		return nil, fmt.Errorf("%w: signature lines must end in a newline", ErrMalformed)
	}
	lines := strings.Split(string(text[:len(text)-1]), "\n")
	if len(lines) > MaxCosignatureLines {
		return nil, fmt.Errorf("%w: %d signature lines, limit %d", ErrMalformed, len(lines), MaxCosignatureLines)
	}
	for i, line := range lines {
		if err := checkSignatureLine(line); err != nil {
			return nil, fmt.Errorf("signature line %d: %w", i+1, err)
		}
		lines[i] = line + "\n"
	}
	return lines, nil
}

// checkSignatureLine checks one signed-note signature line (without its
// newline): "— ", a key name, a space, and a canonical base64 key hash
// and signature.
func checkSignatureLine(line string) error {
	rest, ok := strings.CutPrefix(line, "\u2014 ")
	name, b64, ok2 := strings.Cut(rest, " ")
	if !ok || !ok2 || name == "" || strings.ContainsAny(name, "+\t\r") {
		return fmt.Errorf("%w: signature line %q", ErrMalformed, line)
	}
	if sig, err := checkpoint.DecodeBase64(b64); err != nil || len(sig) < 5 {
		return fmt.Errorf("%w: signature by %q is not canonical base64", ErrMalformed, name)
	}
	return nil
}
