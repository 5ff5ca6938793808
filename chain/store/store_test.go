package store

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/cunzheng/cunzheng/chain"
)

func TestAppendBlockRejects(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(b *chain.Block)
		index []KV
	}{
		{name: "wrong height", edit: func(b *chain.Block) { b.Header.Height++ }},
		{name: "height repeats", edit: func(b *chain.Block) { b.Header.Height-- }},
		{name: "wrong prev", edit: func(b *chain.Block) { b.Header.Prev[0] ^= 1 }},
		{name: "wrong first index", edit: func(b *chain.Block) { b.Header.FirstIndex++; b.Header.TreeSize++ }},
		{name: "wrong root", edit: func(b *chain.Block) { b.Header.Root[31] ^= 1 }},
		{name: "root of other leaves", edit: func(b *chain.Block) { b.Leaves[1] = []byte("forged") }},
		{name: "leaves reordered", edit: func(b *chain.Block) { b.Leaves[0], b.Leaves[1] = b.Leaves[1], b.Leaves[0] }},
		{name: "time backwards", edit: func(b *chain.Block) { b.Header.TimeMS = 1 }},
		{name: "count mismatch", edit: func(b *chain.Block) { b.Leaves = b.Leaves[:2]; b.Sidecars = b.Sidecars[:2] }},
		{name: "header count lies", edit: func(b *chain.Block) { b.Header.Count--; b.Header.TreeSize-- }},
		{name: "other origin", edit: func(b *chain.Block) { b.Header.Origin = "other.example/v1" }},
		{name: "empty leaf", edit: func(b *chain.Block) { b.Leaves[2] = nil }},
		{name: "sidecar count", edit: func(b *chain.Block) { b.Sidecars = b.Sidecars[:1] }},
		{name: "index key outside caller namespace", index: []KV{{Key: []byte("m/head"), Value: []byte("x")}}},
		{name: "index key is bare prefix", index: []KV{{Key: []byte("x"), Value: []byte("x")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := openMem(t)
			m := newLogModel()
			m.appendN(t, s, 3)
			m.appendN(t, s, 5)
			before := dump(t, s.db)
			head, _ := s.Head()

			b := m.next(4)
			if tt.edit != nil {
				tt.edit(b)
			}
			index := append([]KV{{Key: DedupKey([32]byte{1}, []byte("d")), Value: EncodeIndex(8)}}, tt.index...)
			err := s.AppendBlock(b, index)
			if !errors.Is(err, ErrBadBlock) {
				t.Fatalf("AppendBlock = %v, want ErrBadBlock", err)
			}
			if after := dump(t, s.db); !maps.Equal(before, after) {
				t.Fatalf("rejected block wrote %d keys", len(after)-len(before))
			}
			if got, _ := s.Head(); got != head {
				t.Fatalf("head moved to %+v", got)
			}
			// The store still takes the correct block.
			m.appendN(t, s, 4)
		})
	}
}

func TestFirstBlockRejects(t *testing.T) {
	s, _ := openMem(t)
	m := newLogModel()
	b := m.next(2)
	b.Header.Height = 2
	b.Header.Prev = [32]byte{1}
	if err := s.AppendBlock(b, nil); !errors.Is(err, ErrBadBlock) {
		t.Fatalf("AppendBlock = %v, want ErrBadBlock", err)
	}
	if _, ok := s.Head(); ok {
		t.Fatal("head set after rejected first block")
	}
}

func TestComputeRoot(t *testing.T) {
	s, _ := openMem(t)
	m := newLogModel()
	for _, n := range []int{1, 255, 1, 300, 7} {
		b := m.next(n)
		root, err := s.ComputeRoot(b.Leaves)
		if err != nil {
			t.Fatal(err)
		}
		if root != tlog.Hash(b.Header.Root) {
			t.Fatalf("ComputeRoot after %d leaves = %x, want %x", len(m.leaves), root[:], b.Header.Root)
		}
		if err := s.AppendBlock(b, nil); err != nil {
			t.Fatal(err)
		}
		m.accept(b)
	}
}

