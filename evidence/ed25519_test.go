package evidence_test

import (
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"math/big"
	"slices"
	"testing"

	"github.com/cunzheng/cunzheng/evidence"
)

// The Ed25519 edge cases below pin what crypto/ed25519 accepts through
// Submission.Verify. The node, the CLI and the WASM verifier all use
// crypto/ed25519, so they agree today; any future batch or alternative
// verifier must give exactly these answers (DESIGN.md §6).
//
// What crypto/ed25519 does, as pinned here:
//   - S must be canonical (S < L): S+L and S = L are rejected.
//   - The equation is cofactorless, [S]B = R + [k]A, compared as encodings of
//     R, so a non-canonical R encoding never verifies.
//   - Public keys are NOT checked for small order: the identity point and
//     points of order 2, 4 and 8 are accepted as keys. For such a key A the
//     "signature" R = identity, S = 0 verifies whenever [k]A is the identity,
//     i.e. for every message when A is the identity and for about one message
//     in ord(A) otherwise. Anyone can forge these; a submitter who uses such a
//     key only forges for itself, and governance must refuse to register one.
//   - Non-canonical public key encodings (y >= p, or x = 0 with the sign bit
//     set) are accepted and decoded as the point they denote; k is hashed
//     over the bytes as given.

// l is the order of the Ed25519 base point, 2^252 + 27742317777372353535851937790883648493.
var l = func() *big.Int {
	c, _ := new(big.Int).SetString("27742317777372353535851937790883648493", 10)
	return c.Add(c, new(big.Int).Lsh(big.NewInt(1), 252))
}()

func fromLE(b []byte) *big.Int {
	be := slices.Clone(b)
	slices.Reverse(be)
	return new(big.Int).SetBytes(be)
}

func toLE32(n *big.Int) []byte {
	b := n.FillBytes(make([]byte, 32))
	slices.Reverse(b)
	return b
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// identityR is the canonical encoding of the identity point (x=0, y=1).
var identityR = mustHex("0100000000000000000000000000000000000000000000000000000000000000")

// challenge returns k = SHA-512(R ‖ A ‖ M) mod L, as RFC 8032 computes it.
func challenge(r, a, msg []byte) *big.Int {
	h := sha512.New()
	h.Write(r)
	h.Write(a)
	h.Write(msg)
	return new(big.Int).Mod(fromLE(h.Sum(nil)), l)
}

func withKeySig(t *testing.T, size uint64, key, sig []byte) *evidence.Submission {
	t.Helper()
	sub, _ := testSubmission(t, "edge cases")
	sub.Size = size
	sub.Submitter = evidence.PublicKey{Alg: evidence.Ed25519, Key: key}
	sub.Signature = sig
	// The parser does not filter any of these: they are well-formed.
	enc, err := sub.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	p, err := evidence.ParseSubmission(enc)
	if err != nil {
		t.Fatalf("ParseSubmission: %v", err)
	}
	return p
}

func TestEd25519NonCanonicalS(t *testing.T) {
	sub, _ := testSubmission(t, "edge cases")
	if err := sub.Verify(testOrigin); err != nil {
		t.Fatal(err)
	}
	s := fromLE(sub.Signature[32:])
	for _, tt := range []struct {
		name string
		s    *big.Int
	}{
		{"S+L", new(big.Int).Add(s, l)},
		{"S+2L", new(big.Int).Add(s, new(big.Int).Lsh(l, 1))},
		{"S+8L", new(big.Int).Add(s, new(big.Int).Lsh(l, 3))},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bad := *sub
			bad.Signature = append(slices.Clone(sub.Signature[:32]), toLE32(tt.s)...)
			if err := bad.Verify(testOrigin); !errors.Is(err, evidence.ErrBadSignature) {
				t.Errorf("Verify = %v, want ErrBadSignature (S >= L is rejected)", err)
			}
		})
	}
	t.Run("S=L with identity key", func(t *testing.T) {
		// [L]B is the identity, so this satisfies the equation; only the
		// S < L rule rejects it.
		p := withKeySig(t, 1, identityR, append(slices.Clone(identityR), toLE32(l)...))
		if err := p.Verify(testOrigin); !errors.Is(err, evidence.ErrBadSignature) {
			t.Errorf("Verify = %v, want ErrBadSignature", err)
		}
	})
}

