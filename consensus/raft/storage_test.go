package raft

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	etcdraft "go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// index(i).terms(a, b, ...) is entries i, i+1, ... with terms a, b, ...,
// as in etcd raft's own storage tests.
type index uint64

func (i index) terms(terms ...uint64) []*raftpb.Entry {
	ents := make([]*raftpb.Entry, 0, len(terms))
	for k, term := range terms {
		ents = append(ents, &raftpb.Entry{Index: new(uint64(i) + uint64(k)), Term: new(term)})
	}
	return ents
}

func openTestStorage(t *testing.T, fs vfs.FS) *Storage {
	t.Helper()
	if fs == nil {
		fs = vfs.NewMem()
	}
	s, err := OpenStorage("raft", fs, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// storageWith returns a storage whose dummy entry is ents[0] and whose log
// holds the rest, the state etcd's tests build as MemoryStorage{ents: ents}.
func storageWith(t *testing.T, ents []*raftpb.Entry) *Storage {
	t.Helper()
	s := openTestStorage(t, nil)
	snap := &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: new(ents[0].GetIndex()), Term: new(ents[0].GetTerm())}}
	if err := s.Save(nil, ents[1:], snap); err != nil {
		t.Fatal(err)
	}
	return s
}

func equalEntries(a, b []*raftpb.Entry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// allEntries returns the dummy entry and the log, like MemoryStorage.ents.
func allEntries(t *testing.T, s *Storage) []*raftpb.Entry {
	t.Helper()
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	term, err := s.Term(first - 1)
	if err != nil {
		t.Fatal(err)
	}
	out := []*raftpb.Entry{{Index: new(first - 1), Term: new(term)}}
	if last >= first {
		ents, err := s.Entries(first, last+1, math.MaxUint64)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ents...)
	}
	return out
}

func TestStorageTerm(t *testing.T) {
	ents := index(3).terms(3, 4, 5)
	tests := []struct {
		i     uint64
		werr  error
		wterm uint64
	}{
		{2, etcdraft.ErrCompacted, 0},
		{3, nil, 3},
		{4, nil, 4},
		{5, nil, 5},
		{6, etcdraft.ErrUnavailable, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.i), func(t *testing.T) {
			s := storageWith(t, ents)
			term, err := s.Term(tt.i)
			if !errors.Is(err, tt.werr) || (tt.werr == nil && err != nil) || term != tt.wterm {
				t.Fatalf("Term(%d) = %d, %v; want %d, %v", tt.i, term, err, tt.wterm, tt.werr)
			}
		})
	}
}

func TestStorageEntries(t *testing.T) {
	ents := index(3).terms(3, 4, 5, 6)
	size := func(i int) uint64 { return uint64(proto.Size(ents[i])) }
	tests := []struct {
		name            string
		lo, hi, maxsize uint64
		werr            error
		wentries        []*raftpb.Entry
	}{
		{"before offset", 2, 6, math.MaxUint64, etcdraft.ErrCompacted, nil},
		{"at offset", 3, 4, math.MaxUint64, etcdraft.ErrCompacted, nil},
		{"one", 4, 5, math.MaxUint64, nil, index(4).terms(4)},
		{"two", 4, 6, math.MaxUint64, nil, index(4).terms(4, 5)},
		{"three", 4, 7, math.MaxUint64, nil, index(4).terms(4, 5, 6)},
		{"zero size still one", 4, 7, 0, nil, index(4).terms(4)},
		{"limit to two", 4, 7, size(1) + size(2), nil, index(4).terms(4, 5)},
		{"limit to two and a half", 4, 7, size(1) + size(2) + size(3)/2, nil, index(4).terms(4, 5)},
		{"limit just short of three", 4, 7, size(1) + size(2) + size(3) - 1, nil, index(4).terms(4, 5)},
		{"limit exactly three", 4, 7, size(1) + size(2) + size(3), nil, index(4).terms(4, 5, 6)},
		{"beyond last", 4, 8, math.MaxUint64, etcdraft.ErrUnavailable, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := storageWith(t, ents)
			got, err := s.Entries(tt.lo, tt.hi, tt.maxsize)
			if !errors.Is(err, tt.werr) || (tt.werr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.werr)
			}
			if !equalEntries(got, tt.wentries) {
				t.Fatalf("entries = %v, want %v", got, tt.wentries)
			}
		})
	}
}

