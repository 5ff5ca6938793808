package store

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"sort"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/cunzheng/cunzheng/chain"
)

const testOrigin = "evidence.court.example/v1"

var testGenesis = [32]byte{'g', 'e', 'n'}

// logModel builds valid blocks and tracks the expected log with the
// transparency-dev compact range, independently of the store's tlog code.
type logModel struct {
	head   *chain.BlockHeader
	leaves [][]byte
	rng    *compact.Range
	roots  [][]byte // roots[n] = root of the first n leaves (n >= 1)
	timeMS uint64
}

var rangeFactory = &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}

func newLogModel() *logModel {
	return &logModel{rng: rangeFactory.NewEmptyRange(0), roots: [][]byte{rfc6962.DefaultHasher.EmptyRoot()}, timeMS: 1_700_000_000_000}
}

func testLeaf(i uint64) []byte {
	return fmt.Appendf(nil, "leaf %d %s", i, bytes.Repeat([]byte{'.'}, int(i%37)))
}

// next returns the block of n leaves that follows the model's head, without
// advancing the model; call accept once the store took it.
func (m *logModel) next(n int) *chain.Block {
	first := uint64(len(m.leaves))
	// NewRange keeps the slice it is given, so give it a copy.
	r, err := rangeFactory.NewRange(0, m.rng.End(), slices.Clone(m.rng.Hashes()))
	if err != nil {
		panic(err)
	}
	b := &chain.Block{Header: chain.BlockHeader{
		Origin:     testOrigin,
		Height:     1,
		FirstIndex: first,
		Count:      uint32(n),
		TreeSize:   first + uint64(n),
		TimeMS:     m.timeMS + 7,
	}}
	if m.head != nil {
		b.Header.Height = m.head.Height + 1
		b.Header.Prev = m.head.Hash()
	}
	for i := range n {
		leaf := testLeaf(first + uint64(i))
		b.Leaves = append(b.Leaves, leaf)
		var side []byte
		if i%2 == 0 {
			side = fmt.Appendf(nil, "submission %d", first+uint64(i))
		}
		b.Sidecars = append(b.Sidecars, side)
		if err := r.Append(rfc6962.DefaultHasher.HashLeaf(leaf), nil); err != nil {
			panic(err)
		}
	}
	root, err := r.GetRootHash(nil)
	if err != nil {
		panic(err)
	}
	copy(b.Header.Root[:], root)
	return b
}

// accept advances the model past b.
func (m *logModel) accept(b *chain.Block) {
	h := b.Header
	m.head = &h
	m.timeMS = h.TimeMS
	for _, leaf := range b.Leaves {
		m.leaves = append(m.leaves, leaf)
		if err := m.rng.Append(rfc6962.DefaultHasher.HashLeaf(leaf), nil); err != nil {
			panic(err)
		}
		root, err := m.rng.GetRootHash(nil)
		if err != nil {
			panic(err)
		}
		m.roots = append(m.roots, root)
	}
}

// appendN appends a block of n leaves to s and the model.
func (m *logModel) appendN(t testing.TB, s *Store, n int) *chain.Block {
	t.Helper()
	b := m.next(n)
	if err := s.AppendBlock(b, nil); err != nil {
		t.Fatalf("append block %d: %v", b.Header.Height, err)
	}
	m.accept(b)
	return b
}

func openMem(t testing.TB) (*Store, vfs.FS) {
	t.Helper()
	fs := vfs.NewMem()
	s, err := Open("db", testGenesis, Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, fs
}

// dump returns every key and value in the database, for "wrote nothing"
// assertions.
func dump(t testing.TB, db *pebble.DB) map[string]string {
	t.Helper()
	it, err := db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	out := map[string]string{}
	for ok := it.First(); ok; ok = it.Next() {
		out[string(it.Key())] = string(it.Value())
	}
	return out
}

// fsSnapshot returns every file under dir with its contents.
func fsSnapshot(t testing.TB, fs vfs.FS, dir string) map[string]string {
	t.Helper()
	names, err := fs.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	out := map[string]string{}
	for _, name := range names {
		f, err := fs.Open(fs.PathJoin(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[name] = string(data)
	}
	return out
}
