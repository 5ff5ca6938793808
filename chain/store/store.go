package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/cunzheng/cunzheng/chain"
)

// Errors returned by the store; callers branch with errors.Is.
var (
	// ErrNotFound reports a key, leaf, block, tile or checkpoint the store
	// does not hold (including anything beyond the current tree).
	ErrNotFound = errors.New("store: not found")
	// ErrBadBlock reports a block AppendBlock refused; the message names the
	// failed check. Nothing was written.
	ErrBadBlock = errors.New("store: bad block")
	// ErrWrongNetwork reports a directory that belongs to another genesis.
	ErrWrongNetwork = errors.New("store: wrong network")
	// ErrConflict reports a write that would replace different data: a second
	// checkpoint for one size, or a second signed root for one size.
	ErrConflict = errors.New("store: conflict")
	// ErrBeyondTree reports a checkpoint or signature for a tree size the
	// store does not hold yet.
	ErrBeyondTree = errors.New("store: size beyond tree")
	// ErrCorrupt reports stored bytes that do not decode; the database is
	// damaged or was written by something else.
	ErrCorrupt = errors.New("store: corrupt")
	// ErrFailed reports a store whose last write failed at the sync: its
	// on-disk state is unknown until it is closed and reopened.
	ErrFailed = errors.New("store: failed write, reopen")
)

// DefaultCacheSize is the block cache size used when Options.CacheSize is 0.
const DefaultCacheSize = 64 << 20

// Options configure Open. The zero value works.
type Options struct {
	// FS is the filesystem; nil means vfs.Default. Tests pass
	// vfs.NewCrashableMem().
	FS vfs.FS
	// Logger receives Pebble's log lines; nil discards them.
	Logger *slog.Logger
	// CacheSize is the block cache size in bytes; 0 means DefaultCacheSize.
	CacheSize int64
}

// KV is one caller index entry written with a block. Key must be built with
// the helpers in keys.go (the caller namespace).
type KV struct{ Key, Value []byte }

// Store is the durable log of one node: blocks, leaves, sidecars, the
// Merkle tree's stored hashes, final checkpoints and the caller's indexes.
//
// Concurrency: one writer, many readers. Writes (AppendBlock, PutCheckpoint,
// RecordSigned) are serialized by the store; reads may run concurrently with
// them and with each other. A reader sees either all of a block or none of
// it, and never data beyond Head.
//
// Ownership: every returned slice is a fresh copy owned by the caller,
// except the key and value passed to a ScanPrefix callback.
type Store struct {
	db *pebble.DB

	// writeMu serializes writers, so that verification and the commit see
	// the same head.
	writeMu sync.Mutex
	failed  error // set under writeMu when a commit failed

	mu       sync.RWMutex // guards the fields below
	head     chain.BlockHeader
	headHash [32]byte
	hasHead  bool
}