func TestStorageEntriesOnlyDummy(t *testing.T) {
	s := storageWith(t, index(3).terms(3))
	if _, err := s.Entries(4, 4, math.MaxUint64); !errors.Is(err, etcdraft.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
}

func TestStorageLastIndex(t *testing.T) {
	s := storageWith(t, index(3).terms(3, 4, 5))
	if last, _ := s.LastIndex(); last != 5 {
		t.Fatalf("last = %d, want 5", last)
	}
	if err := s.Save(nil, index(6).terms(5), nil); err != nil {
		t.Fatal(err)
	}
	if last, _ := s.LastIndex(); last != 6 {
		t.Fatalf("last = %d, want 6", last)
	}
}

func TestStorageFirstIndex(t *testing.T) {
	s := storageWith(t, index(3).terms(3, 4, 5))
	if first, _ := s.FirstIndex(); first != 4 {
		t.Fatalf("first = %d, want 4", first)
	}
	if err := s.Compact(4); err != nil {
		t.Fatal(err)
	}
	if first, _ := s.FirstIndex(); first != 5 {
		t.Fatalf("first = %d, want 5", first)
	}
}

func TestStorageCompact(t *testing.T) {
	ents := index(3).terms(3, 4, 5)
	tests := []struct {
		i      uint64
		werr   error
		windex uint64
		wterm  uint64
		wlen   int
	}{
		{2, etcdraft.ErrCompacted, 3, 3, 3},
		{3, etcdraft.ErrCompacted, 3, 3, 3},
		{4, nil, 4, 4, 2},
		{5, nil, 5, 5, 1},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.i), func(t *testing.T) {
			s := storageWith(t, ents)
			if err := s.Compact(tt.i); err != tt.werr {
				t.Fatalf("Compact(%d) = %v, want %v", tt.i, err, tt.werr)
			}
			got := allEntries(t, s)
			if got[0].GetIndex() != tt.windex || got[0].GetTerm() != tt.wterm || len(got) != tt.wlen {
				t.Fatalf("after Compact(%d): dummy %d/%d, %d entries; want %d/%d, %d",
					tt.i, got[0].GetIndex(), got[0].GetTerm(), len(got), tt.windex, tt.wterm, tt.wlen)
			}
		})
	}
}

func TestStorageCreateSnapshot(t *testing.T) {
	ents := index(3).terms(3, 4, 5)
	cs := &raftpb.ConfState{Voters: []uint64{1, 2, 3}}
	data := []byte("data")
	for _, i := range []uint64{4, 5} {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			s := storageWith(t, ents)
			snap, err := s.CreateSnapshot(i, cs, data)
			if err != nil {
				t.Fatal(err)
			}
			want := &raftpb.Snapshot{Data: data, Metadata: &raftpb.SnapshotMetadata{Index: new(i), Term: new(i), ConfState: cs}}
			if !proto.Equal(snap, want) {
				t.Fatalf("snapshot = %v, want %v", snap, want)
			}
			stored, _ := s.Snapshot()
			if !proto.Equal(stored, want) {
				t.Fatalf("stored snapshot = %v, want %v", stored, want)
			}
			if s.Applied() != i {
				t.Fatalf("applied floor = %d, want %d", s.Applied(), i)
			}
			if _, err := s.CreateSnapshot(i, cs, data); err != etcdraft.ErrSnapOutOfDate {
				t.Fatalf("repeat snapshot: err = %v, want ErrSnapOutOfDate", err)
			}
		})
	}
}

