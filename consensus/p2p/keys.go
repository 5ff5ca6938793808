package p2p

import (
	"bytes"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// keyPEMType names the PEM block that holds a node's libp2p identity: the
// protobuf encoding of crypto.MarshalPrivateKey, which records the key
// type beside the key.
const keyPEMType = "LIBP2P PRIVATE KEY"

// ErrKeyFormat is returned for a key file that is not exactly one PEM
// block holding an Ed25519 libp2p private key.
var ErrKeyFormat = errors.New("p2p: malformed libp2p key")

// GenerateKey returns a fresh Ed25519 libp2p identity key.
func GenerateKey() (crypto.PrivKey, error) {
	sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate libp2p key: %w", err)
	}
	return sk, nil
}

// PeerIDFromKey returns the peer ID that key identifies.
func PeerIDFromKey(key crypto.PrivKey) (peer.ID, error) {
	if key == nil {
		return "", fmt.Errorf("peer ID: %w: no key", ErrKeyFormat)
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return "", fmt.Errorf("peer ID: %w", err)
	}
	return id, nil
}

// MarshalKey encodes an Ed25519 identity key as a PEM block.
func MarshalKey(key crypto.PrivKey) ([]byte, error) {
	if key == nil || key.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("marshal key: %w: want Ed25519", ErrKeyFormat)
	}
	der, err := crypto.MarshalPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: keyPEMType, Bytes: der}), nil
}

// UnmarshalKey decodes what MarshalKey wrote. It accepts exactly one PEM
// block of the right type, without headers, followed by nothing but
// whitespace, holding an Ed25519 key.
func UnmarshalKey(data []byte) (crypto.PrivKey, error) {
	block, rest := pem.Decode(data)
	if block == nil || block.Type != keyPEMType || len(block.Headers) != 0 ||
		len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("unmarshal key: %w: want one %q PEM block", ErrKeyFormat, keyPEMType)
	}
	key, err := crypto.UnmarshalPrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("unmarshal key: %w: %v", ErrKeyFormat, err)
	}
	if key.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("unmarshal key: %w: key type %v, want Ed25519", ErrKeyFormat, key.Type())
	}
	return key, nil
}

// WriteKeyFile stores key at path, readable by the owner only. It refuses
// to replace an existing file: a node's identity is its peer ID in the
// manifest, so losing it by accident would cut the node off. The key is
// written to a temporary file, fsynced, renamed into place, and the
// directory fsynced, so a crash leaves either no file or the whole key.
func WriteKeyFile(path string, key crypto.PrivKey) error {
	data, err := MarshalKey(key)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("write key %s: %w", path, os.ErrExist)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".libp2p-key-*")
	if err != nil {
		return fmt.Errorf("write key %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write key %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write key %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write key %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write key %s: %w", path, err)
	}
	// Link, unlike rename, fails if path appeared meanwhile.
	if err := os.Link(tmp.Name(), path); err != nil {
		return fmt.Errorf("write key %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("write key %s: sync dir: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("write key %s: sync dir: %w", path, err)
	}
	return nil
}

// ReadKeyFile loads a key written by WriteKeyFile.
func ReadKeyFile(path string) (crypto.PrivKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	key, err := UnmarshalKey(data)
	if err != nil {
		return nil, fmt.Errorf("read key %s: %w", path, err)
	}
	return key, nil
}
