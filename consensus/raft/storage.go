package raft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	etcdraft "go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Key schema of the raft storage database. Single-byte prefixes; entries
// sort by their 8-byte big-endian index after their prefix.
//
//	keyHardState   HardState (proto)
//	keyConfState   ConfState in force after the last applied conf change or snapshot (proto)
//	keySnapMeta    SnapshotMetadata of the latest snapshot (proto)
//	keySnapData    data of the latest snapshot
//	keyLogOffset   index and term of the log's dummy entry: the entry before
//	               FirstIndex, kept for Term (16 bytes, big-endian)
//	keyApplied     applied floor: every entry at or below it has had the
//	               effects this package owns (conf changes, snapshot restore)
//	               applied (8 bytes, big-endian)
//	prefixEntry+i  entry i: 8-byte term, then the Entry (proto)
//
// LastIndex is not stored: it is the highest entry key (or the log offset
// when there is none), so it can never disagree with the entries.
var (
	keyHardState = []byte{0x01}
	keyConfState = []byte{0x02}
	keySnapMeta  = []byte{0x03}
	keySnapData  = []byte{0x04}
	keyLogOffset = []byte{0x05}
	keyApplied   = []byte{0x06}
)

const prefixEntry = 0x10

func entryKey(i uint64) []byte {
	k := make([]byte, 9)
	k[0] = prefixEntry
	binary.BigEndian.PutUint64(k[1:], i)
	return k
}

// entryKeyEnd is the exclusive upper bound of every entry key.
var entryKeyEnd = []byte{prefixEntry + 1}

// Storage is etcd raft's Storage on a Pebble database of its own: the hard
// state, the log, the latest snapshot and the configuration of one replica.
//
// Every write (Save, CreateSnapshot, Compact, SaveConfState, SaveApplied,
// Bootstrap) is one Pebble batch committed with pebble.Sync: when it returns
// nil the write survives power loss, and a crash at any point leaves either
// all of the batch or none of it. Reads serve a cache of the small keys and
// read entries from Pebble. All methods are safe for concurrent use; the
// raft goroutine reads while the Ready loop writes.
type Storage struct {
	db *pebble.DB

	mu        sync.RWMutex
	hard      *raftpb.HardState
	conf      *raftpb.ConfState
	snap      *raftpb.Snapshot // never nil; index 0 when none
	offset    uint64           // index of the dummy entry; FirstIndex is offset+1
	offsetTrm uint64           // term of the dummy entry
	last      uint64           // LastIndex
	applied   uint64           // applied floor
}

var _ etcdraft.Storage = (*Storage)(nil)

// OpenStorage opens (creating if needed) the raft storage in dir on fs
// (vfs.Default when nil).
func OpenStorage(dir string, fs vfs.FS, logger *slog.Logger) (*Storage, error) {
	if fs == nil {
		fs = vfs.Default
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cache := pebble.NewCache(8 << 20)
	defer cache.Unref()
	db, err := pebble.Open(dir, &pebble.Options{
		FS:                 fs,
		Cache:              cache,
		Logger:             pebbleLogger{logger},
		FormatMajorVersion: pebble.FormatNewest,
	})
	if err != nil {
		return nil, fmt.Errorf("raft storage: open %s: %w", dir, err)
	}
	s := &Storage{db: db}
	if err := s.load(); err != nil {
		db.Close()
		return nil, fmt.Errorf("raft storage: open %s: %w", dir, err)
	}
	return s, nil
}

// load fills the cache from the database and checks that the log is whole.
func (s *Storage) load() error {
	s.hard = &raftpb.HardState{}
	if err := s.getProto(keyHardState, s.hard); err != nil {
		return err
	}
	s.conf = &raftpb.ConfState{}
	if err := s.getProto(keyConfState, s.conf); err != nil {
		return err
	}
	s.conf = raftpb.EnsureConfState(s.conf)
	meta := &raftpb.SnapshotMetadata{}
	if err := s.getProto(keySnapMeta, meta); err != nil {
		return err
	}
	data, err := s.get(keySnapData)
	if err != nil {
		return err
	}
	s.snap = raftpb.EnsureSnapshot(&raftpb.Snapshot{Metadata: meta, Data: data})
	off, err := s.get(keyLogOffset)
	if err != nil {
		return err
	}
	switch len(off) {
	case 0:
	case 16:
		s.offset = binary.BigEndian.Uint64(off)
		s.offsetTrm = binary.BigEndian.Uint64(off[8:])
	default:
		return fmt.Errorf("log offset: %d bytes, want 16", len(off))
	}
	applied, err := s.get(keyApplied)
	if err != nil {
		return err
	}
	switch len(applied) {
	case 0:
	case 8:
		s.applied = binary.BigEndian.Uint64(applied)
	default:
		return fmt.Errorf("applied index: %d bytes, want 8", len(applied))
	}

	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: entryKey(0), UpperBound: entryKeyEnd})
	if err != nil {
		return err
	}
	defer it.Close()
	s.last = s.offset
	if it.First() {
		first := binary.BigEndian.Uint64(it.Key()[1:])
		if first != s.offset+1 {
			return fmt.Errorf("first entry %d does not follow log offset %d", first, s.offset)
		}
		it.Last()
		s.last = binary.BigEndian.Uint64(it.Key()[1:])
	}
	return it.Error()
}