func TestStorageAppend(t *testing.T) {
	ents := index(3).terms(3, 4, 5)
	tests := []struct {
		name     string
		entries  []*raftpb.Entry
		wentries []*raftpb.Entry
	}{
		{"all compacted", index(1).terms(1, 2), index(3).terms(3, 4, 5)},
		{"same", index(3).terms(3, 4, 5), index(3).terms(3, 4, 5)},
		{"conflict", index(3).terms(3, 6, 6), index(3).terms(3, 6, 6)},
		{"extend", index(3).terms(3, 4, 5, 5), index(3).terms(3, 4, 5, 5)},
		{"truncate incoming and existing", index(2).terms(3, 3, 5), index(3).terms(3, 5)},
		{"truncate existing", index(4).terms(5), index(3).terms(3, 5)},
		{"direct append", index(6).terms(5), index(3).terms(3, 4, 5, 5)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := storageWith(t, ents)
			if err := s.Save(nil, tt.entries, nil); err != nil {
				t.Fatal(err)
			}
			if got := allEntries(t, s); !equalEntries(got, tt.wentries) {
				t.Fatalf("entries = %v, want %v", got, tt.wentries)
			}
		})
	}
	t.Run("gap", func(t *testing.T) {
		s := storageWith(t, ents)
		if err := s.Save(nil, index(7).terms(5), nil); err == nil {
			t.Fatal("append leaving a gap succeeded")
		}
		if got := allEntries(t, s); !equalEntries(got, ents) {
			t.Fatalf("failed append changed the log: %v", got)
		}
	})
}

func TestStorageApplySnapshot(t *testing.T) {
	cs := &raftpb.ConfState{Voters: []uint64{1, 2, 3}}
	data := []byte("data")
	snap := func(i uint64) *raftpb.Snapshot {
		return &raftpb.Snapshot{Data: data, Metadata: &raftpb.SnapshotMetadata{Index: new(i), Term: new(i), ConfState: cs}}
	}
	t.Run("normal case", func(t *testing.T) {
		s := openTestStorage(t, nil)
		if err := s.Save(nil, nil, snap(4)); err != nil {
			t.Fatal(err)
		}
		if first, _ := s.FirstIndex(); first != 5 {
			t.Fatalf("first = %d, want 5", first)
		}
		_, gotCS, _ := s.InitialState()
		if !proto.Equal(gotCS, raftpb.EnsureConfState(cs)) {
			t.Fatalf("conf state = %v, want %v", gotCS, cs)
		}
	})
	t.Run("snapshot out of date", func(t *testing.T) {
		s := openTestStorage(t, nil)
		if err := s.Save(nil, nil, snap(4)); err != nil {
			t.Fatal(err)
		}
		if err := s.Save(nil, nil, snap(3)); err != etcdraft.ErrSnapOutOfDate {
			t.Fatalf("err = %v, want ErrSnapOutOfDate", err)
		}
	})
	t.Run("bootstrap with conf state", func(t *testing.T) {
		s := openTestStorage(t, nil)
		if err := s.Bootstrap(cs); err != nil {
			t.Fatal(err)
		}
		hs, gotCS, _ := s.InitialState()
		if hs.GetCommit() != 1 || hs.GetTerm() != 1 || !proto.Equal(gotCS, raftpb.EnsureConfState(cs)) {
			t.Fatalf("initial state %v %v", hs, gotCS)
		}
		if err := s.Bootstrap(cs); err == nil {
			t.Fatal("second bootstrap succeeded")
		}
	})
	t.Run("replaces the log", func(t *testing.T) {
		s := storageWith(t, index(3).terms(3, 4, 5, 6))
		// A snapshot and the entries after it arrive in one Ready.
		if err := s.Save(nil, index(9).terms(7, 7), snap(8)); err != nil {
			t.Fatal(err)
		}
		want := append(index(8).terms(8), index(9).terms(7, 7)...)
		if got := allEntries(t, s); !equalEntries(got, want) {
			t.Fatalf("entries = %v, want %v", got, want)
		}
		if _, err := s.Term(5); err != etcdraft.ErrCompacted {
			t.Fatalf("Term(5) err = %v, want ErrCompacted", err)
		}
	})
}