func TestEd25519SmallOrderAndNonCanonicalKeys(t *testing.T) {
	zeroS := make([]byte, 32)
	tests := []struct {
		name  string
		key   string
		order int64 // order of the decoded point
	}{
		{"identity", "0100000000000000000000000000000000000000000000000000000000000000", 1},
		{"order 2 (0,-1)", "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", 2},
		{"order 4 (y=0)", "0000000000000000000000000000000000000000000000000000000000000000", 4},
		{"order 4 (y=0, x negative)", "0000000000000000000000000000000000000000000000000000000000000080", 4},
		{"order 8", "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a", 8},
		{"order 8 (other)", "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05", 8},
		// Non-canonical encodings.
		{"identity as y=p+1", "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", 1},
		{"identity with sign bit (x=-0)", "0100000000000000000000000000000000000000000000000000000000000080", 1},
		{"order 4 as y=p", "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := mustHex(tt.key)
			accepted, rejected := 0, 0
			for size := uint64(0); size < 32; size++ {
				p := withKeySig(t, size, key, append(slices.Clone(identityR), zeroS...))
				msg, err := p.SignedMessage(testOrigin)
				if err != nil {
					t.Fatal(err)
				}
				// [S]B - [k]A = -[k]A is the identity iff ord(A) divides k.
				want := new(big.Int).Mod(challenge(identityR, key, msg), big.NewInt(tt.order)).Sign() == 0
				err = p.Verify(testOrigin)
				if got := err == nil; got != want {
					t.Errorf("size %d: accepted = %v, want %v (k mod %d = 0 is %v)", size, got, want, tt.order, want)
				} else if err != nil && !errors.Is(err, evidence.ErrBadSignature) {
					t.Errorf("size %d: %v", size, err)
				}
				if err == nil {
					accepted++
				} else {
					rejected++
				}
			}
			if accepted == 0 {
				t.Errorf("no forgery accepted in 32 messages; small-order keys are expected to be accepted")
			}
			if tt.order > 1 && rejected == 0 {
				t.Errorf("order %d key: all 32 forgeries accepted, want only those with ord(A) | k", tt.order)
			}
			if tt.order == 1 && rejected != 0 {
				t.Errorf("identity key: %d forgeries rejected, want all accepted", rejected)
			}
		})
	}
}

func TestEd25519NonCanonicalR(t *testing.T) {
	// With the identity key, [S]B - [k]A = identity for S = 0; R must be the
	// canonical identity encoding, not another encoding of the same point.
	for _, r := range []string{
		"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // y = p+1
		"0100000000000000000000000000000000000000000000000000000000000080", // x = -0
	} {
		p := withKeySig(t, 1, identityR, append(mustHex(r), make([]byte, 32)...))
		if err := p.Verify(testOrigin); !errors.Is(err, evidence.ErrBadSignature) {
			t.Errorf("R = %s: Verify = %v, want ErrBadSignature", r[:8], err)
		}
	}
	p := withKeySig(t, 1, identityR, append(slices.Clone(identityR), make([]byte, 32)...))
	if err := p.Verify(testOrigin); err != nil {
		t.Errorf("canonical R: %v", err)
	}
}

func TestEd25519InvalidKeyEncoding(t *testing.T) {
	// y = 2 is not the y of any curve point: the key does not decode and
	// nothing verifies under it.
	key := mustHex("0200000000000000000000000000000000000000000000000000000000000000")
	p := withKeySig(t, 1, key, append(slices.Clone(identityR), make([]byte, 32)...))
	if err := p.Verify(testOrigin); !errors.Is(err, evidence.ErrBadSignature) {
		t.Errorf("Verify = %v, want ErrBadSignature", err)
	}
}
