package store

import (
	"bytes"
	"errors"
	"maps"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/cunzheng/cunzheng/chain"
)

func TestBlockRoundTrip(t *testing.T) {
	s, _ := openMem(t)
	m := newLogModel()
	var blocks []*chain.Block
	for _, n := range []int{1, 300, 7, 256} {
		blocks = append(blocks, m.appendN(t, s, n))
	}
	// A block without sidecars at all, and one whose sidecars are all set.
	noSide := m.next(5)
	noSide.Sidecars = nil
	if err := s.AppendBlock(noSide, nil); err != nil {
		t.Fatal(err)
	}
	m.accept(noSide)
	allSide := m.next(3)
	for i := range allSide.Sidecars {
		allSide.Sidecars[i] = []byte{byte(i), 'x'}
	}
	if err := s.AppendBlock(allSide, nil); err != nil {
		t.Fatal(err)
	}
	m.accept(allSide)
	blocks = append(blocks, noSide, allSide)

	for _, want := range blocks {
		got, err := s.Block(want.Header.Height)
		if err != nil {
			t.Fatalf("Block(%d): %v", want.Header.Height, err)
		}
		gb, err := got.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		wb, err := want.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(gb, wb) {
			t.Fatalf("Block(%d) does not marshal to the appended block", want.Header.Height)
		}
		if len(got.Sidecars) != len(got.Leaves) {
			t.Fatalf("Block(%d) has %d sidecars for %d leaves", want.Header.Height, len(got.Sidecars), len(got.Leaves))
		}
	}
	// A second store fed the served blocks ends with the same head.
	s2, _ := openMem(t)
	for h := uint64(1); h <= uint64(len(blocks)); h++ {
		b, err := s.Block(h)
		if err != nil {
			t.Fatal(err)
		}
		if err := s2.AppendBlock(b, nil); err != nil {
			t.Fatalf("replay block %d: %v", h, err)
		}
	}
	h1, _ := s.Head()
	if h2, _ := s2.Head(); h1 != h2 {
		t.Fatal("replayed store has another head")
	}
	for _, h := range []uint64{0, uint64(len(blocks)) + 1} {
		if _, err := s.Block(h); !errors.Is(err, ErrNotFound) {
			t.Errorf("Block(%d) = %v, want ErrNotFound", h, err)
		}
	}
}

func TestPutCheckpointWithIndex(t *testing.T) {
	s, _ := openMem(t)
	m := newLogModel()
	m.appendN(t, s, 10)
	applied := func(i uint64) KV { return KV{Key: AppliedKey(), Value: EncodeIndex(i)} }
	appliedIs := func(want uint64) {
		t.Helper()
		v, err := s.Get(AppliedKey())
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := DecodeIndex(v); got != want {
			t.Fatalf("applied index = %d, want %d", got, want)
		}
	}
	if err := s.PutCheckpoint(10, []byte("note 10"), applied(4)); err != nil {
		t.Fatal(err)
	}
	appliedIs(4)
	// The same note again still records the caller's entries.
	if err := s.PutCheckpoint(10, []byte("note 10"), applied(5)); err != nil {
		t.Fatal(err)
	}
	appliedIs(5)

	before := dump(t, s.db)
	refused := []struct {
		name string
		size uint64
		note string
		kv   KV
		want error
	}{
		{"other note for the size", 10, "other", applied(6), ErrConflict},
		{"beyond the tree", 11, "note 11", applied(6), ErrBeyondTree},
		{"key outside the caller namespace", 5, "note 5", KV{Key: []byte("m/head"), Value: []byte("x")}, ErrCallerKey},
	}
	for _, tc := range refused {
		if err := s.PutCheckpoint(tc.size, []byte(tc.note), applied(6), tc.kv); !errors.Is(err, tc.want) {
			t.Errorf("%s: PutCheckpoint = %v, want %v", tc.name, err, tc.want)
		}
	}
	if after := dump(t, s.db); !maps.Equal(before, after) {
		t.Fatal("a refused PutCheckpoint wrote something")
	}
}

func TestSyncTarget(t *testing.T) {
	fs := vfs.NewMem()
	s, err := Open("db", testGenesis, Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	m := newLogModel()
	m.appendN(t, s, 4)
	root := tlog.Hash(m.head.Root)
	if _, ok, err := s.SyncTarget(); ok || err != nil {
		t.Fatalf("SyncTarget on a new store = %v, %v", ok, err)
	}
	if err := s.SetSyncTarget(0); err == nil {
		t.Fatal("SetSyncTarget(0) succeeded")
	}
	if err := s.SetSyncTarget(9); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordSigned(4, root); !errors.Is(err, ErrSyncing) {
		t.Fatalf("RecordSigned while syncing = %v, want ErrSyncing", err)
	}
	// The target survives a restart, and so does the refusal to sign.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open("db", testGenesis, Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if h, ok, err := s.SyncTarget(); h != 9 || !ok || err != nil {
		t.Fatalf("SyncTarget after reopen = %d, %v, %v", h, ok, err)
	}
	if err := s.RecordSigned(4, root); !errors.Is(err, ErrSyncing) {
		t.Fatalf("RecordSigned while syncing after reopen = %v, want ErrSyncing", err)
	}
	for range 2 { // clearing twice is fine
		if err := s.ClearSyncTarget(); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok, err := s.SyncTarget(); ok || err != nil {
		t.Fatalf("SyncTarget after clear = %v, %v", ok, err)
	}
	if err := s.RecordSigned(4, root); err != nil {
		t.Fatalf("RecordSigned after catching up = %v", err)
	}
}

// TestOpenRefusesOtherFormat: a directory with blocks but without this
// format's marker (the per-hash layout of format 1) is refused, not read
// as a tree with missing hashes.
func TestOpenRefusesOtherFormat(t *testing.T) {
	for _, marker := range [][]byte{nil, {1}, {3}} {
		fs := vfs.NewMem()
		s, err := Open("db", testGenesis, Options{FS: fs})
		if err != nil {
			t.Fatal(err)
		}
		newLogModel().appendN(t, s, 3)
		if marker == nil {
			err = s.db.Delete(keyFormat, pebble.Sync)
		} else {
			err = s.db.Set(keyFormat, marker, pebble.Sync)
		}
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		if _, err := Open("db", testGenesis, Options{FS: fs}); !errors.Is(err, ErrFormat) {
			t.Errorf("Open with format marker %v = %v, want ErrFormat", marker, err)
		}
	}
}