func (s *Storage) get(key []byte) ([]byte, error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get %x: %w", key, err)
	}
	defer closer.Close()
	return append([]byte(nil), v...), nil
}

func (s *Storage) getProto(key []byte, m proto.Message) error {
	v, err := s.get(key)
	if err != nil || v == nil {
		return err
	}
	if err := proto.Unmarshal(v, m); err != nil {
		return fmt.Errorf("decode %x: %w", key, err)
	}
	return nil
}

// Close closes the database.
func (s *Storage) Close() error { return s.db.Close() }

// IsEmpty reports whether nothing was ever written: a replica starting on
// empty storage must bootstrap or join.
func (s *Storage) IsEmpty() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return etcdraft.IsEmptyHardState(s.hard) && s.last == 0 && s.offset == 0 &&
		len(s.conf.Voters) == 0 && len(s.conf.Learners) == 0
}

// InitialState implements etcdraft.Storage. The ConfState is the one in
// force after the last applied conf change (SaveConfState) or snapshot, so
// a restart that skips already-applied entries still knows the members.
func (s *Storage) InitialState() (*raftpb.HardState, *raftpb.ConfState, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return proto.Clone(s.hard).(*raftpb.HardState), proto.Clone(s.conf).(*raftpb.ConfState), nil
}

// Entries implements etcdraft.Storage: consecutive entries in [lo, hi),
// at least one, at most maxSize bytes of encoded entries beyond the first.
// The returned slice and entries are freshly decoded and owned by the caller.
func (s *Storage) Entries(lo, hi, maxSize uint64) ([]*raftpb.Entry, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if lo <= s.offset {
		return nil, etcdraft.ErrCompacted
	}
	if hi > s.last+1 {
		return nil, fmt.Errorf("entries [%d, %d) beyond last index %d: %w", lo, hi, s.last, etcdraft.ErrUnavailable)
	}
	if s.last == s.offset {
		return nil, etcdraft.ErrUnavailable
	}
	if lo >= hi {
		return nil, nil
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: entryKey(lo), UpperBound: entryKey(hi)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var (
		ents []*raftpb.Entry
		size uint64
	)
	for ok := it.First(); ok; ok = it.Next() {
		want := lo + uint64(len(ents))
		if got := binary.BigEndian.Uint64(it.Key()[1:]); got != want {
			return nil, fmt.Errorf("entry %d missing (found %d): %w", want, got, etcdraft.ErrUnavailable)
		}
		e, err := decodeEntry(it.Value())
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", want, err)
		}
		size += uint64(proto.Size(e))
		if len(ents) > 0 && size > maxSize {
			break
		}
		ents = append(ents, e)
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	if len(ents) == 0 {
		return nil, fmt.Errorf("entry %d missing: %w", lo, etcdraft.ErrUnavailable)
	}
	return ents, nil
}

// Term implements etcdraft.Storage. The term of the dummy entry before
// FirstIndex (the last compacted or snapshot entry) stays available.
func (s *Storage) Term(i uint64) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.term(i)
}

func (s *Storage) term(i uint64) (uint64, error) {
	switch {
	case i < s.offset:
		return 0, etcdraft.ErrCompacted
	case i == s.offset:
		return s.offsetTrm, nil
	case i > s.last:
		return 0, etcdraft.ErrUnavailable
	}
	v, closer, err := s.db.Get(entryKey(i))
	if err != nil {
		return 0, fmt.Errorf("term of entry %d: %w", i, err)
	}
	defer closer.Close()
	if len(v) < 8 {
		return 0, fmt.Errorf("term of entry %d: short value", i)
	}
	return binary.BigEndian.Uint64(v), nil
}

// LastIndex implements etcdraft.Storage.
func (s *Storage) LastIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.last, nil
}

// FirstIndex implements etcdraft.Storage.
func (s *Storage) FirstIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.offset + 1, nil
}

// Snapshot implements etcdraft.Storage: a copy of the latest snapshot.
func (s *Storage) Snapshot() (*raftpb.Snapshot, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return proto.Clone(s.snap).(*raftpb.Snapshot), nil
}

// Applied returns the applied floor: the highest index up to which this
// package has applied what it owns (conf changes, snapshots created or
// restored). The replica's applied index is the larger of it and the FSM's.
func (s *Storage) Applied() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.applied
}

