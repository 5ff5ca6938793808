package evidence

import (
	"crypto/rand"
	"encoding/hex"
	"testing"

	"filippo.io/edwards25519"
)

// reference decides the same question as checkEd25519Key the slow way: a
// full point decoding, a canonical re-encoding, and [8]P == identity.
func reference(key []byte) bool {
	p, err := new(edwards25519.Point).SetBytes(key)
	if err != nil {
		// Not a point at all: crypto/ed25519 rejects every signature under
		// it, so the cheap check may let it through; only the y < p rule
		// applies to it.
		return true
	}
	if hex.EncodeToString(p.Bytes()) != hex.EncodeToString(key) {
		return false
	}
	return new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) != 1
}

func nonCanonicalY(key []byte) bool {
	k := [32]byte(key)
	k[31] &= 0x7f
	for i := 31; i >= 0; i-- {
		if k[i] != fieldP[i] {
			return k[i] > fieldP[i]
		}
	}
	return true // y == p
}

func TestCheckEd25519KeyMatchesPointDecoding(t *testing.T) {
	var keys [][]byte
	for k := range smallOrderKeys {
		keys = append(keys, k[:])
	}
	// Every y in [p, 2^255) with both sign bits, and y near 0, ±1.
	for d := 0; d < 19; d++ {
		for _, sign := range []byte{0, 0x80} {
			k := fieldP
			k[0] += byte(d)
			k[31] |= sign
			keys = append(keys, k[:])
			lo := [32]byte{byte(d)}
			lo[31] |= sign
			keys = append(keys, lo[:])
		}
	}
	for range 2000 {
		k := make([]byte, 32)
		rand.Read(k)
		keys = append(keys, k)
	}
	for _, k := range keys {
		got := checkEd25519Key("key", k) == nil
		want := reference(k)
		if _, err := new(edwards25519.Point).SetBytes(k); err != nil {
			want = !nonCanonicalY(k)
		}
		if got != want {
			t.Errorf("key %x: accepted=%v, point decoding says %v", k, got, want)
		}
	}
}
