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
// What is pinned here:
//   - S must be canonical (S < L): S+L, S+2L, S+8L are rejected
//     (crypto/ed25519's rule).
//   - Public keys must be canonical encodings of points of large order.
//     crypto/ed25519 itself accepts small-order keys (for the identity key,
//     R = identity and S = 0 verifies for every message) and non-canonical
//     encodings (y >= p, x = -0), so evidence rejects them when any key is
//     parsed (ErrMalformed), before a signature is ever checked. The test
//     below also shows, with an independent big-integer computation, that
//     crypto/ed25519 alone would accept forgeries under those keys — which
//     is why the parse-time rule exists.

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
	return sub
}

// rawSubmission encodes a submission with an arbitrary key, bypassing the
// encoder's checks, so the parser's rejection can be tested.
func rawSubmission(t *testing.T, key, sig []byte) []byte {
	t.Helper()
	sub, _ := testSubmission(t, "edge cases")
	enc, err := sub.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// The key sits right before the 32-byte commitment and the signature.
	pos := len(enc) - 1 - 64 - 32 - 32
	out := slices.Clone(enc[:pos])
	out = append(out, key...)
	out = append(out, enc[pos+32:len(enc)-64]...)
	return append(out, sig...)
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
			forgery := append(slices.Clone(identityR), zeroS...)
			// The parser refuses the key outright.
			if _, err := evidence.ParseSubmission(rawSubmission(t, key, forgery)); !errors.Is(err, evidence.ErrMalformed) {
				t.Fatalf("ParseSubmission = %v, want ErrMalformed", err)
			}
			p := withKeySig(t, 1, key, forgery)
			if err := p.Verify(testOrigin); !errors.Is(err, evidence.ErrMalformed) {
				t.Fatalf("Verify = %v, want ErrMalformed", err)
			}
			// Independently: such a key admits forgeries R = identity,
			// S = 0 whenever ord(A) divides k, which crypto/ed25519 alone
			// would accept.
			forged := 0
			for size := uint64(0); size < 32; size++ {
				k := challenge(identityR, key, []byte{byte(size)})
				if new(big.Int).Mod(k, big.NewInt(tt.order)).Sign() == 0 {
					forged++
				}
			}
			if tt.order == 1 && forged != 32 {
				t.Fatalf("identity key: %d of 32 forgeries, want all", forged)
			}
		})
	}
}

func TestEd25519InvalidKeyEncoding(t *testing.T) {
	// y = 2 is canonical but not the y of any curve point: the cheap parse
	// check lets it through and no signature verifies under it.
	key := mustHex("0200000000000000000000000000000000000000000000000000000000000000")
	p, err := evidence.ParseSubmission(rawSubmission(t, key, make([]byte, 64)))
	if err != nil {
		t.Fatalf("ParseSubmission: %v", err)
	}
	if err := p.Verify(testOrigin); !errors.Is(err, evidence.ErrBadSignature) {
		t.Errorf("Verify = %v, want ErrBadSignature", err)
	}
}
