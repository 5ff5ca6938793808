package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
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
	// ErrFormat reports a directory written in a layout this code does not
	// read (an older or newer format version).
	ErrFormat = errors.New("store: unsupported format")
	// ErrCallerKey reports an index key outside the caller namespace; the
	// write it came with was refused whole.
	ErrCallerKey = errors.New("store: key outside the caller namespace")
	// ErrSyncing reports a signature refused because the node is catching
	// up to a sync target (SetSyncTarget) and must not sign until done.
	ErrSyncing = errors.New("store: catching up to a sync target")
)

// DefaultCacheSize is the block cache size used when Options.CacheSize is 0.
const DefaultCacheSize = 64 << 20

// bloomBitsPerKey sizes the bloom filter of the sstables above the bottom
// level: about 1% false positives for 1.25 bytes per key. A Get of a key
// the store does not hold (the dedup check of every new submission) then
// skips the index and data blocks of every such table whose key range
// covers it, and reads one data block in the bottom level. Pebble's Get
// never consults bottom-level (L6) filters, whose blocks cost more to load
// than the one data block they would save, so none are written there: they
// would be most of the filter bytes on disk and never read.
const bloomBitsPerKey = 10

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
// Merkle tree, final checkpoints and the caller's indexes.
//
// Concurrency: one writer, many readers. Writes (AppendBlock, PutCheckpoint,
// RecordSigned, SetSyncTarget, ClearSyncTarget) are serialized by the store;
// reads may run concurrently with them and with each other. A reader sees
// either all of a block or none of it, and never data beyond Head.
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

	rows rowCache // full (immutable) rows of tree hashes, for proofs
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
	po := &pebble.Options{
		FS:                 opts.FS,
		Cache:              cache,
		Logger:             pebbleLogger{opts.Logger},
		FormatMajorVersion: pebble.FormatNewest,
		ReadOnly:           readOnly,
		ErrorIfNotExists:   readOnly,
	}
	// L0 included: its recent tables are where a burst of new submissions'
	// dedup checks look first.
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(bloomBitsPerKey)
	}
	po.Levels[len(po.Levels)-1].FilterPolicy = pebble.NoFilterPolicy
	return pebble.Open(dir, po)
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

