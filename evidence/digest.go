package evidence

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"
)

// DigestAlg identifies an evidence digest algorithm. The numbers are part of
// the permanent encoding.
type DigestAlg uint8

const (
	// SHA256 is mandatory in every Submission, and is always the primary digest.
	SHA256 DigestAlg = 1
	// SM3 (GB/T 32905) may accompany SHA-256 on networks that use national
	// cryptography. Computing it is up to the client; this package only
	// carries and compares the bytes.
	SM3 DigestAlg = 2
)

// Size returns the digest length in bytes, or 0 for an unknown algorithm.
func (a DigestAlg) Size() int {
	switch a {
	case SHA256, SM3:
		return 32
	}
	return 0
}

// String returns the algorithm name used in JSON and on screen.
func (a DigestAlg) String() string {
	switch a {
	case SHA256:
		return "sha256"
	case SM3:
		return "sm3"
	}
	return fmt.Sprintf("alg(%d)", uint8(a))
}

// ParseDigestAlg maps a name ("sha256", "sm3") to its algorithm.
func ParseDigestAlg(name string) (DigestAlg, error) {
	switch strings.ToLower(name) {
	case "sha256", "sha-256":
		return SHA256, nil
	case "sm3":
		return SM3, nil
	}
	return 0, fmt.Errorf("%w: unknown digest algorithm %q", ErrUnsupported, name)
}

// Digest is one evidence digest.
type Digest struct {
	Alg   DigestAlg
	Value []byte
}

// String renders the digest as "alg:hex".
func (d Digest) String() string { return d.Alg.String() + ":" + hex.EncodeToString(d.Value) }

// SHA256Digest returns the SHA-256 evidence digest of data.
func SHA256Digest(data []byte) Digest {
	s := sha256.Sum256(data)
	return Digest{Alg: SHA256, Value: s[:]}
}

// NewSHA256 returns a streaming hash for SHA-256 evidence digests; callers
// hash large files through it without holding them in memory.
func NewSHA256() hash.Hash { return sha256.New() }

// MaxDigests bounds the digests of one Submission.
const MaxDigests = 4

func validateDigests(ds []Digest) error {
	if len(ds) == 0 || len(ds) > MaxDigests {
		return fmt.Errorf("%w: want 1 to %d digests, got %d", ErrMalformed, MaxDigests, len(ds))
	}
	if ds[0].Alg != SHA256 {
		return fmt.Errorf("%w: first digest must be sha256, got %s", ErrMalformed, ds[0].Alg)
	}
	seen := map[DigestAlg]bool{}
	for _, d := range ds {
		n := d.Alg.Size()
		if n == 0 {
			return fmt.Errorf("%w: digest %s", ErrUnsupported, d.Alg)
		}
		if len(d.Value) != n {
			return fmt.Errorf("%w: %s digest is %d bytes, want %d", ErrMalformed, d.Alg, len(d.Value), n)
		}
		if seen[d.Alg] {
			return fmt.Errorf("%w: duplicate %s digest", ErrMalformed, d.Alg)
		}
		seen[d.Alg] = true
	}
	return nil
}
