package evidence

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// OpeningVersion is the only Opening version this code writes or reads.
const OpeningVersion = 1

// Opening is the private part of a Submission: the metadata the submitter
// may disclose later, and the salt that hides it. Only its commitment is
// signed and logged; the Opening itself travels in the receipt.
type Opening struct {
	Salt       [32]byte
	CaseRef    string // case reference, e.g. (2026)京0491民初123号
	Title      string
	URL        string // page captured, for web evidence
	Device     string // capture device or tool
	FileName   string // the evidence file's name on the submitter's machine
	Provenance []byte // optional SHA-256 of a capture-provenance manifest (0 or 32 bytes)
}

// fields encodes the opening without its salt.
func (o *Opening) fields(b *cryptobyte.Builder) {
	addText(b, o.CaseRef)
	addText(b, o.Title)
	addText(b, o.URL)
	addText(b, o.Device)
	addText(b, o.FileName)
	addBytes8(b, o.Provenance)
}

func (o *Opening) validate() error {
	for _, f := range []struct{ name, v string }{
		{"case reference", o.CaseRef}, {"title", o.Title}, {"url", o.URL},
		{"device", o.Device}, {"file name", o.FileName},
	} {
		if err := checkText(f.name, f.v); err != nil {
			return err
		}
	}
	if n := len(o.Provenance); n != 0 && n != 32 {
		return fmt.Errorf("%w: provenance digest is %d bytes, want 0 or 32", ErrMalformed, n)
	}
	return nil
}

// Marshal returns the canonical encoding.
func (o *Opening) Marshal() ([]byte, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	b := cryptobyte.NewBuilder(nil)
	b.AddUint8(OpeningVersion)
	b.AddBytes(o.Salt[:])
	o.fields(b)
	return build(b, "opening")
}

// Commitment returns SHA-256("cunzheng commitment v1\n" ‖ canonical opening).
func (o *Opening) Commitment() ([32]byte, error) {
	enc, err := o.Marshal()
	if err != nil {
		return [32]byte{}, err
	}
	h := sha256.New()
	h.Write([]byte("cunzheng commitment v1\n"))
	h.Write(enc)
	var c [32]byte
	h.Sum(c[:0])
	return c, nil
}

// DeriveSalt sets Salt to HMAC-SHA256(secret, primary digest ‖ fields).
// Deriving the salt from the submitter's secret key makes re-submitting the
// same file with the same metadata produce a byte-identical Submission (and
// so the same receipt), while the salt stays unguessable to anyone else.
func (o *Opening) DeriveSalt(secret, primaryDigest []byte) error {
	if err := o.validate(); err != nil {
		return err
	}
	b := cryptobyte.NewBuilder([]byte("cunzheng salt v1\n"))
	addBytes8(b, primaryDigest)
	o.fields(b)
	msg, err := build(b, "salt input")
	if err != nil {
		return err
	}
	m := hmac.New(sha256.New, secret)
	m.Write(msg)
	m.Sum(o.Salt[:0])
	return nil
}

// ParseOpening strictly decodes a canonical Opening.
func ParseOpening(data []byte) (*Opening, error) {
	s := cryptobyte.String(data)
	var (
		version uint8
		o       Opening
		salt    []byte
		prov    cryptobyte.String
	)
	if !s.ReadUint8(&version) {
		return nil, fmt.Errorf("%w: opening version", ErrMalformed)
	}
	if version != OpeningVersion {
		return nil, fmt.Errorf("%w: opening version %d", ErrUnsupported, version)
	}
	if !s.ReadBytes(&salt, 32) {
		return nil, fmt.Errorf("%w: opening salt", ErrMalformed)
	}
	copy(o.Salt[:], salt)
	for _, f := range []struct {
		name string
		out  *string
	}{{"case reference", &o.CaseRef}, {"title", &o.Title}, {"url", &o.URL}, {"device", &o.Device}, {"file name", &o.FileName}} {
		if err := readText(&s, f.name, f.out); err != nil {
			return nil, fmt.Errorf("opening: %w", err)
		}
	}
	if !s.ReadUint8LengthPrefixed(&prov) {
		return nil, fmt.Errorf("%w: opening provenance", ErrMalformed)
	}
	if len(prov) > 0 {
		o.Provenance = append([]byte(nil), prov...)
	}
	if !s.Empty() {
		return nil, fmt.Errorf("%w: %d trailing bytes after opening", ErrMalformed, len(s))
	}
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("opening: %w", err)
	}
	return &o, nil
}