// Open opens (creating if needed) the store in dir for the network whose
// genesis fingerprint is genesis. A directory that holds another network's
// fingerprint fails with ErrWrongNetwork and is not modified: it is
// inspected read-only before it is opened for writing.
func Open(dir string, genesis [32]byte, opts Options) (*Store, error) {
	if opts.FS == nil {
		opts.FS = vfs.Default
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.CacheSize == 0 {
		opts.CacheSize = DefaultCacheSize
	}
	if desc, err := pebble.Peek(dir, opts.FS); err == nil && desc.Exists {
		if err := checkGenesis(dir, genesis, opts); err != nil {
			return nil, err
		}
	}
	db, err := openPebble(dir, opts, false)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	s := &Store{db: db}
	if err := s.init(genesis); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	return s, nil
}

func openPebble(dir string, opts Options, readOnly bool) (*pebble.DB, error) {
	cache := pebble.NewCache(opts.CacheSize)
	defer cache.Unref()
	return pebble.Open(dir, &pebble.Options{
		FS:                 opts.FS,
		Cache:              cache,
		Logger:             pebbleLogger{opts.Logger},
		FormatMajorVersion: pebble.FormatNewest,
		ReadOnly:           readOnly,
		ErrorIfNotExists:   readOnly,
	})
}

// checkGenesis opens an existing database read-only and compares its
// fingerprint, so that a wrong network's directory is never written to.
func checkGenesis(dir string, genesis [32]byte, opts Options) error {
	db, err := openPebble(dir, opts, true)
	if err != nil {
		return fmt.Errorf("open store %s read-only: %w", dir, err)
	}
	defer db.Close()
	v, err := get(db, keyGenesis)
	if errors.Is(err, ErrNotFound) {
		return nil // created but never initialized: init writes it
	}
	if err != nil {
		return err
	}
	if !bytes.Equal(v, genesis[:]) {
		return fmt.Errorf("open store %s: genesis %x, want %x: %w", dir, v, genesis, ErrWrongNetwork)
	}
	return nil
}

// init records the genesis fingerprint of a new store and loads the head.
func (s *Store) init(genesis [32]byte) error {
	v, err := get(s.db, keyGenesis)
	switch {
	case errors.Is(err, ErrNotFound):
		// A crash before this sync leaves a database without a fingerprint,
		// which the next Open treats as new.
		if err := s.db.Set(keyGenesis, genesis[:], pebble.Sync); err != nil {
			return fmt.Errorf("write genesis: %w", err)
		}
	case err != nil:
		return err
	case !bytes.Equal(v, genesis[:]):
		return fmt.Errorf("genesis %x, want %x: %w", v, genesis, ErrWrongNetwork)
	}
	v, err = get(s.db, keyHead)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	h, err := chain.ParseBlockHeader(v)
	if err != nil {
		return fmt.Errorf("%w: head: %w", ErrCorrupt, err)
	}
	s.head, s.headHash, s.hasHead = *h, h.Hash(), true
	return nil
}

// Close closes the database. The store must not be used afterwards.
func (s *Store) Close() error { return s.db.Close() }

// Head returns the latest block header, or false when the log is empty.
func (s *Store) Head() (chain.BlockHeader, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.head, s.hasHead
}

// TreeSize returns the number of leaves in the log.
func (s *Store) TreeSize() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.head.TreeSize
}

// AppendBlock verifies b against the head and writes it, with the caller's
// index entries, in one atomic batch. It refuses (ErrBadBlock, writing
// nothing) a block whose height, prev hash, first index, leaf count, origin
// or time does not follow the head, or whose root differs from the one
// re-derived from its leaves; and it refuses index keys outside the caller
// namespace. It returns only after the batch is fsynced: a nil error is a
// durable acknowledgement.
func (s *Store) AppendBlock(b *chain.Block, index []KV) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.failed != nil {
		return s.failed
	}
	hashes, err := s.verify(b, index)
	if err != nil {
		return err
	}
	h := &b.Header
	batch := s.db.NewBatch()
	defer batch.Close()
	for i, leaf := range b.Leaves {
		idx := h.FirstIndex + uint64(i)
		if err := batch.Set(leafKey(idx), leaf, nil); err != nil {
			return fmt.Errorf("append block %d: %w", h.Height, err)
		}
		if sc := b.Sidecar(i); len(sc) > 0 {
			if err := batch.Set(sidecarKey(idx), sc, nil); err != nil {
				return fmt.Errorf("append block %d: %w", h.Height, err)
			}
		}
	}
	base := tlog.StoredHashCount(int64(h.FirstIndex))
	for j, hash := range hashes {
		if err := batch.Set(hashKey(base+int64(j)), hash[:], nil); err != nil {
			return fmt.Errorf("append block %d: %w", h.Height, err)
		}
	}
	hdr := h.Marshal()
	sets := []KV{
		{blockKey(h.Height), hdr},
		{blockIndexKey(h.FirstIndex), EncodeIndex(h.Height)},
		{keyHead, hdr},
	}
	for _, kv := range append(sets, index...) {
		if err := batch.Set(kv.Key, kv.Value, nil); err != nil {
			return fmt.Errorf("append block %d: %w", h.Height, err)
		}
	}
	// The only fsync. A crash before Commit starts leaves nothing of the
	// block. Pebble writes the batch as one WAL record and replays a record
	// only if it is whole, so a crash during the sync leaves either the whole
	// block (leaves, hashes, header, head, index entries) or none of it. Once
	// Commit returns nil the block survives any crash.
	if err := batch.Commit(pebble.Sync); err != nil {
		// The batch may or may not be on disk; only a reopen can tell.
		s.failed = fmt.Errorf("%w: append block %d: %w", ErrFailed, h.Height, err)
		return s.failed
	}
	s.mu.Lock()
	s.head, s.headHash, s.hasHead = *h, h.Hash(), true
	s.mu.Unlock()
	return nil
}