// TestStorageReopen checks that everything a Save wrote is read back by a
// fresh OpenStorage on the same files.
func TestStorageReopen(t *testing.T) {
	fs := vfs.NewMem()
	s, err := OpenStorage("raft", fs, nil)
	if err != nil {
		t.Fatal(err)
	}
	cs := &raftpb.ConfState{Voters: []uint64{1, 2}, Learners: []uint64{3}}
	if err := s.Bootstrap(cs); err != nil {
		t.Fatal(err)
	}
	hs := &raftpb.HardState{Term: new(uint64(4)), Vote: new(uint64(2)), Commit: new(uint64(5))}
	if err := s.Save(hs, index(2).terms(2, 3, 4, 4), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateSnapshot(4, cs, []byte("snap")); err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(3); err != nil {
		t.Fatal(err)
	}
	cs2 := &raftpb.ConfState{Voters: []uint64{1, 2, 4}, Learners: []uint64{3}}
	if err := s.SaveConfState(5, cs2); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = openTestStorage(t, fs)
	gotHS, gotCS, _ := s.InitialState()
	if !proto.Equal(gotHS, hs) || !proto.Equal(gotCS, raftpb.EnsureConfState(cs2)) {
		t.Fatalf("initial state %v %v", gotHS, gotCS)
	}
	if want := append(index(3).terms(3), index(4).terms(4, 4)...); !equalEntries(allEntries(t, s), want) {
		t.Fatalf("entries = %v, want %v", allEntries(t, s), want)
	}
	snap, _ := s.Snapshot()
	if snap.GetMetadata().GetIndex() != 4 || string(snap.Data) != "snap" {
		t.Fatalf("snapshot = %v", snap)
	}
	if s.Applied() != 5 {
		t.Fatalf("applied floor = %d, want 5", s.Applied())
	}
}

// TestStoragePowerLoss saves a stream of Readys — appends, conflicting
// rewrites of the tail, hard states, snapshots and compactions — on
// Pebble's crash-simulating filesystem, takes crash clones that keep a
// random part of the unsynced data, and checks that each clone reopens
// with every Save that had returned intact: the hard state and the log at
// least as new as the last acknowledged one, and whole.
func TestStoragePowerLoss(t *testing.T) {
	fs := vfs.NewCrashableMem()
	s, err := OpenStorage("raft", fs, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Bootstrap(&raftpb.ConfState{Voters: []uint64{1, 2, 3}}); err != nil {
		t.Fatal(err)
	}

	// The writer publishes, after each successful Save, the expected state
	// at that point; clones must hold at least that state.
	type ack struct {
		seq   uint64 // Save number
		term  uint64 // HardState.Term, increasing with seq
		log   map[uint64]uint64
		first uint64
		last  uint64
	}
	var (
		acked   atomic.Pointer[ack]
		history sync.Map // seq → *ack, so clones newer than acked can be matched
		done    = make(chan struct{})
		step    = make(chan struct{}) // the writer pauses here so clones interleave with saves
	)
	acked.Store(&ack{first: 2, last: 1, log: map[uint64]uint64{}})
	go func() {
		defer close(done)
		rng := rand.New(rand.NewPCG(1, 2))
		log := map[uint64]uint64{}
		last, first, snapAt := uint64(1), uint64(2), uint64(1)
		for seq := uint64(1); seq <= 300; seq++ {
			term := seq + 1
			var ents []*raftpb.Entry
			start := last + 1
			if last >= first && rng.IntN(4) == 0 {
				start = last - uint64(rng.IntN(int(min(last-first+1, 3)))) // rewrite a tail
			}
			n := 1 + rng.IntN(5)
			for k := range n {
				i := start + uint64(k)
				ents = append(ents, &raftpb.Entry{Index: new(i), Term: new(term), Data: fmt.Appendf(nil, "entry %d of save %d", i, seq)})
			}
			for i := start; i <= last; i++ {
				delete(log, i)
			}
			for _, e := range ents {
				log[e.GetIndex()] = term
			}
			last = start + uint64(n) - 1
			hs := &raftpb.HardState{Term: new(term), Commit: new(start - 1)}
			if err := s.Save(hs, ents, nil); err != nil {
				t.Errorf("save %d: %v", seq, err)
				return
			}
			if seq%40 == 0 && start-1 > snapAt {
				snapAt = start - 1
				if _, err := s.CreateSnapshot(snapAt, nil, fmt.Appendf(nil, "state at %d", snapAt)); err != nil {
					t.Errorf("snapshot %d: %v", snapAt, err)
					return
				}
				if err := s.Compact(snapAt); err != nil {
					t.Errorf("compact %d: %v", snapAt, err)
					return
				}
				for i := range log {
					if i <= snapAt {
						delete(log, i)
					}
				}
				first = snapAt + 1
			}
			a := &ack{seq: seq, term: term, log: make(map[uint64]uint64, len(log)), first: first, last: last}
			for i, tm := range log {
				a.log[i] = tm
			}
			history.Store(seq, a)
			acked.Store(a)
			if seq%10 == 0 {
				step <- struct{}{}
			}
		}
	}()

	rng := rand.New(rand.NewPCG(5, 6))
	clones := 0
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		case <-step:
		}
		before := acked.Load()
		pct := []int{0, 10, 50, 90, 100}[rng.IntN(5)]
		clone := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: pct, RNG: rand.New(rand.NewPCG(rng.Uint64(), 3))})
		checkClone(t, clone, before.term, func(term uint64) (map[uint64]uint64, uint64, uint64, bool) {
			v, ok := history.Load(term - 1)
			if !ok {
				return nil, 0, 0, false
			}
			a := v.(*ack)
			return a.log, a.first, a.last, true
		})
		clones++
	}
	if clones < 5 {
		t.Fatalf("only %d crash clones checked", clones)
	}
	t.Logf("checked %d crash clones", clones)
}