// buildLog appends blocks of varied sizes until the log holds at least n
// leaves, crossing tile boundaries at odd places.
func buildLog(t testing.TB, s *Store, m *logModel, n int) {
	t.Helper()
	sizes := []int{1, 2, 3, 250, 1, 7, 40, 13}
	for i := 0; len(m.leaves) < n; i++ {
		m.appendN(t, s, sizes[i%len(sizes)])
	}
}

func TestProofsVerifyIndependently(t *testing.T) {
	s, _ := openMem(t)
	m := newLogModel()
	buildLog(t, s, m, 600)
	rng := rand.New(rand.NewPCG(1, 2))
	hasher := rfc6962.DefaultHasher
	for size := uint64(0); size <= 600; size++ {
		root, err := s.TreeHash(size)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(root[:], m.roots[size]) {
			t.Fatalf("TreeHash(%d) = %x, want %x", size, root[:], m.roots[size])
		}
		if size == 0 {
			continue
		}
		for _, index := range []uint64{0, size - 1, size / 2, rng.Uint64N(size)} {
			p, err := s.InclusionProof(index, size)
			if err != nil {
				t.Fatal(err)
			}
			leafHash := hasher.HashLeaf(m.leaves[index])
			if err := proof.VerifyInclusion(hasher, index, size, leafHash, hashes(p), m.roots[size]); err != nil {
				t.Fatalf("inclusion %d in %d: %v", index, size, err)
			}
			// A proof must not verify for another leaf.
			if err := proof.VerifyInclusion(hasher, index, size, hasher.HashLeaf([]byte("x")), hashes(p), m.roots[size]); err == nil {
				t.Fatalf("inclusion %d in %d verified a wrong leaf", index, size)
			}
		}
		for _, old := range []uint64{0, 1, size / 2, size - 1, size, 1 + rng.Uint64N(size)} {
			p, err := s.ConsistencyProof(old, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyConsistency(hasher, old, size, hashes(p), m.roots[old], m.roots[size]); err != nil {
				t.Fatalf("consistency %d -> %d: %v", old, size, err)
			}
		}
	}
	for _, tc := range []struct{ a, b uint64 }{{0, 601 + 2000}, {5, 4}} {
		if _, err := s.ConsistencyProof(tc.a, tc.b); !errors.Is(err, ErrNotFound) {
			t.Errorf("ConsistencyProof(%d, %d) = %v, want ErrNotFound", tc.a, tc.b, err)
		}
	}
	if _, err := s.InclusionProof(5, 5); !errors.Is(err, ErrNotFound) {
		t.Errorf("InclusionProof(5, 5) = %v, want ErrNotFound", err)
	}
	if _, err := s.TreeHash(s.TreeSize() + 1); !errors.Is(err, ErrNotFound) {
		t.Errorf("TreeHash beyond tree = %v, want ErrNotFound", err)
	}
}

func hashes(p []tlog.Hash) [][]byte {
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = p[i][:]
	}
	return out
}

// modelHashReader serves the stored hashes of the model's leaves, computed
// in memory.
func modelHashReader(t testing.TB, leaves [][]byte) tlog.HashReader {
	var stored []tlog.Hash
	r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			if x >= int64(len(stored)) {
				return nil, fmt.Errorf("hash %d not stored", x)
			}
			out[i] = stored[x]
		}
		return out, nil
	})
	for i, leaf := range leaves {
		hs, err := tlog.StoredHashes(int64(i), leaf, r)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, hs...)
	}
	return r
}

type storeTileReader struct {
	s    *Store
	size uint64
}

func (r storeTileReader) Height() int                     { return chain.TileHeight }
func (r storeTileReader) SaveTiles([]tlog.Tile, [][]byte) {}
func (r storeTileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		w := t.W
		if w == chain.TileWidth {
			w = 0
		}
		data, err := r.s.ReadTile(chain.TilePath{Level: uint8(t.L), N: uint64(t.N), Width: w}, r.size)
		if err != nil {
			return nil, err
		}
		out[i] = data
	}
	return out, nil
}