// verify checks b against the head and returns the stored hashes its
// leaves add to the tree. Called with writeMu held.
func (s *Store) verify(b *chain.Block, index []KV) ([]tlog.Hash, error) {
	s.mu.RLock()
	head, headHash, hasHead := s.head, s.headHash, s.hasHead
	s.mu.RUnlock()
	h := &b.Header
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: block %d: %s", ErrBadBlock, h.Height, fmt.Sprintf(format, args...))
	}
	if h.Height != head.Height+1 {
		return nil, bad("height: want %d", head.Height+1)
	}
	if h.Prev != headHash {
		return nil, bad("prev: %x, want %x", h.Prev, headHash)
	}
	if h.FirstIndex != head.TreeSize {
		return nil, bad("first index: %d, want %d", h.FirstIndex, head.TreeSize)
	}
	if int(h.Count) != len(b.Leaves) {
		return nil, bad("count: header says %d, block has %d leaves", h.Count, len(b.Leaves))
	}
	if hasHead && h.Origin != head.Origin {
		return nil, bad("origin: %q, want %q", h.Origin, head.Origin)
	}
	if h.TimeMS < head.TimeMS {
		return nil, bad("time: %d ms is before the previous block's %d ms", h.TimeMS, head.TimeMS)
	}
	if err := b.Validate(); err != nil {
		return nil, bad("encoding: %v", err)
	}
	for _, kv := range index {
		if !isCallerKey(kv.Key) {
			return nil, bad("index key %x outside the caller namespace", kv.Key)
		}
	}
	hashes, root, err := s.derive(h.FirstIndex, b.Leaves)
	if err != nil {
		return nil, fmt.Errorf("append block %d: %w", h.Height, err)
	}
	if root != tlog.Hash(h.Root) {
		return nil, bad("root: header %x, leaves give %x", h.Root, root[:])
	}
	return hashes, nil
}

// derive computes the stored hashes that leaves add to a tree of size
// first, and the root of the grown tree.
func (s *Store) derive(first uint64, leaves [][]byte) ([]tlog.Hash, tlog.Hash, error) {
	base := tlog.StoredHashCount(int64(first))
	var pending []tlog.Hash
	// r sees the stored tree plus the hashes of earlier leaves of this batch.
	r := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, x := range indexes {
			if x >= base {
				if x-base >= int64(len(pending)) {
					return nil, fmt.Errorf("%w: stored hash %d not yet computed", ErrNotFound, x)
				}
				out[i] = pending[x-base]
				continue
			}
			h, err := s.readHash(x)
			if err != nil {
				return nil, err
			}
			out[i] = h
		}
		return out, nil
	})
	for i, leaf := range leaves {
		hs, err := tlog.StoredHashes(int64(first)+int64(i), leaf, r)
		if err != nil {
			return nil, tlog.Hash{}, fmt.Errorf("hash leaf %d: %w", first+uint64(i), err)
		}
		pending = append(pending, hs...)
	}
	root, err := tlog.TreeHash(int64(first)+int64(len(leaves)), r)
	if err != nil {
		return nil, tlog.Hash{}, fmt.Errorf("tree hash: %w", err)
	}
	return pending, root, nil
}

// ComputeRoot returns the root the tree would have after appending leaves
// to the current head, without writing anything. The sequencer uses it to
// fill Header.Root; it must not race with its own AppendBlock.
func (s *Store) ComputeRoot(leaves [][]byte) (tlog.Hash, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	_, root, err := s.derive(s.TreeSize(), leaves)
	return root, err
}

func get(db *pebble.DB, key []byte) ([]byte, error) {
	v, closer, err := db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, fmt.Errorf("key %q: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get %q: %w", key, err)
	}
	out := bytes.Clone(v)
	if out == nil {
		out = []byte{}
	}
	return out, closer.Close()
}

// Get returns the value of a caller index key, or ErrNotFound.
func (s *Store) Get(key []byte) ([]byte, error) { return get(s.db, key) }

// ScanPrefix calls fn for every key starting with prefix, in key order,
// and stops at the first error fn returns, returning it. key and value are
// valid only during the call; fn must copy what it keeps.
func (s *Store) ScanPrefix(prefix []byte, fn func(key, value []byte) error) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("scan %x: %w", prefix, err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err == nil {
			err = fn(it.Key(), v)
		}
		if err != nil {
			it.Close()
			return err
		}
	}
	return it.Close()
}

