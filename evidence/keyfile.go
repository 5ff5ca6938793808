package evidence

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"github.com/cunzheng/cunzheng/chain/checkpoint"
)

// Key file headers. A key file is two lines: the header, then the standard
// base64 of the key bytes (the 32-byte Ed25519 seed for a private key, the
// 32-byte public key for a public one).
const (
	PrivateKeyHeader = "cunzheng-ed25519-private-key/v1"
	PublicKeyHeader  = "cunzheng-ed25519-public-key/v1"
)

// MarshalPrivateKey renders an Ed25519 private key file.
func MarshalPrivateKey(k ed25519.PrivateKey) []byte {
	return []byte(PrivateKeyHeader + "\n" + base64.StdEncoding.EncodeToString(k.Seed()) + "\n")
}

// MarshalPublicKey renders an Ed25519 public key file.
func MarshalPublicKey(k ed25519.PublicKey) []byte {
	return []byte(PublicKeyHeader + "\n" + base64.StdEncoding.EncodeToString(k) + "\n")
}

func parseKeyFile(data []byte, header string) ([]byte, error) {
	lines := bytes.Split(data, []byte("\n"))
	if len(lines) != 3 || len(lines[2]) != 0 || string(lines[0]) != header {
		return nil, fmt.Errorf("%w: not a key file of type %s", ErrMalformed, header)
	}
	k, err := checkpoint.DecodeBase64(string(lines[1]))
	if err != nil || len(k) != 32 {
		return nil, fmt.Errorf("%w: %s: key is not 32 bytes of canonical base64", ErrMalformed, header)
	}
	return k, nil
}

// ParsePrivateKey parses an Ed25519 private key file.
func ParsePrivateKey(data []byte) (ed25519.PrivateKey, error) {
	seed, err := parseKeyFile(data, PrivateKeyHeader)
	if err != nil {
		return nil, err
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// ParsePublicKey parses an Ed25519 public key file.
func ParsePublicKey(data []byte) (ed25519.PublicKey, error) {
	k, err := parseKeyFile(data, PublicKeyHeader)
	if err != nil {
		return nil, err
	}
	return ed25519.PublicKey(k), nil
}