func TestReadTile(t *testing.T) {
	s, _ := openMem(t)
	m := newLogModel()
	buildLog(t, s, m, 600)
	total := s.TreeSize()
	for _, size := range []uint64{1, 2, 255, 256, 257, 511, 512, 513, 600, total} {
		r := modelHashReader(t, m.leaves[:size])
		for _, tile := range tlog.NewTiles(chain.TileHeight, 0, int64(size)) {
			w := tile.W
			if w == chain.TileWidth {
				w = 0
			}
			tp := chain.TilePath{Level: uint8(tile.L), N: uint64(tile.N), Width: w}
			got, err := s.ReadTile(tp, size)
			if err != nil {
				t.Fatalf("ReadTile(%s, %d): %v", tp, size, err)
			}
			want, err := tlog.ReadTileData(tile, r)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("ReadTile(%s, %d) differs from independent tile", tp, size)
			}
			if tile.L != 0 {
				continue
			}
			// The entry bundle beside each level-0 tile.
			tp.Entries = true
			bundle, err := s.ReadTile(tp, size)
			if err != nil {
				t.Fatalf("ReadTile(%s, %d): %v", tp, size, err)
			}
			var wantBundle []byte
			for i := tile.N * 256; i < tile.N*256+int64(tile.W); i++ {
				wantBundle = append(wantBundle, byte(len(m.leaves[i])>>8), byte(len(m.leaves[i])))
				wantBundle = append(wantBundle, m.leaves[i]...)
			}
			if !bytes.Equal(bundle, wantBundle) {
				t.Fatalf("entry bundle %s at %d differs", tp, size)
			}
		}

		// A tlog client reading only tiles checks them against the root.
		tree := tlog.Tree{N: int64(size), Hash: tlog.Hash(m.roots[size])}
		thr := tlog.TileHashReader(tree, storeTileReader{s, size})
		for _, index := range []int64{0, int64(size) - 1, int64(size) / 3} {
			p, err := tlog.ProveRecord(int64(size), index, thr)
			if err != nil {
				t.Fatalf("prove %d in %d over tiles: %v", index, size, err)
			}
			if err := tlog.CheckRecord(p, int64(size), tree.Hash, index, tlog.RecordHash(m.leaves[index])); err != nil {
				t.Fatalf("check %d in %d over tiles: %v", index, size, err)
			}
		}
		if size > 1 {
			wrong := tlog.Tree{N: int64(size), Hash: tlog.Hash(m.roots[size-1])}
			if _, err := tlog.ProveRecord(int64(size), 0, tlog.TileHashReader(wrong, storeTileReader{s, size})); err == nil {
				t.Fatalf("tiles at %d verified against the wrong root", size)
			}
		}
	}

	for _, tc := range []struct {
		tp   chain.TilePath
		size uint64
	}{
		{chain.TilePath{N: 2}, 600},                          // full tile 2 needs 768 leaves
		{chain.TilePath{N: 2, Width: 89}, 600},               // one past the tree
		{chain.TilePath{Entries: true, N: 3, Width: 1}, 600}, // beyond
		{chain.TilePath{Level: 1}, 600},                      // needs 65536 leaves
		{chain.TilePath{Level: 1, Width: 3}, 600},            // needs 768
		{chain.TilePath{Level: 2, Width: 1}, 600},            // needs 65536
		{chain.TilePath{N: 0}, total + 1},                    // beyond the store
		{chain.TilePath{N: ^uint64(0), Width: 255}, total},   // overflow
		{chain.TilePath{Level: 63, N: ^uint64(0)}, total},    // overflow
		{chain.TilePath{Entries: true, N: 1 << 60}, total},   // far beyond
	} {
		if _, err := s.ReadTile(tc.tp, tc.size); !errors.Is(err, ErrNotFound) {
			t.Errorf("ReadTile(%s, %d) = %v, want ErrNotFound", tc.tp, tc.size, err)
		}
	}
	if got, err := s.ReadTile(chain.TilePath{Level: 1, Width: 2}, 600); err != nil || len(got) != 64 {
		t.Errorf("level-1 partial tile: %d bytes, %v", len(got), err)
	}
}