// Leaf returns leaf index, or ErrNotFound beyond the tree.
func (s *Store) Leaf(index uint64) ([]byte, error) {
	if index >= s.TreeSize() {
		return nil, fmt.Errorf("leaf %d: %w", index, ErrNotFound)
	}
	return get(s.db, leafKey(index))
}

// Sidecar returns the sidecar of leaf index: nil when the leaf has none,
// ErrNotFound beyond the tree.
func (s *Store) Sidecar(index uint64) ([]byte, error) {
	if index >= s.TreeSize() {
		return nil, fmt.Errorf("sidecar %d: %w", index, ErrNotFound)
	}
	v, err := get(s.db, sidecarKey(index))
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	return v, err
}

// BlockHeader returns the header at height, or ErrNotFound.
func (s *Store) BlockHeader(height uint64) (*chain.BlockHeader, error) {
	v, err := get(s.db, blockKey(height))
	if err != nil {
		return nil, fmt.Errorf("block %d: %w", height, err)
	}
	h, err := chain.ParseBlockHeader(v)
	if err != nil {
		return nil, fmt.Errorf("%w: block %d: %w", ErrCorrupt, height, err)
	}
	return h, nil
}

// BlockForIndex returns the header of the block holding leaf index, or
// ErrNotFound beyond the tree.
func (s *Store) BlockForIndex(index uint64) (*chain.BlockHeader, error) {
	if index >= s.TreeSize() {
		return nil, fmt.Errorf("block for index %d: %w", index, ErrNotFound)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: []byte{prefixBlockIndex},
		UpperBound: blockIndexKey(index + 1),
	})
	if err != nil {
		return nil, fmt.Errorf("block for index %d: %w", index, err)
	}
	if !it.Last() {
		err := it.Close()
		return nil, fmt.Errorf("%w: no block for index %d (%v)", ErrCorrupt, index, err)
	}
	height, err := DecodeIndex(it.Value())
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("block for index %d: %w", index, err)
	}
	return s.BlockHeader(height)
}

func (s *Store) readHash(storedIndex int64) (tlog.Hash, error) {
	var h tlog.Hash
	v, closer, err := s.db.Get(hashKey(storedIndex))
	if errors.Is(err, pebble.ErrNotFound) {
		return h, fmt.Errorf("stored hash %d: %w", storedIndex, ErrNotFound)
	}
	if err != nil {
		return h, fmt.Errorf("stored hash %d: %w", storedIndex, err)
	}
	defer closer.Close()
	if len(v) != len(h) {
		return h, fmt.Errorf("%w: stored hash %d has %d bytes", ErrCorrupt, storedIndex, len(v))
	}
	copy(h[:], v)
	return h, nil
}

// HashReader returns a tlog.HashReader over the stored hashes. It is safe
// for concurrent use; hashes never change once written.
func (s *Store) HashReader() tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, x := range indexes {
			h, err := s.readHash(x)
			if err != nil {
				return nil, err
			}
			out[i] = h
		}
		return out, nil
	})
}

// TreeHash returns the RFC 6962 root of the first size leaves (the hash of
// the empty string for size 0), or ErrNotFound beyond the tree.
func (s *Store) TreeHash(size uint64) (tlog.Hash, error) {
	if size > s.TreeSize() {
		return tlog.Hash{}, fmt.Errorf("tree hash %d: %w", size, ErrNotFound)
	}
	h, err := tlog.TreeHash(int64(size), s.HashReader())
	if err != nil {
		return tlog.Hash{}, fmt.Errorf("tree hash %d: %w", size, err)
	}
	return h, nil
}

// InclusionProof proves leaf index in the tree of size leaves.
func (s *Store) InclusionProof(index, size uint64) (tlog.RecordProof, error) {
	if index >= size || size > s.TreeSize() {
		return nil, fmt.Errorf("inclusion proof %d in %d (tree %d): %w", index, size, s.TreeSize(), ErrNotFound)
	}
	p, err := tlog.ProveRecord(int64(size), int64(index), s.HashReader())
	if err != nil {
		return nil, fmt.Errorf("inclusion proof %d in %d: %w", index, size, err)
	}
	return p, nil
}

