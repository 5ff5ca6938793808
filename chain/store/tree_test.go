package store

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/cunzheng/cunzheng/chain"
)

// TestTreeMatchesTlog grows a log past the first full level-1 tile in
// blocks of random sizes and checks every stored hash, as tlog numbers
// them, against hashes computed independently in memory; and that the
// level-1 tile, served from a stored row, equals tlog's tile.
func TestTreeMatchesTlog(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 66k-leaf log")
	}
	s, _ := openMem(t)
	m := newLogModel()
	rng := rand.New(rand.NewPCG(7, 8))
	for len(m.leaves) < 1<<16+300 {
		m.appendN(t, s, 1+rng.IntN(3000))
	}
	size := int64(len(m.leaves))
	want := modelHashReader(t, m.leaves)
	indexes := make([]int64, tlog.StoredHashCount(size))
	for i := range indexes {
		indexes[i] = int64(i)
	}
	got, err := s.HashReader().ReadHashes(indexes)
	if err != nil {
		t.Fatal(err)
	}
	exp, err := want.ReadHashes(indexes)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i] != exp[i] {
			l, n := tlog.SplitStoredHashIndex(int64(i))
			t.Fatalf("stored hash %d (level %d node %d) = %x, want %x", i, l, n, got[i][:], exp[i][:])
		}
	}
	// The next stored hash belongs to a leaf the log does not hold.
	if _, err := s.HashReader().ReadHashes([]int64{tlog.StoredHashCount(size)}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("hash beyond the tree = %v, want ErrNotFound", err)
	}
	for _, tile := range []tlog.Tile{{H: 8, L: 1, N: 0, W: 256}, {H: 8, L: 0, N: 256, W: 256}, {H: 8, L: 2, N: 0, W: 1}} {
		tp := chain.TilePath{Level: uint8(tile.L), N: uint64(tile.N), Width: tile.W % 256}
		data, err := s.ReadTile(tp, uint64(size))
		if err != nil {
			t.Fatalf("ReadTile(%s): %v", tp, err)
		}
		wantData, err := tlog.ReadTileData(tile, want)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(data, wantData) {
			t.Fatalf("ReadTile(%s) differs from tlog's tile", tp)
		}
	}
}

// TestStoredBytesPerRecord pins the layout: level-0 hashes are not stored
// and the rest take one row key per 256 nodes, so a log of n leaves holds
// fewer than n tree hashes and about n/256 row keys.
func TestStoredBytesPerRecord(t *testing.T) {
	s, _ := openMem(t)
	m := newLogModel()
	buildLog(t, s, m, 3000)
	var keys, hashBytes int
	if err := s.scan([]byte{prefixTree}, []byte{prefixTree + 1}, func(k, v []byte) error {
		keys++
		hashBytes += len(v)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	n := len(m.leaves)
	if hashBytes >= n*tlog.HashSize || keys > n/rowWidth+20 {
		t.Fatalf("%d leaves: %d row keys holding %d bytes of hashes", n, keys, hashBytes)
	}
}