func TestLeavesSidecarsBlocksAndIndex(t *testing.T) {
	s, _ := openMem(t)
	m := newLogModel()
	m.appendN(t, s, 3)
	b := m.next(4)
	digest := []byte("digest-A")
	sub := [32]byte{7}
	index := []KV{
		{Key: DedupKey(sub, digest), Value: EncodeIndex(3)},
		{Key: DigestKey(digest, 3), Value: nil},
		{Key: DigestKey(digest, 5), Value: []byte("second")},
		{Key: DigestKey(append(digest, 'x'), 4), Value: nil}, // a longer digest must not match
		{Key: SubmitterKey([]byte("pubkey")), Value: []byte("registered")},
	}
	if err := s.AppendBlock(b, index); err != nil {
		t.Fatal(err)
	}
	m.accept(b)

	v, err := s.Get(DedupKey(sub, digest))
	if err != nil {
		t.Fatal(err)
	}
	if i, err := DecodeIndex(v); err != nil || i != 3 {
		t.Fatalf("dedup index = %d, %v", i, err)
	}
	var found []uint64
	err = s.ScanPrefix(DigestPrefix(digest), func(k, _ []byte) error {
		i, err := DigestKeyIndex(k)
		found = append(found, i)
		return err
	})
	if err != nil || fmt.Sprint(found) != "[3 5]" {
		t.Fatalf("digest scan = %v, %v", found, err)
	}
	stop := errors.New("stop")
	if err := s.ScanPrefix(DigestPrefix(digest), func(k, _ []byte) error { return stop }); err != stop {
		t.Fatalf("ScanPrefix did not return the callback's error: %v", err)
	}
	if _, err := s.Get(SubmitterKey([]byte("other"))); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get missing = %v", err)
	}

	for i := uint64(0); i < 7; i++ {
		leaf, err := s.Leaf(i)
		if err != nil || !bytes.Equal(leaf, m.leaves[i]) {
			t.Fatalf("Leaf(%d) = %q, %v", i, leaf, err)
		}
		side, err := s.Sidecar(i)
		wantSide := fmt.Sprintf("submission %d", i)
		if i == 1 || i == 4 || i == 6 { // odd positions within each block are empty
			wantSide = ""
		}
		if err != nil || string(side) != wantSide {
			t.Fatalf("Sidecar(%d) = %q, %v; want %q", i, side, err, wantSide)
		}
		h, err := s.BlockForIndex(i)
		wantHeight := uint64(1)
		if i >= 3 {
			wantHeight = 2
		}
		if err != nil || h.Height != wantHeight {
			t.Fatalf("BlockForIndex(%d) = %+v, %v", i, h, err)
		}
	}
	if _, err := s.Leaf(7); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Leaf beyond tree = %v", err)
	}
	if _, err := s.Sidecar(7); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Sidecar beyond tree = %v", err)
	}
	if _, err := s.BlockForIndex(7); !errors.Is(err, ErrNotFound) {
		t.Fatalf("BlockForIndex beyond tree = %v", err)
	}
	if h, err := s.BlockHeader(2); err != nil || *h != b.Header {
		t.Fatalf("BlockHeader(2) = %+v, %v", h, err)
	}
	if _, err := s.BlockHeader(3); !errors.Is(err, ErrNotFound) {
		t.Fatalf("BlockHeader(3) = %v", err)
	}
}

