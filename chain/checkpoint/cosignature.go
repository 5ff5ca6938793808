package checkpoint

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// Witness cosignatures follow C2SP tlog-cosignature
// (https://c2sp.org/tlog-cosignature): an Ed25519 signature, key type 0x04,
// over
//
//	cosignature/v1
//	time <unix seconds>
//	<checkpoint body>
//
// encoded in a signed-note signature line as key hash ‖ 8-byte big-endian
// time ‖ 64-byte signature. The time is the witness's, so a cosignature also
// says "this witness saw this tree no later than T".

// cosignatureAlg is the signed-note key type of cosignature/v1 keys.
const cosignatureAlg = 0x04

// CosignatureVerifier is a note.Verifier for one witness's cosignature/v1 key.
type CosignatureVerifier struct {
	name string
	hash uint32
	key  ed25519.PublicKey
}

var _ note.Verifier = (*CosignatureVerifier)(nil)

// NewCosignatureVerifier parses a cosignature/v1 verifier key
// "<name>+<hex key hash>+<base64(0x04 ‖ Ed25519 public key)>".
func NewCosignatureVerifier(vkey string) (*CosignatureVerifier, error) {
	name, rest, ok1 := strings.Cut(vkey, "+")
	hash16, key64, ok2 := strings.Cut(rest, "+")
	if !ok1 || !ok2 || !validName(name) || len(hash16) != 8 {
		return nil, fmt.Errorf("%w: cosignature key %q is not name+hash+key", ErrMalformed, vkey)
	}
	h, err := strconv.ParseUint(hash16, 16, 32)
	if err != nil || fmt.Sprintf("%08x", h) != hash16 {
		return nil, fmt.Errorf("%w: cosignature key hash %q", ErrMalformed, hash16)
	}
	raw, err := DecodeBase64(key64)
	if err != nil || len(raw) != 1+ed25519.PublicKeySize || raw[0] != cosignatureAlg {
		return nil, fmt.Errorf("%w: cosignature key %q is not a type 0x04 Ed25519 key", ErrMalformed, name)
	}
	if uint32(h) != cosignatureKeyHash(name, raw[1:]) {
		return nil, fmt.Errorf("%w: cosignature key %q: hash does not match name and key", ErrMalformed, name)
	}
	return &CosignatureVerifier{name: name, hash: uint32(h), key: ed25519.PublicKey(raw[1:])}, nil
}

// Name implements note.Verifier.
func (v *CosignatureVerifier) Name() string { return v.name }

// KeyHash implements note.Verifier.
func (v *CosignatureVerifier) KeyHash() uint32 { return v.hash }

// Verify implements note.Verifier: sig is the 8-byte time and the Ed25519
// signature over the cosigned message.
func (v *CosignatureVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	if _, err := ParseBody(string(msg)); err != nil {
		return false // a witness cosigns checkpoints, nothing else
	}
	t := binary.BigEndian.Uint64(sig)
	return ed25519.Verify(v.key, cosignedMessage(t, msg), sig[8:])
}

// String returns the verifier key.
func (v *CosignatureVerifier) String() string {
	return v.name + "+" + fmt.Sprintf("%08x", v.hash) + "+" +
		base64.StdEncoding.EncodeToString(append([]byte{cosignatureAlg}, v.key...))
}

// CosignatureTime returns the witness's time in a cosignature (the
// signature bytes after the key hash, as note.Verifier sees them).
func CosignatureTime(sig []byte) (time.Time, error) {
	if len(sig) != 8+ed25519.SignatureSize {
		return time.Time{}, fmt.Errorf("%w: cosignature is %d bytes", ErrMalformed, len(sig))
	}
	return time.Unix(int64(binary.BigEndian.Uint64(sig)), 0).UTC(), nil
}

// CosignatureSigner is a note.Signer that cosigns checkpoints as a witness.
type CosignatureSigner struct {
	v    CosignatureVerifier
	priv ed25519.PrivateKey
	now  func() time.Time
}

var _ note.Signer = (*CosignatureSigner)(nil)

// NewCosignatureSigner returns a witness signer named name. now is the
// witness clock (time.Now when nil).
func NewCosignatureSigner(name string, priv ed25519.PrivateKey, now func() time.Time) (*CosignatureSigner, error) {
	if !validName(name) {
		return nil, fmt.Errorf("%w: witness name %q", ErrMalformed, name)
	}
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: witness key is not an Ed25519 private key", ErrMalformed)
	}
	if now == nil {
		now = time.Now
	}
	pub := priv.Public().(ed25519.PublicKey)
	return &CosignatureSigner{
		v:    CosignatureVerifier{name: name, hash: cosignatureKeyHash(name, pub), key: pub},
		priv: priv, now: now,
	}, nil
}

// GenerateCosignatureKey makes a new witness key from rand.
func GenerateCosignatureKey(name string, rand io.Reader) (*CosignatureSigner, error) {
	_, priv, err := ed25519.GenerateKey(rand)
	if err != nil {
		return nil, err
	}
	return NewCosignatureSigner(name, priv, nil)
}

// Name implements note.Signer.
func (s *CosignatureSigner) Name() string { return s.v.name }

// KeyHash implements note.Signer.
func (s *CosignatureSigner) KeyHash() uint32 { return s.v.hash }

// Verifier returns the matching verifier.
func (s *CosignatureSigner) Verifier() *CosignatureVerifier { return &s.v }

// Sign implements note.Signer. It cosigns only checkpoint bodies.
func (s *CosignatureSigner) Sign(msg []byte) ([]byte, error) {
	if _, err := ParseBody(string(msg)); err != nil {
		return nil, fmt.Errorf("cosign: %w", err)
	}
	t := uint64(s.now().Unix())
	out := binary.BigEndian.AppendUint64(make([]byte, 0, 8+ed25519.SignatureSize), t)
	return append(out, ed25519.Sign(s.priv, cosignedMessage(t, msg))...), nil
}

func cosignedMessage(t uint64, body []byte) []byte {
	return []byte("cosignature/v1\ntime " + strconv.FormatUint(t, 10) + "\n" + string(body))
}

func cosignatureKeyHash(name string, pub ed25519.PublicKey) uint32 {
	h := sha256.New()
	h.Write([]byte(name + "\n"))
	h.Write([]byte{cosignatureAlg})
	h.Write(pub)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

func validName(name string) bool {
	return name != "" && len(name) <= 255 && !strings.ContainsAny(name, " \t\n\r+") && strings.ToValidUTF8(name, "") == name
}
