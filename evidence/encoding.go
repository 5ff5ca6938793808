package evidence

import (
	"fmt"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"
)

// MaxLeafSize is the largest encoded leaf: the tlog-tiles entry bundle stores
// each entry behind a 16-bit length.
const MaxLeafSize = 65535

// MaxTextLen bounds free-text fields (titles, URLs, case references).
const MaxTextLen = 4096

// readString reads a u16-length-prefixed UTF-8 text field with no control
// characters.
func readText(s *cryptobyte.String, field string, out *string) error {
	var v cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&v) {
		return fmt.Errorf("%w: %s", ErrMalformed, field)
	}
	if err := checkText(field, string(v)); err != nil {
		return err
	}
	*out = string(v)
	return nil
}

func checkText(field, v string) error {
	if len(v) > MaxTextLen {
		return fmt.Errorf("%w: %s is %d bytes, limit %d", ErrTooLarge, field, len(v), MaxTextLen)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: %s is not UTF-8", ErrMalformed, field)
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: %s contains a control character", ErrMalformed, field)
		}
	}
	return nil
}

func addText(b *cryptobyte.Builder, v string) {
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(v)) })
}

func addBytes8(b *cryptobyte.Builder, v []byte) {
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(v) })
}

func addDigests(b *cryptobyte.Builder, ds []Digest) {
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, d := range ds {
			b.AddUint8(uint8(d.Alg))
			addBytes8(b, d.Value)
		}
	})
}

func readDigests(s *cryptobyte.String, out *[]Digest) error {
	var list cryptobyte.String
	if !s.ReadUint8LengthPrefixed(&list) {
		return fmt.Errorf("%w: digests", ErrMalformed)
	}
	var ds []Digest
	for !list.Empty() {
		var alg uint8
		var v cryptobyte.String
		if !list.ReadUint8(&alg) || !list.ReadUint8LengthPrefixed(&v) {
			return fmt.Errorf("%w: digest entry", ErrMalformed)
		}
		if len(ds) == MaxDigests {
			return fmt.Errorf("%w: more than %d digests", ErrMalformed, MaxDigests)
		}
		ds = append(ds, Digest{Alg: DigestAlg(alg), Value: append([]byte(nil), v...)})
	}
	if err := validateDigests(ds); err != nil {
		return err
	}
	*out = ds
	return nil
}

func cloneDigests(ds []Digest) []Digest {
	out := make([]Digest, len(ds))
	for i, d := range ds {
		out[i] = Digest{Alg: d.Alg, Value: append([]byte(nil), d.Value...)}
	}
	return out
}

// DigestsEqual reports whether two digest lists are identical, in order.
func DigestsEqual(a, b []Digest) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Alg != b[i].Alg || string(a[i].Value) != string(b[i].Value) {
			return false
		}
	}
	return true
}

func build(b *cryptobyte.Builder, what string) ([]byte, error) {
	out, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", what, err)
	}
	return out, nil
}
