package evidence

import (
	"bytes"
	"crypto/ed25519"
	"fmt"

	"filippo.io/edwards25519"
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

// checkEd25519Key rejects keys no honest signer has: encodings that are not
// canonical points, and points of small order, for which anyone can forge
// signatures that crypto/ed25519 accepts (with the identity key, R = identity
// and S = 0 verify for every message). Refusing them wherever a key is
// parsed keeps every verifier — node, CLI, WASM — in agreement.
func checkEd25519Key(field string, key []byte) error {
	p, err := new(edwards25519.Point).SetBytes(key)
	if err != nil || !bytes.Equal(p.Bytes(), key) {
		return fmt.Errorf("%w: %s: not a canonical ed25519 point", ErrMalformed, field)
	}
	if new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 1 {
		return fmt.Errorf("%w: %s: ed25519 key of small order", ErrMalformed, field)
	}
	return nil
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
