package evidence

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
)

// KeyAlg identifies a submitter or admin signature algorithm. The numbers
// are part of the permanent encoding.
type KeyAlg uint8

const (
	// Ed25519 signatures (RFC 8032), verified with crypto/ed25519 everywhere
	// — node, CLI and WASM — so every verifier accepts exactly the same
	// signatures.
	Ed25519 KeyAlg = 1
)

// String names the algorithm.
func (a KeyAlg) String() string {
	if a == Ed25519 {
		return "ed25519"
	}
	return fmt.Sprintf("keyalg(%d)", uint8(a))
}

// PublicKey is a submitter's or administrator's public key.
type PublicKey struct {
	Alg KeyAlg
	Key []byte
}

func (k PublicKey) validate(field string) error {
	switch k.Alg {
	case Ed25519:
		if len(k.Key) != ed25519.PublicKeySize {
			return fmt.Errorf("%w: %s: ed25519 key is %d bytes", ErrMalformed, field, len(k.Key))
		}
		return checkEd25519Key(field, k.Key)
	}
	return fmt.Errorf("%w: %s: key algorithm %s", ErrUnsupported, field, k.Alg)
}

// smallOrderKeys are the encodings of the eight points of small order
// (the torsion subgroup), plus the two non-canonical "x = -0" encodings of
// the identity and of the point of order 2; the list is libsodium's.
var smallOrderKeys = func() map[[32]byte]bool {
	m := map[[32]byte]bool{}
	for _, h := range []string{
		"0100000000000000000000000000000000000000000000000000000000000000", // identity
		"0100000000000000000000000000000000000000000000000000000000000080", // identity, x = -0
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // order 2
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", // order 2, x = -0
		"0000000000000000000000000000000000000000000000000000000000000000", // order 4
		"0000000000000000000000000000000000000000000000000000000000000080", // order 4
		"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a", // order 8
		"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa", // order 8
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05", // order 8
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85", // order 8
	} {
		b, _ := hex.DecodeString(h)
		m[[32]byte(b)] = true
	}
	return m
}()

// fieldP is p = 2^255 - 19, little-endian.
var fieldP = [32]byte{0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}

// checkEd25519Key rejects keys no honest signer has: points of small order,
// under which anyone can forge signatures that crypto/ed25519 accepts (with
// the identity key, R = identity and S = 0 verify for every message), and
// non-canonical encodings (y >= p). Refusing them wherever a key is parsed
// keeps every verifier — node, CLI, WASM — in agreement. It is a table
// lookup and a comparison, cheap enough for every parse; a test checks it
// against a full point decoding.
func checkEd25519Key(field string, key []byte) error {
	if len(key) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: %s: ed25519 key is %d bytes", ErrMalformed, field, len(key))
	}
	if smallOrderKeys[[32]byte(key)] {
		return fmt.Errorf("%w: %s: ed25519 key of small order", ErrMalformed, field)
	}
	// y is the low 255 bits, little-endian; canonical iff y < p.
	for i := 31; i >= 0; i-- {
		b := key[i]
		if i == 31 {
			b &= 0x7f
		}
		if b != fieldP[i] {
			if b > fieldP[i] {
				break
			}
			return nil
		}
	}
	return fmt.Errorf("%w: %s: not a canonical ed25519 point encoding", ErrMalformed, field)
}

// verify checks sig over msg. It never panics on malformed keys.
func (k PublicKey) verify(msg, sig []byte) bool {
	switch k.Alg {
	case Ed25519:
		if len(k.Key) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
			return false
		}
		return ed25519.Verify(ed25519.PublicKey(k.Key), msg, sig)
	}
	return false
}

// Equal reports whether two keys are the same.
func (k PublicKey) Equal(o PublicKey) bool { return k.Alg == o.Alg && string(k.Key) == string(o.Key) }

// Signer signs canonical record bytes. ed25519.PrivateKey satisfies it via
// Ed25519Signer.
type Signer interface {
	Public() PublicKey
	Sign(msg []byte) ([]byte, error)
}

// Ed25519Signer wraps an Ed25519 private key.
type Ed25519Signer struct{ Key ed25519.PrivateKey }

// Public returns the public half.
func (s Ed25519Signer) Public() PublicKey {
	return PublicKey{Alg: Ed25519, Key: []byte(s.Key.Public().(ed25519.PublicKey))}
}

// Sign signs msg.
func (s Ed25519Signer) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(s.Key, msg), nil }