// ConsistencyProof proves that the tree of oldSize leaves is a prefix of
// the tree of newSize leaves. The proof from an empty tree is empty.
func (s *Store) ConsistencyProof(oldSize, newSize uint64) (tlog.TreeProof, error) {
	if oldSize > newSize || newSize > s.TreeSize() {
		return nil, fmt.Errorf("consistency proof %d to %d (tree %d): %w", oldSize, newSize, s.TreeSize(), ErrNotFound)
	}
	if oldSize == 0 {
		return tlog.TreeProof{}, nil
	}
	p, err := tlog.ProveTree(int64(newSize), int64(oldSize), s.HashReader())
	if err != nil {
		return nil, fmt.Errorf("consistency proof %d to %d: %w", oldSize, newSize, err)
	}
	return p, nil
}

// ReadTile returns the bytes of a tlog-tiles resource as of a tree of
// treeSize leaves: a hash tile (t.W() concatenated hashes) or an entry
// bundle (each leaf as a 2-byte big-endian length then the leaf). A tile
// that needs anything beyond treeSize, or a treeSize beyond the tree, is
// ErrNotFound.
func (s *Store) ReadTile(t chain.TilePath, treeSize uint64) ([]byte, error) {
	if treeSize > s.TreeSize() {
		return nil, fmt.Errorf("tile %s at size %d: %w", t, treeSize, ErrNotFound)
	}
	if t.Entries && t.Level != 0 || t.Level > chain.MaxTileLevel || t.Width < 0 || t.Width >= chain.TileWidth {
		return nil, fmt.Errorf("tile %+v: %w", t, chain.ErrMalformed)
	}
	// The tile holds items [start, end) of its level; item j of level
	// 8*Level exists in a tree of size T iff (j+1) << (8*Level) <= T.
	levelSize := treeSize >> (chain.TileHeight * uint(t.Level))
	if t.N > levelSize>>chain.TileHeight || t.N*chain.TileWidth+uint64(t.W()) > levelSize {
		return nil, fmt.Errorf("tile %s at size %d: %w", t, treeSize, ErrNotFound)
	}
	if !t.Entries {
		data, err := tlog.ReadTileData(t.Tlog(), s.HashReader())
		if err != nil {
			return nil, fmt.Errorf("tile %s: %w", t, err)
		}
		return data, nil
	}
	start := t.N * chain.TileWidth
	end := start + uint64(t.W())
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: leafKey(start), UpperBound: leafKey(end)})
	if err != nil {
		return nil, fmt.Errorf("tile %s: %w", t, err)
	}
	var out []byte
	next := start
	for ok := it.First(); ok; ok = it.Next() {
		idx, err := keyNum(prefixLeaf, it.Key())
		if err == nil && idx != next {
			err = fmt.Errorf("%w: tile %s: leaf %d missing", ErrCorrupt, t, next)
		}
		if err != nil {
			it.Close()
			return nil, err
		}
		v := it.Value()
		out = binary.BigEndian.AppendUint16(out, uint16(len(v)))
		out = append(out, v...)
		next++
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("tile %s: %w", t, err)
	}
	if next != end {
		return nil, fmt.Errorf("%w: tile %s: leaf %d missing", ErrCorrupt, t, next)
	}
	return out, nil
}

// PutCheckpoint durably stores the final signed checkpoint for size (a tree
// the store holds). Storing the same note again is a no-op; a different note
// for the same size is ErrConflict.
func (s *Store) PutCheckpoint(size uint64, signed []byte) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if size == 0 || size > s.TreeSize() {
		return fmt.Errorf("put checkpoint %d (tree %d): %w", size, s.TreeSize(), ErrBeyondTree)
	}
	if len(signed) == 0 {
		return fmt.Errorf("put checkpoint %d: empty note", size)
	}
	old, err := get(s.db, checkpointKey(size))
	switch {
	case err == nil && bytes.Equal(old, signed):
		return nil
	case err == nil:
		return fmt.Errorf("put checkpoint %d: %w", size, ErrConflict)
	case !errors.Is(err, ErrNotFound):
		return fmt.Errorf("put checkpoint %d: %w", size, err)
	}
	// Sync: once acknowledged, the final checkpoint is part of the replica.
	if err := s.db.Set(checkpointKey(size), signed, pebble.Sync); err != nil {
		return fmt.Errorf("put checkpoint %d: %w", size, err)
	}
	return nil
}

