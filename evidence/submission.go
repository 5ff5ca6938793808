package evidence

import (
	"crypto/sha256"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// SubmissionVersion is the only Submission version this code writes or reads.
const SubmissionVersion = 1

// MaxSubmissionSize bounds an encoded Submission.
const MaxSubmissionSize = 1024

// Kind says what sort of evidence a Submission preserves. The numbers are
// part of the permanent encoding.
type Kind uint8

// Evidence kinds.
const (
	KindFile       Kind = 1
	KindWebCapture Kind = 2
	KindVideo      Kind = 3
	KindAudio      Kind = 4
	KindImage      Kind = 5
	KindDocument   Kind = 6
	KindChatLog    Kind = 7
	KindEmail      Kind = 8
)

var kindNames = map[Kind]string{
	KindFile: "file", KindWebCapture: "web-capture", KindVideo: "video", KindAudio: "audio",
	KindImage: "image", KindDocument: "document", KindChatLog: "chat-log", KindEmail: "email",
}

// String names the kind.
func (k Kind) String() string {
	if n, ok := kindNames[k]; ok {
		return n
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// ParseKind maps a kind name to its Kind.
func ParseKind(name string) (Kind, error) {
	for k, n := range kindNames {
		if n == name {
			return k, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown evidence kind %q", ErrUnsupported, name)
}

// Submission is what a submitter's client builds and signs. The evidence
// itself never leaves the client; only its digests do.
type Submission struct {
	Digests    []Digest // Digests[0] is SHA-256, the primary digest
	Kind       Kind
	Size       uint64    // evidence size in bytes
	Submitter  PublicKey // so any verifier can check Signature without a registry
	Commitment [32]byte  // Opening.Commitment() of the private part
	Signature  []byte
}

// Primary returns the SHA-256 evidence digest.
func (s *Submission) Primary() []byte { return s.Digests[0].Value }

// body encodes everything but the signature.
func (s *Submission) body(b *cryptobyte.Builder) {
	b.AddUint8(SubmissionVersion)
	addDigests(b, s.Digests)
	b.AddUint8(uint8(s.Kind))
	b.AddUint64(s.Size)
	b.AddUint8(uint8(s.Submitter.Alg))
	addBytes8(b, s.Submitter.Key)
	b.AddBytes(s.Commitment[:])
}

// SignedMessage returns the bytes the submitter signs: a domain label, the
// network origin (so a signature is never valid on another network) and the
// canonical body.
func (s *Submission) SignedMessage(origin string) ([]byte, error) {
	if err := s.validateFields(); err != nil {
		return nil, err
	}
	b := cryptobyte.NewBuilder([]byte("cunzheng submission v1\n" + origin + "\n"))
	s.body(b)
	return build(b, "submission body")
}

func (s *Submission) validateFields() error {
	if err := validateDigests(s.Digests); err != nil {
		return err
	}
	if _, ok := kindNames[s.Kind]; !ok {
		return fmt.Errorf("%w: evidence kind %d", ErrUnsupported, s.Kind)
	}
	return s.Submitter.validate("submitter key")
}

// Sign fills Signature using signer, whose public key must be s.Submitter.
func (s *Submission) Sign(origin string, signer Signer) error {
	if !signer.Public().Equal(s.Submitter) {
		return fmt.Errorf("sign submission: signer key does not match submitter key")
	}
	msg, err := s.SignedMessage(origin)
	if err != nil {
		return err
	}
	sig, err := signer.Sign(msg)
	if err != nil {
		return fmt.Errorf("sign submission: %w", err)
	}
	s.Signature = sig
	return nil
}

// Verify checks the submitter's signature for the network origin.
func (s *Submission) Verify(origin string) error {
	msg, err := s.SignedMessage(origin)
	if err != nil {
		return err
	}
	if !s.Submitter.verify(msg, s.Signature) {
		return fmt.Errorf("%w: submission signature does not verify", ErrBadSignature)
	}
	return nil
}

// Marshal returns the canonical encoding.
func (s *Submission) Marshal() ([]byte, error) {
	if err := s.validateFields(); err != nil {
		return nil, err
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, 200))
	s.body(b)
	addBytes8(b, s.Signature)
	out, err := build(b, "submission")
	if err == nil && len(out) > MaxSubmissionSize {
		return nil, fmt.Errorf("%w: submission is %d bytes", ErrTooLarge, len(out))
	}
	return out, err
}

// Hash returns SHA-256 of the canonical encoding; leaves carry it.
func SubmissionHash(encoded []byte) [32]byte { return sha256.Sum256(encoded) }

// ParseSubmission strictly decodes a canonical Submission. It checks the
// form, not the signature.
func ParseSubmission(data []byte) (*Submission, error) {
	if len(data) > MaxSubmissionSize {
		return nil, fmt.Errorf("%w: submission is %d bytes, limit %d", ErrTooLarge, len(data), MaxSubmissionSize)
	}
	s := cryptobyte.String(data)
	var (
		version, kind, alg uint8
		sub                Submission
		key, sig, com      cryptobyte.String
	)
	if !s.ReadUint8(&version) {
		return nil, fmt.Errorf("%w: submission version", ErrMalformed)
	}
	if version != SubmissionVersion {
		return nil, fmt.Errorf("%w: submission version %d", ErrUnsupported, version)
	}
	if err := readDigests(&s, &sub.Digests); err != nil {
		return nil, fmt.Errorf("submission: %w", err)
	}
	if !s.ReadUint8(&kind) || !s.ReadUint64(&sub.Size) || !s.ReadUint8(&alg) ||
		!s.ReadUint8LengthPrefixed(&key) || !s.ReadBytes((*[]byte)(&com), 32) ||
		!s.ReadUint8LengthPrefixed(&sig) {
		return nil, fmt.Errorf("%w: submission fields", ErrMalformed)
	}
	if !s.Empty() {
		return nil, fmt.Errorf("%w: %d trailing bytes after submission", ErrMalformed, len(s))
	}
	sub.Kind = Kind(kind)
	sub.Submitter = PublicKey{Alg: KeyAlg(alg), Key: append([]byte(nil), key...)}
	copy(sub.Commitment[:], com)
	sub.Signature = append([]byte(nil), sig...)
	if err := sub.validateFields(); err != nil {
		return nil, fmt.Errorf("submission: %w", err)
	}
	if sub.Submitter.Alg == Ed25519 && len(sub.Signature) != 64 {
		return nil, fmt.Errorf("%w: ed25519 signature is %d bytes", ErrMalformed, len(sub.Signature))
	}
	return &sub, nil
}