// Bootstrap writes the initial state of a new network's replica: a
// snapshot at index 1, term 1, holding cs and no data, with the matching
// hard state. Every founding replica bootstraps with the same cs, so their
// logs agree at index 1, and a member added later is always sent a
// snapshot (the log before index 2 is never available). This is the
// bootstrap etcd raft recommends over conf-change entries, and the only one
// that can found learners.
func (s *Storage) Bootstrap(cs *raftpb.ConfState) error {
	if !s.IsEmpty() {
		return errors.New("raft storage: bootstrap: storage is not empty")
	}
	snap := &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{
		Index: new(uint64(1)), Term: new(uint64(1)), ConfState: proto.Clone(cs).(*raftpb.ConfState),
	}}
	hs := &raftpb.HardState{Term: new(uint64(1)), Commit: new(uint64(1))}
	if err := s.Save(hs, nil, snap); err != nil {
		return fmt.Errorf("raft storage: bootstrap: %w", err)
	}
	return s.SaveApplied(1)
}

// Save persists one Ready's HardState, Entries and Snapshot (any may be
// empty) in one batch synced before it returns.
//
// A snapshot replaces the whole log: every entry is deleted, the snapshot
// becomes the dummy entry and its ConfState the configuration. Entries
// replace every stored entry at or after the first of them (a conflicting
// tail is truncated); entries at or below the log offset are ignored;
// entries that would leave a gap after LastIndex are an error.
//
// Crash safety: the batch is atomic and synced, so a crash before Commit
// returns leaves the previous state whole (raft then re-sends what it had
// not acknowledged), and after it the new state whole. Nothing is written
// outside the batch.
func (s *Storage) Save(hs *raftpb.HardState, ents []*raftpb.Entry, snap *raftpb.Snapshot) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()

	offset, offsetTrm, last, conf := s.offset, s.offsetTrm, s.last, s.conf
	newSnap := s.snap
	if snap != nil && !etcdraft.IsEmptySnap(snap) {
		meta := snap.GetMetadata()
		if meta.GetIndex() <= s.snap.GetMetadata().GetIndex() {
			return etcdraft.ErrSnapOutOfDate
		}
		newSnap = proto.Clone(raftpb.EnsureSnapshot(snap)).(*raftpb.Snapshot)
		conf = newSnap.Metadata.ConfState
		offset, offsetTrm, last = meta.GetIndex(), meta.GetTerm(), meta.GetIndex()
		if err := setProto(b, keySnapMeta, newSnap.Metadata); err != nil {
			return err
		}
		if err := b.Set(keySnapData, newSnap.Data, nil); err != nil {
			return err
		}
		if err := setProto(b, keyConfState, conf); err != nil {
			return err
		}
		if err := b.Set(keyLogOffset, offsetValue(offset, offsetTrm), nil); err != nil {
			return err
		}
		if err := b.DeleteRange(entryKey(0), entryKeyEnd, nil); err != nil {
			return err
		}
	}

	for len(ents) > 0 && ents[0].GetIndex() <= offset {
		ents = ents[1:]
	}
	if len(ents) > 0 {
		first := ents[0].GetIndex()
		if first > last+1 {
			return fmt.Errorf("raft storage: save: entry %d leaves a gap after last index %d", first, last)
		}
		for i, e := range ents {
			if e.GetIndex() != first+uint64(i) {
				return fmt.Errorf("raft storage: save: entry %d at position %d of a run from %d", e.GetIndex(), i, first)
			}
			v, err := encodeEntry(e)
			if err != nil {
				return err
			}
			if err := b.Set(entryKey(e.GetIndex()), v, nil); err != nil {
				return err
			}
		}
		newLast := ents[len(ents)-1].GetIndex()
		if newLast < last {
			// Truncate the conflicting tail the new entries do not overwrite.
			if err := b.DeleteRange(entryKey(newLast+1), entryKey(last+1), nil); err != nil {
				return err
			}
		}
		last = newLast
	}

	hard := s.hard
	if hs != nil && !etcdraft.IsEmptyHardState(hs) {
		hard = proto.Clone(hs).(*raftpb.HardState)
		if err := setProto(b, keyHardState, hard); err != nil {
			return err
		}
	}
	if b.Empty() {
		return nil
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("raft storage: save: %w", err)
	}
	s.hard, s.conf, s.snap = hard, conf, newSnap
	s.offset, s.offsetTrm, s.last = offset, offsetTrm, last
	return nil
}

