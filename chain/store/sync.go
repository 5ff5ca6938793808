package store

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/cunzheng/cunzheng/chain"
)

// Block returns the block at height exactly as it was appended: its header,
// its leaves and its sidecars, so that a peer catching up can be sent the
// same bytes ([chain.Block.Marshal]) that consensus ordered. As with
// [chain.ParseBlock], Sidecars is non-nil with one entry per leaf, nil for
// an empty sidecar. A height the store does not hold is ErrNotFound.
func (s *Store) Block(height uint64) (*chain.Block, error) {
	h, err := s.BlockHeader(height)
	if err != nil {
		return nil, err
	}
	b := &chain.Block{Header: *h, Leaves: make([][]byte, h.Count), Sidecars: make([][]byte, h.Count)}
	err = s.scanLeaves(h.FirstIndex, h.TreeSize, func(i uint64, leaf []byte) {
		b.Leaves[i-h.FirstIndex] = bytes.Clone(leaf)
	})
	if err != nil {
		return nil, fmt.Errorf("block %d: %w", height, err)
	}
	err = s.scan(sidecarKey(h.FirstIndex), sidecarKey(h.TreeSize), func(k, v []byte) error {
		i, err := keyNum(prefixSidecar, k)
		if err != nil {
			return err
		}
		b.Sidecars[i-h.FirstIndex] = bytes.Clone(v)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("block %d: %w", height, err)
	}
	return b, nil
}

// SetSyncTarget durably records that this node is catching up, over block
// sync, to the block at height. Until ClearSyncTarget the node must neither
// sign nor serve; the store enforces the first half (RecordSigned fails
// with ErrSyncing) and the caller the second. The record survives
// restarts, so a node that crashes while catching up resumes catching up
// rather than signing a tree it has not finished checking. Setting a new
// target replaces the old one. It returns after the fsync.
func (s *Store) SetSyncTarget(height uint64) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.failed != nil {
		return s.failed
	}
	if height == 0 {
		return fmt.Errorf("set sync target: height 0 is not a block")
	}
	return s.setSynced(keySyncTarget, EncodeIndex(height), fmt.Sprintf("set sync target %d", height))
}

// SyncTarget returns the height recorded by SetSyncTarget; ok is false when
// the node is not catching up.
func (s *Store) SyncTarget() (height uint64, ok bool, err error) {
	v, err := get(s.db, keySyncTarget)
	if errors.Is(err, ErrNotFound) {
		return 0, false, nil
	}
	if err == nil {
		height, err = DecodeIndex(v)
	}
	if err != nil {
		return 0, false, fmt.Errorf("sync target: %w", err)
	}
	return height, true, nil
}

// ClearSyncTarget durably records that the node has caught up. Clearing
// when no target is set is a no-op. It returns after the fsync; a crash
// before it leaves the target set, which only delays signing.
func (s *Store) ClearSyncTarget() error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.failed != nil {
		return s.failed
	}
	if _, ok, err := s.SyncTarget(); err != nil || !ok {
		return err
	}
	batch := s.db.NewBatch()
	defer batch.Close()
	if err := batch.Delete(keySyncTarget, nil); err != nil {
		return fmt.Errorf("clear sync target: %w", err)
	}
	return s.commit(batch, "clear sync target")
}
