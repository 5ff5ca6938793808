package ledger

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cunzheng/cunzheng/chain/checkpoint"
	"github.com/cunzheng/cunzheng/chain/store"
	"github.com/cunzheng/cunzheng/evidence"
)

// Manifest versions. The genesis manifest is in force from the start; a
// manifest update entry at log index i puts the next version in force for
// every tree of size > i (so the checkpoint of the tree that first holds
// the update is signed under the new policy) and for admitting entries of
// every later block. Entries of the update's own block are admitted under
// the version before it, and a block carries at most one update. Each
// version is stored (caller key ManifestKey(seq) → u64 index ‖ entry) in
// the batch of the block that carries it, so a restart reloads the chain
// exactly as far as the log goes.

// version is one manifest version in force from tree size from.
type version struct {
	m      *evidence.Manifest
	policy checkpoint.Policy
	enc    []byte // canonical genesis manifest, or the update's governance entry
	from   uint64
}

func newVersion(m *evidence.Manifest, enc []byte, from uint64) (*version, error) {
	p, err := m.Policy()
	if err != nil {
		return nil, err
	}
	return &version{m: m, enc: enc, from: from, policy: p}, nil
}

// loadVersions reads the manifest chain the log holds, checking each
// update again under the version before it.
func loadVersions(st *store.Store, genesis *evidence.Manifest, genesisEnc []byte) ([]*version, error) {
	g, err := newVersion(genesis, genesisEnc, 0)
	if err != nil {
		return nil, err
	}
	out := []*version{g}
	var used evidence.UsedIdentities
	used.Add(genesis)
	err = st.ScanPrefix(store.ManifestPrefix(), func(key, value []byte) error {
		index, entry, err := decodeManifestValue(value)
		if err != nil {
			return err
		}
		gov, err := evidence.ParseGovernance(entry)
		if err != nil {
			return err
		}
		next, err := evidence.CheckManifestUpdate(out[len(out)-1].m, gov, &used)
		if err != nil {
			return err
		}
		if !bytes.Equal(key, store.ManifestKey(next.Sequence)) {
			return fmt.Errorf("manifest version %d stored under key %x", next.Sequence, key)
		}
		used.Add(next)
		v, err := newVersion(next, bytes.Clone(entry), index+1)
		if err != nil {
			return err
		}
		out = append(out, v)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: stored manifest chain: %w", err)
	}
	return out, nil
}

func encodeManifestValue(index uint64, entry []byte) []byte {
	return append(store.EncodeIndex(index), entry...)
}

func decodeManifestValue(v []byte) (uint64, []byte, error) {
	if len(v) < 9 {
		return 0, nil, errors.New("corrupt manifest version value")
	}
	return binary.BigEndian.Uint64(v), v[8:], nil
}

// chain returns the versions (immutable; replaced whole when one is added).
func (l *Ledger) chain() []*version { return *l.versions.Load() }

// current returns the newest version.
func (l *Ledger) current() *version {
	c := l.chain()
	return c[len(c)-1]
}

// versionFor returns the version in force for the tree of size size.
func (l *Ledger) versionFor(size uint64) *version {
	c := l.chain()
	for i := len(c) - 1; i > 0; i-- {
		if c[i].from <= size {
			return c[i]
		}
	}
	return c[0]
}

// ManifestsFor returns the manifest chain up to the version in force for
// the tree of size treeSize: what a receipt against that tree's checkpoint
// carries.
func (l *Ledger) ManifestsFor(treeSize uint64) [][]byte {
	c := l.chain()
	out := [][]byte{c[0].enc}
	for _, v := range c[1:] {
		if v.from > treeSize {
			break
		}
		out = append(out, v.enc)
	}
	return out
}

// usedIdentities returns every identity any version has listed.
func (l *Ledger) usedIdentities() *evidence.UsedIdentities {
	var u evidence.UsedIdentities
	for _, v := range l.chain() {
		u.Add(v.m)
	}
	return &u
}

// checkUpdate checks a manifest update against the version in force and
// the block so far, and returns the next manifest.
func (l *Ledger) checkUpdate(g *evidence.Governance, ov overlay) (*evidence.Manifest, error) {
	next, err := evidence.CheckManifestUpdate(l.current().m, g, l.usedIdentities())
	switch {
	case errors.Is(err, evidence.ErrReused):
		return nil, fmt.Errorf("%w: %w", ErrConflict, err)
	case errors.Is(err, evidence.ErrBadSignature):
		return nil, fmt.Errorf("%w: %w", ErrUnauthorized, err)
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if _, dup, err := l.get(ov, string(store.ManifestKey(next.Sequence))); err != nil {
		return nil, err
	} else if dup {
		return nil, fmt.Errorf("%w: manifest version %d is already in the log or this block", ErrConflict, next.Sequence)
	}
	return next, nil
}

// installVersions puts the manifest versions among kvs (just made durable)
// in force and tells the owner.
func (l *Ledger) installVersions(kvs []storeKV) {
	prefix := store.ManifestPrefix()
	for _, kv := range kvs {
		if !bytes.HasPrefix(kv.Key, prefix) {
			continue
		}
		index, entry, err := decodeManifestValue(kv.Value)
		if err != nil {
			panic("ledger: manifest version written corrupt: " + err.Error())
		}
		g, err := evidence.ParseGovernance(entry)
		if err != nil {
			panic("ledger: manifest update admitted unparsable: " + err.Error())
		}
		m, err := evidence.ParseManifest(g.Manifest)
		if err != nil {
			panic("ledger: manifest update admitted unparsable: " + err.Error())
		}
		v, err := newVersion(m, entry, index+1)
		if err != nil {
			panic("ledger: manifest update admitted with bad keys: " + err.Error())
		}
		c := append(append([]*version(nil), l.chain()...), v)
		l.versions.Store(&c)
		l.log.Info("manifest version in force", "sequence", m.Sequence, "members", len(m.Members), "from_tree_size", index+1)
		if l.onManifest != nil {
			l.onManifest(m)
		}
	}
}

// noteSize reads the tree size of a signed checkpoint note without
// verifying it, to pick the manifest version that must verify it.
func noteSize(signed []byte) (uint64, error) {
	c, err := noteBody(signed)
	return uint64(c.Size), err
}

// noteBody parses the checkpoint body of a signed note without verifying
// any signature.
func noteBody(signed []byte) (checkpoint.Checkpoint, error) {
	body, _, ok := bytes.Cut(signed, []byte("\n\n"))
	if !ok {
		return checkpoint.Checkpoint{}, checkpoint.ErrMalformed
	}
	return checkpoint.ParseBody(string(body) + "\n")
}

// StoredManifests returns the manifest chain the log in st holds (genesis
// first), checked as Open checks it: a node reads it before it opens the
// ledger, to know the members to connect to.
func StoredManifests(st *store.Store, genesis []byte) ([][]byte, error) {
	m, err := evidence.ParseManifest(genesis)
	if err != nil {
		return nil, fmt.Errorf("ledger: genesis: %w", err)
	}
	vs, err := loadVersions(st, m, genesis)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(vs))
	for i, v := range vs {
		out[i] = v.enc
	}
	return out, nil
}