// CreateSnapshot records a snapshot of the applied state at index i with
// configuration cs (the current one when nil) and data, and returns it. It
// does not compact the log (see Compact). i must be applied: it also
// becomes the applied floor. Returns ErrSnapOutOfDate if i is not after the
// latest snapshot.
func (s *Storage) CreateSnapshot(i uint64, cs *raftpb.ConfState, data []byte) (*raftpb.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i <= s.snap.GetMetadata().GetIndex() {
		return nil, etcdraft.ErrSnapOutOfDate
	}
	if i > s.last {
		return nil, fmt.Errorf("raft storage: snapshot at %d beyond last index %d", i, s.last)
	}
	term, err := s.term(i)
	if err != nil {
		return nil, fmt.Errorf("raft storage: snapshot at %d: %w", i, err)
	}
	if cs == nil {
		cs = s.snap.GetMetadata().GetConfState()
	}
	snap := &raftpb.Snapshot{
		Metadata: &raftpb.SnapshotMetadata{Index: new(i), Term: new(term), ConfState: proto.Clone(cs).(*raftpb.ConfState)},
		Data:     append([]byte(nil), data...),
	}
	b := s.db.NewBatch()
	defer b.Close()
	if err := setProto(b, keySnapMeta, snap.Metadata); err != nil {
		return nil, err
	}
	if err := b.Set(keySnapData, snap.Data, nil); err != nil {
		return nil, err
	}
	applied := max(s.applied, i)
	if err := b.Set(keyApplied, binary.BigEndian.AppendUint64(nil, applied), nil); err != nil {
		return nil, err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return nil, fmt.Errorf("raft storage: snapshot at %d: %w", i, err)
	}
	s.snap, s.applied = snap, applied
	return proto.Clone(snap).(*raftpb.Snapshot), nil
}

// Compact discards the entries at and before i: i becomes the dummy entry
// whose term Term still answers, and FirstIndex becomes i+1. The caller
// must not compact past what it has applied and snapshotted, or a follower
// that needs those entries can never be caught up. Returns ErrCompacted if
// i is not after the current offset.
func (s *Storage) Compact(i uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i <= s.offset {
		return etcdraft.ErrCompacted
	}
	if i > s.last {
		return fmt.Errorf("raft storage: compact %d beyond last index %d", i, s.last)
	}
	term, err := s.term(i)
	if err != nil {
		return fmt.Errorf("raft storage: compact %d: %w", i, err)
	}
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.Set(keyLogOffset, offsetValue(i, term), nil); err != nil {
		return err
	}
	if err := b.DeleteRange(entryKey(0), entryKey(i+1), nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("raft storage: compact %d: %w", i, err)
	}
	s.offset, s.offsetTrm = i, term
	return nil
}

// SaveConfState records the configuration in force after applying the conf
// change at index i; i becomes the applied floor.
func (s *Storage) SaveConfState(i uint64, cs *raftpb.ConfState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	conf := proto.Clone(cs).(*raftpb.ConfState)
	if err := setProto(b, keyConfState, conf); err != nil {
		return err
	}
	applied := max(s.applied, i)
	if err := b.Set(keyApplied, binary.BigEndian.AppendUint64(nil, applied), nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("raft storage: save conf state at %d: %w", i, err)
	}
	s.conf, s.applied = conf, applied
	return nil
}

// SaveApplied raises the applied floor to i (after a snapshot was
// restored into the state machine).
func (s *Storage) SaveApplied(i uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i <= s.applied {
		return nil
	}
	if err := s.db.Set(keyApplied, binary.BigEndian.AppendUint64(nil, i), pebble.Sync); err != nil {
		return fmt.Errorf("raft storage: save applied %d: %w", i, err)
	}
	s.applied = i
	return nil
}

func setProto(b *pebble.Batch, key []byte, m proto.Message) error {
	v, err := proto.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode %x: %w", key, err)
	}
	return b.Set(key, v, nil)
}

func offsetValue(index, term uint64) []byte {
	v := binary.BigEndian.AppendUint64(nil, index)
	return binary.BigEndian.AppendUint64(v, term)
}

// encodeEntry stores the term in front so that Term reads 8 bytes instead
// of decoding a possibly large entry.
func encodeEntry(e *raftpb.Entry) ([]byte, error) {
	v, err := proto.MarshalOptions{}.MarshalAppend(binary.BigEndian.AppendUint64(nil, e.GetTerm()), e)
	if err != nil {
		return nil, fmt.Errorf("encode entry %d: %w", e.GetIndex(), err)
	}
	return v, nil
}

func decodeEntry(v []byte) (*raftpb.Entry, error) {
	if len(v) < 8 {
		return nil, errors.New("short entry value")
	}
	e := &raftpb.Entry{}
	if err := proto.Unmarshal(v[8:], e); err != nil {
		return nil, fmt.Errorf("decode entry: %w", err)
	}
	return e, nil
}

// pebbleLogger sends Pebble's log lines to slog.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...), "component", "raft-pebble")
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "raft-pebble")
}

// Fatalf is called by Pebble for corruption it cannot continue past; it
// must not return.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "component", "raft-pebble", "fatal", true)
	panic("raft storage: pebble: " + msg)
}