// init records the genesis fingerprint and format of a new store, checks
// those of an existing one, and loads the head.
func (s *Store) init(genesis [32]byte) error {
	v, err := get(s.db, keyGenesis)
	switch {
	case errors.Is(err, ErrNotFound):
		// One synced batch: a crash before it leaves a database without a
		// fingerprint, which the next Open treats as new.
		b := s.db.NewBatch()
		defer b.Close()
		if err := b.Set(keyGenesis, genesis[:], nil); err != nil {
			return fmt.Errorf("write genesis: %w", err)
		}
		if err := b.Set(keyFormat, []byte{formatVersion}, nil); err != nil {
			return fmt.Errorf("write genesis: %w", err)
		}
		if err := b.Commit(pebble.Sync); err != nil {
			return fmt.Errorf("write genesis: %w", err)
		}
	case err != nil:
		return err
	case !bytes.Equal(v, genesis[:]):
		return fmt.Errorf("genesis %x, want %x: %w", v, genesis, ErrWrongNetwork)
	default:
		v, err := get(s.db, keyFormat)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if !bytes.Equal(v, []byte{formatVersion}) {
			// Format 1 wrote no marker; its tree keys would read as missing.
			return fmt.Errorf("format %x, this code reads %d: %w", v, formatVersion, ErrFormat)
		}
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
	g, err := s.verify(b, index)
	if err != nil {
		return err
	}
	h := &b.Header
	rows, err := s.rowWrites(g)
	if err != nil {
		return fmt.Errorf("append block %d: %w", h.Height, err)
	}
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
	hdr := h.Marshal()
	sets := []KV{
		{blockKey(h.Height), hdr},
		{blockIndexKey(h.FirstIndex), EncodeIndex(h.Height)},
		{keyHead, hdr},
	}
	for _, kv := range slices.Concat(rows, sets, index) {
		if err := batch.Set(kv.Key, kv.Value, nil); err != nil {
			return fmt.Errorf("append block %d: %w", h.Height, err)
		}
	}
	// The only fsync. A crash before Commit starts leaves nothing of the
	// block. Pebble writes the batch as one WAL record and replays a record
	// only if it is whole, so a crash during the sync leaves either the whole
	// block (leaves, tree rows, header, head, index entries) or none of it.
	// Once Commit returns nil the block survives any crash.
	if err := s.commit(batch, fmt.Sprintf("append block %d", h.Height)); err != nil {
		return err
	}
	// Rows are written only here (writeMu held), so the cache can take the
	// committed rows, partial ones included; readers of an older tree find
	// its nodes unchanged in the longer rows.
	for _, kv := range rows {
		s.rows.put(kv.Key, kv.Value)
	}
	s.mu.Lock()
	s.head, s.headHash, s.hasHead = *h, h.Hash(), true
	s.mu.Unlock()
	return nil
}

// commit syncs batch. A failed sync leaves the batch on disk or not, which
// only a reopen can tell, so the store refuses every later write.
// Called with writeMu held.
func (s *Store) commit(batch *pebble.Batch, what string) error {
	if err := batch.Commit(pebble.Sync); err != nil {
		s.failed = fmt.Errorf("%w: %s: %w", ErrFailed, what, err)
		return s.failed
	}
	return nil
}

// verify checks b against the head and returns the nodes its leaves add to
// the tree. Called with writeMu held.
func (s *Store) verify(b *chain.Block, index []KV) (*growth, error) {
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
	if err := checkCallerKeys(index); err != nil {
		return nil, fmt.Errorf("%w: block %d: %w", ErrBadBlock, h.Height, err)
	}
	g, root, err := s.grow(h.FirstIndex, b.Leaves)
	if err != nil {
		return nil, fmt.Errorf("append block %d: %w", h.Height, err)
	}
	if root != tlog.Hash(h.Root) {
		return nil, bad("root: header %x, leaves give %x", h.Root, root[:])
	}
	return g, nil
}

// ComputeRoot returns the root the tree would have after appending leaves
// to the current head, without writing anything. The sequencer uses it to
// fill Header.Root; it must not race with its own AppendBlock.
func (s *Store) ComputeRoot(leaves [][]byte) (tlog.Hash, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	_, root, err := s.grow(s.TreeSize(), leaves)
	return root, err
}

func get(db *pebble.DB, key []byte) ([]byte, error) {
	v, closer, err := db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, &notFoundError{key: bytes.Clone(key)}
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

// notFoundError is ErrNotFound for one key. It formats its message only
// when asked: a miss is the common answer to a dedup check, and formatting
// the key there cost as much as the lookup itself.
type notFoundError struct{ key []byte }

func (e *notFoundError) Error() string { return fmt.Sprintf("key %q: %v", e.key, ErrNotFound) }
func (e *notFoundError) Unwrap() error { return ErrNotFound }

// Get returns the value of a caller index key, or ErrNotFound.
func (s *Store) Get(key []byte) ([]byte, error) { return get(s.db, key) }

// ScanPrefix calls fn for every key starting with prefix, in key order,
// and stops at the first error fn returns, returning it. key and value are
// valid only during the call; fn must copy what it keeps.
func (s *Store) ScanPrefix(prefix []byte, fn func(key, value []byte) error) error {
	return s.scan(prefix, prefixEnd(prefix), fn)
}

// FirstWithPrefix returns the smallest key starting with prefix and its
// value (both copies), or ErrNotFound.
func (s *Store) FirstWithPrefix(prefix []byte) (key, value []byte, err error) {
	return s.endWithPrefix(prefix, false)
}

// LastWithPrefix returns the largest key starting with prefix and its
// value (both copies), or ErrNotFound.
func (s *Store) LastWithPrefix(prefix []byte) (key, value []byte, err error) {
	return s.endWithPrefix(prefix, true)
}

func (s *Store) endWithPrefix(prefix []byte, last bool) (key, value []byte, err error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, nil, fmt.Errorf("seek %x: %w", prefix, err)
	}
	var ok bool
	if last {
		ok = it.Last()
	} else {
		ok = it.First()
	}
	if ok {
		key = bytes.Clone(it.Key())
		var v []byte
		if v, err = it.ValueAndErr(); err == nil {
			value = bytes.Clone(v)
		}
	} else {
		err = ErrNotFound
	}
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, nil, err
	}
	return key, value, nil
}

