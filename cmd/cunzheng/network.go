package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cunzheng/cunzheng/api/client"
	"github.com/cunzheng/cunzheng/evidence"
)

// Limits on local files the CLI reads whole.
const (
	maxKeyFileBytes      = 4 << 10
	maxManifestFileBytes = client.MaxManifestFileBytes
)

// readSmallFile reads a file that must not exceed limit bytes.
func readSmallFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s is %d bytes, more than the %d a %s may be", path, fi.Size(), limit, "file of this kind")
	}
	b := make([]byte, fi.Size())
	if _, err := f.ReadAt(b, 0); err != nil && fi.Size() > 0 {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
}

func loadPrivateKey(path string) (ed25519.PrivateKey, error) {
	b, err := readSmallFile(path, maxKeyFileBytes)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	k, err := evidence.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("private key %s: %w", path, err)
	}
	return k, nil
}

func loadPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := readSmallFile(path, maxKeyFileBytes)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	k, err := evidence.ParsePublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", path, err)
	}
	return k, nil
}

// loadManifestFile reads a genesis manifest file (genesis.json).
func loadManifestFile(path string) (*evidence.Manifest, evidence.Fingerprint, error) {
	b, err := readSmallFile(path, maxManifestFileBytes)
	if err != nil {
		return nil, evidence.Fingerprint{}, fmt.Errorf("manifest: %w", err)
	}
	m, fp, err := evidence.ParseManifestFile(b)
	if err != nil {
		return nil, evidence.Fingerprint{}, fmt.Errorf("manifest %s: %w", path, err)
	}
	return m, fp, nil
}

// parseGenesisFlag parses --genesis; empty means not given.
func parseGenesisFlag(s string) (*evidence.Fingerprint, error) {
	if s == "" {
		return nil, nil
	}
	fp, err := evidence.ParseFingerprint(s)
	if err != nil {
		return nil, usageErrorf("--genesis: %v", err)
	}
	return &fp, nil
}

// nodeManifest fetches the node's genesis manifest. If pinned is non-nil the
// manifest must have that fingerprint; otherwise the node's word is taken,
// and callers show the fingerprint so the user can compare it out of band.
func nodeManifest(ctx context.Context, c *client.Client, pinned *evidence.Fingerprint) (*evidence.Manifest, evidence.Fingerprint, error) {
	b, err := c.Manifest(ctx)
	if err != nil {
		return nil, evidence.Fingerprint{}, fmt.Errorf("node %s: %w", c.URL(), err)
	}
	m, fp, err := evidence.ParseManifestFile(b)
	if err != nil {
		return nil, fp, fmt.Errorf("node %s: %w", c.URL(), err)
	}
	if pinned != nil && fp != *pinned {
		return nil, fp, fmt.Errorf("node %s serves network %s, not the pinned genesis %s", c.URL(), fp, *pinned)
	}
	return m, fp, nil
}

func newClient(nodeURL string) (*client.Client, error) {
	c, err := client.New(nodeURL)
	if err != nil {
		return nil, usageErrorf("--node: %v", err)
	}
	return c, nil
}

// writeFileAtomic writes data to path through a temporary file and a rename,
// so a crash leaves either the old file or the new one, never a torn one;
// it returns after the file and its directory are synced.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	defer os.Remove(name) // no-op after a successful rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(name, path); err != nil {
		return err
	}
	// The rename is durable only once the directory is synced; a crash
	// before that may still show the old file, never a torn one.
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