// checkClone reopens a crash clone and checks it holds a state at least as
// new as minTerm, equal to the state the writer acknowledged for its term
// (each Save carried a new term, so the hard state names the Save).
func checkClone(t *testing.T, fs vfs.FS, minTerm uint64, stateOf func(term uint64) (map[uint64]uint64, uint64, uint64, bool)) {
	t.Helper()
	s, err := OpenStorage("raft", fs, nil)
	if err != nil {
		t.Fatalf("reopen clone: %v", err)
	}
	defer s.Close()
	hs, _, _ := s.InitialState()
	if hs.GetTerm() < minTerm {
		t.Fatalf("clone lost an acknowledged save: term %d < %d", hs.GetTerm(), minTerm)
	}
	log, first, last, ok := stateOf(hs.GetTerm())
	if !ok {
		// The clone caught a Save in flight (synced but not yet
		// acknowledged): nothing to compare beyond the lower bound.
		return
	}
	gotFirst, _ := s.FirstIndex()
	gotLast, _ := s.LastIndex()
	// A compaction after the Save may or may not have been kept.
	if gotLast != last || gotFirst > first {
		t.Fatalf("clone at term %d: log [%d, %d], want [≤%d, %d]", hs.GetTerm(), gotFirst, gotLast, first, last)
	}
	for i := first; i <= last; i++ {
		term, err := s.Term(i)
		if err != nil || term != log[i] {
			t.Fatalf("clone at term %d: entry %d term %d (%v), want %d", hs.GetTerm(), i, term, err, log[i])
		}
	}
	if gotLast >= gotFirst {
		if _, err := s.Entries(gotFirst, gotLast+1, math.MaxUint64); err != nil {
			t.Fatalf("clone at term %d: entries: %v", hs.GetTerm(), err)
		}
	}
}