func TestCheckpoints(t *testing.T) {
	s, _ := openMem(t)
	m := newLogModel()
	if _, _, err := s.LatestCheckpoint(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("LatestCheckpoint on empty = %v", err)
	}
	if err := s.PutCheckpoint(1, []byte("note")); !errors.Is(err, ErrBeyondTree) {
		t.Fatalf("PutCheckpoint beyond tree = %v", err)
	}
	m.appendN(t, s, 10)
	m.appendN(t, s, 10)
	for _, size := range []uint64{10, 20} {
		if err := s.PutCheckpoint(size, fmt.Appendf(nil, "note %d", size)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutCheckpoint(10, []byte("note 10")); err != nil {
		t.Fatalf("identical checkpoint again = %v", err)
	}
	if err := s.PutCheckpoint(10, []byte("other note")); !errors.Is(err, ErrConflict) {
		t.Fatalf("different checkpoint for same size = %v", err)
	}
	if err := s.PutCheckpoint(0, []byte("note")); !errors.Is(err, ErrBeyondTree) {
		t.Fatalf("PutCheckpoint(0) = %v", err)
	}
	if size, note, err := s.LatestCheckpoint(); err != nil || size != 20 || string(note) != "note 20" {
		t.Fatalf("LatestCheckpoint = %d %q %v", size, note, err)
	}
	for _, tc := range []struct{ index, size uint64 }{{0, 10}, {9, 10}, {10, 20}, {19, 20}} {
		if size, _, err := s.CheckpointCovering(tc.index); err != nil || size != tc.size {
			t.Errorf("CheckpointCovering(%d) = %d, %v; want %d", tc.index, size, err, tc.size)
		}
	}
	for _, index := range []uint64{20, ^uint64(0)} {
		if _, _, err := s.CheckpointCovering(index); !errors.Is(err, ErrNotFound) {
			t.Errorf("CheckpointCovering(%d) = %v, want ErrNotFound", index, err)
		}
	}
}

func TestRecordSigned(t *testing.T) {
	s, _ := openMem(t)
	m := newLogModel()
	m.appendN(t, s, 20)
	if _, _, ok, err := s.LastSigned(); ok || err != nil {
		t.Fatalf("LastSigned on new store = %v, %v", ok, err)
	}
	r1, r2 := tlog.Hash{1}, tlog.Hash{2}
	steps := []struct {
		name string
		size uint64
		root tlog.Hash
		want error
	}{
		{"first", 10, r1, nil},
		{"same again", 10, r1, nil},
		{"other root same size", 10, r2, ErrConflict},
		{"smaller size", 9, r2, ErrConflict},
		{"beyond tree", 21, r2, ErrBeyondTree},
		{"larger", 20, r2, nil},
		{"back to old size", 10, r1, ErrConflict},
	}
	for _, st := range steps {
		if err := s.RecordSigned(st.size, st.root); !errors.Is(err, st.want) {
			t.Fatalf("%s: RecordSigned(%d) = %v, want %v", st.name, st.size, err, st.want)
		}
	}
	if size, root, ok, err := s.LastSigned(); !ok || err != nil || size != 20 || root != r2 {
		t.Fatalf("LastSigned = %d %x %v %v", size, root[:], ok, err)
	}
}

func TestReopenKeepsHeadAndRefusesOtherNetwork(t *testing.T) {
	fs := vfs.NewMem()
	s, err := Open("db", testGenesis, Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	m := newLogModel()
	m.appendN(t, s, 5)
	if err := s.RecordSigned(5, tlog.Hash(m.head.Root)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	before := fsSnapshot(t, fs, "db")
	other := testGenesis
	other[0] ^= 1
	if _, err := Open("db", other, Options{FS: fs}); !errors.Is(err, ErrWrongNetwork) {
		t.Fatalf("Open with another genesis = %v, want ErrWrongNetwork", err)
	}
	if after := fsSnapshot(t, fs, "db"); !maps.Equal(before, after) {
		t.Fatalf("refused open changed the directory: %d files before, %d after", len(before), len(after))
	}

	s, err = Open("db", testGenesis, Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	head, ok := s.Head()
	if !ok || head != *m.head {
		t.Fatalf("head after reopen = %+v, %v", head, ok)
	}
	m.appendN(t, s, 3)
}