// seekCheckpoint returns the first checkpoint at or after lower (the last
// one when last is set), or ErrNotFound.
func (s *Store) seekCheckpoint(lower []byte, last bool) (uint64, []byte, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: []byte{prefixCheckpoint + 1}})
	if err != nil {
		return 0, nil, err
	}
	var ok bool
	if last {
		ok = it.Last()
	} else {
		ok = it.First()
	}
	if !ok {
		if err := it.Close(); err != nil {
			return 0, nil, err
		}
		return 0, nil, ErrNotFound
	}
	size, err := keyNum(prefixCheckpoint, it.Key())
	note := bytes.Clone(it.Value())
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, nil, err
	}
	return size, note, nil
}

// LatestCheckpoint returns the final checkpoint of the largest size, or
// ErrNotFound when there is none.
func (s *Store) LatestCheckpoint() (size uint64, signed []byte, err error) {
	size, signed, err = s.seekCheckpoint([]byte{prefixCheckpoint}, true)
	if err != nil {
		return 0, nil, fmt.Errorf("latest checkpoint: %w", err)
	}
	return size, signed, nil
}

// CheckpointCovering returns the first final checkpoint whose size is
// greater than index (the one a receipt for index uses), or ErrNotFound.
func (s *Store) CheckpointCovering(index uint64) (size uint64, signed []byte, err error) {
	if index == ^uint64(0) {
		return 0, nil, fmt.Errorf("checkpoint covering %d: %w", index, ErrNotFound)
	}
	size, signed, err = s.seekCheckpoint(checkpointKey(index+1), false)
	if err != nil {
		return 0, nil, fmt.Errorf("checkpoint covering %d: %w", index, err)
	}
	return size, signed, nil
}

// RecordSigned durably records that this node signed root for size, before
// the signature is released. It is ErrConflict to record a different root
// for the last signed size or a size smaller than it, and ErrBeyondTree to
// record a size the store does not hold. Recording the same pair again is a
// no-op.
func (s *Store) RecordSigned(size uint64, root tlog.Hash) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if size > s.TreeSize() {
		return fmt.Errorf("record signed %d (tree %d): %w", size, s.TreeSize(), ErrBeyondTree)
	}
	last, lastRoot, ok, err := s.LastSigned()
	if err != nil {
		return fmt.Errorf("record signed %d: %w", size, err)
	}
	if ok {
		switch {
		case size < last:
			return fmt.Errorf("record signed %d: already signed %d: %w", size, last, ErrConflict)
		case size == last && root != lastRoot:
			return fmt.Errorf("record signed %d: already signed root %x: %w", size, lastRoot[:], ErrConflict)
		case size == last:
			return nil
		}
	}
	v := binary.BigEndian.AppendUint64(nil, size)
	v = append(v, root[:]...)
	// Sync before the caller releases the signature: after a crash the node
	// still knows what it signed.
	if err := s.db.Set(keySigned, v, pebble.Sync); err != nil {
		return fmt.Errorf("record signed %d: %w", size, err)
	}
	return nil
}

// LastSigned returns the last size and root recorded by RecordSigned;
// ok is false when nothing was signed yet.
func (s *Store) LastSigned() (size uint64, root tlog.Hash, ok bool, err error) {
	v, err := get(s.db, keySigned)
	if errors.Is(err, ErrNotFound) {
		return 0, root, false, nil
	}
	if err != nil {
		return 0, root, false, err
	}
	if len(v) != 8+len(root) {
		return 0, root, false, fmt.Errorf("%w: signed record of %d bytes", ErrCorrupt, len(v))
	}
	copy(root[:], v[8:])
	return binary.BigEndian.Uint64(v), root, true, nil
}

// DiskUsage returns the bytes the database occupies, including the WAL and
// obsolete files not yet deleted.
func (s *Store) DiskUsage() (uint64, error) {
	m := s.db.Metrics()
	return m.DiskSpaceUsage(), nil
}

// pebbleLogger sends Pebble's log lines to slog.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Info(fmt.Sprintf(format, args...), "component", "pebble")
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}

// Fatalf is called by Pebble for corruption it cannot continue past; it
// must not return.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "component", "pebble", "fatal", true)
	panic("store: pebble: " + msg)
}