// scan calls fn for every key in [lower, upper) in order, stopping at the
// first error. key and value are valid only during the call.
func (s *Store) scan(lower, upper []byte, fn func(key, value []byte) error) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("scan %x: %w", lower, err)
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
		return s.readHashTile(t)
	}
	var out []byte
	err := s.scanLeaves(t.N*chain.TileWidth, t.N*chain.TileWidth+uint64(t.W()), func(_ uint64, leaf []byte) {
		out = binary.BigEndian.AppendUint16(out, uint16(len(leaf)))
		out = append(out, leaf...)
	})
	if err != nil {
		return nil, fmt.Errorf("tile %s: %w", t, err)
	}
	return out, nil
}

// PutCheckpoint durably stores the final signed checkpoint for size (a tree
// the store holds) together with the caller's index entries, in one synced
// batch: a caller records the replicated-log entry it applied
// ([AppliedKey]) with the checkpoint that entry carried. A different note
// for a size already stored is ErrConflict and writes nothing; the same
// note again writes only the index entries (nothing when there are none).
// Index keys outside the caller namespace are ErrCallerKey and write
// nothing.
func (s *Store) PutCheckpoint(size uint64, signed []byte, index ...KV) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.failed != nil {
		return s.failed
	}
	if size == 0 || size > s.TreeSize() {
		return fmt.Errorf("put checkpoint %d (tree %d): %w", size, s.TreeSize(), ErrBeyondTree)
	}
	if len(signed) == 0 {
		return fmt.Errorf("put checkpoint %d: empty note", size)
	}
	if err := checkCallerKeys(index); err != nil {
		return fmt.Errorf("put checkpoint %d: %w", size, err)
	}
	writes := index
	old, err := get(s.db, checkpointKey(size))
	switch {
	case err == nil && bytes.Equal(old, signed):
		if len(index) == 0 {
			return nil
		}
	case err == nil:
		return fmt.Errorf("put checkpoint %d: %w", size, ErrConflict)
	case !errors.Is(err, ErrNotFound):
		return fmt.Errorf("put checkpoint %d: %w", size, err)
	default:
		writes = append([]KV{{checkpointKey(size), signed}}, index...)
	}
	batch := s.db.NewBatch()
	defer batch.Close()
	for _, kv := range writes {
		if err := batch.Set(kv.Key, kv.Value, nil); err != nil {
			return fmt.Errorf("put checkpoint %d: %w", size, err)
		}
	}
	// The sync: once acknowledged, the final checkpoint and the caller's
	// entries are part of the replica; a crash before it leaves neither.
	return s.commit(batch, fmt.Sprintf("put checkpoint %d", size))
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
// no-op. While a sync target is set (SetSyncTarget) it refuses everything
// with ErrSyncing: a node that is catching up does not sign.
func (s *Store) RecordSigned(size uint64, root tlog.Hash) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.failed != nil {
		return s.failed
	}
	if size > s.TreeSize() {
		return fmt.Errorf("record signed %d (tree %d): %w", size, s.TreeSize(), ErrBeyondTree)
	}
	if target, ok, err := s.SyncTarget(); err != nil {
		return fmt.Errorf("record signed %d: %w", size, err)
	} else if ok {
		return fmt.Errorf("record signed %d: syncing to block %d: %w", size, target, ErrSyncing)
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
	return s.setSynced(keySigned, v, fmt.Sprintf("record signed %d", size))
}

// setSynced durably sets one store key. Called with writeMu held.
func (s *Store) setSynced(key, value []byte, what string) error {
	batch := s.db.NewBatch()
	defer batch.Close()
	if err := batch.Set(key, value, nil); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return s.commit(batch, what)
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
