package store

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/cunzheng/cunzheng/chain"
)

// The Merkle tree is stored as rows, not one key per hash. Level 0 (the
// leaf hashes) is not stored at all: a level-0 hash is tlog.RecordHash of
// the stored leaf, recomputed when read. Every level l >= 1 is cut into
// rows of rowWidth consecutive hashes, node n living in row n/rowWidth at
// offset n%rowWidth. A full row is written once and never changes; the
// rightmost row of each level is rewritten, one hash longer per new node,
// by every block that adds nodes to it. The rows of levels 8, 16, ... are
// byte for byte the C2SP hash tiles of tile levels 1, 2, ..., so those
// tiles are one point read; level-0 tiles are one range scan over leaves.
//
// Per record this stores about one 32-byte hash (half a node per leaf at
// level 1, a quarter at level 2, ...) under a key shared by hundreds of
// nodes, where one key per stored hash cost two hashes and two keys.
// Hashes are still named by tlog's stored-hash numbering at the HashReader
// seam, so tlog proves and checks against them unchanged.

// rowWidth is the number of hashes in a full row: a C2SP tile's width.
const rowWidth = chain.TileWidth

// growth is what appending leaves to a tree of first leaves adds: every
// node that becomes complete, level by level.
type growth struct {
	first, end uint64
	// levels[l] holds the new nodes of level l, indexes [first>>l, end>>l).
	// levels[0] are the new leaf hashes; the last level is the highest that
	// gains a node.
	levels [][]tlog.Hash
}

// node returns node n of level l if the growth computed it.
func (g *growth) node(l int, n uint64) (tlog.Hash, bool) {
	if l >= len(g.levels) || n < g.first>>l || n >= g.end>>l {
		return tlog.Hash{}, false
	}
	return g.levels[l][n-(g.first>>l)], true
}

// grow computes the nodes that leaves add to the stored tree of size first,
// and the root of the grown tree. At most one stored node per level is
// read: the left sibling of the first new node when that sibling is old.
func (s *Store) grow(first uint64, leaves [][]byte) (*growth, tlog.Hash, error) {
	end := first + uint64(len(leaves))
	g := &growth{first: first, end: end}
	l0 := make([]tlog.Hash, len(leaves))
	for i, leaf := range leaves {
		l0[i] = tlog.RecordHash(leaf)
	}
	g.levels = append(g.levels, l0)
	for l := 1; end>>l > first>>l; l++ {
		lo, hi := first>>l, end>>l
		below, belowLo := g.levels[l-1], first>>(l-1)
		nodes := make([]tlog.Hash, hi-lo)
		for n := lo; n < hi; n++ {
			// The right child is always new; the left one is old only for
			// the first new node, when the level below started mid-pair.
			var left tlog.Hash
			if 2*n >= belowLo {
				left = below[2*n-belowLo]
			} else {
				var err error
				if left, err = s.readNode(l-1, 2*n); err != nil {
					return nil, tlog.Hash{}, fmt.Errorf("grow tree %d to %d: %w", first, end, err)
				}
			}
			nodes[n-lo] = tlog.NodeHash(left, below[2*n+1-belowLo])
		}
		g.levels = append(g.levels, nodes)
	}
	root, err := tlog.TreeHash(int64(end), tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, x := range indexes {
			l, n := tlog.SplitStoredHashIndex(x)
			h, ok := g.node(l, uint64(n))
			if !ok {
				var err error
				if h, err = s.readNode(l, uint64(n)); err != nil {
					return nil, err
				}
			}
			out[i] = h
		}
		return out, nil
	}))
	if err != nil {
		return nil, tlog.Hash{}, fmt.Errorf("tree hash %d: %w", end, err)
	}
	return g, root, nil
}

// rowWrites returns the rows a growth rewrites, each with all its hashes.
// A row that already held nodes must hold exactly the nodes of the stored
// tree, which is checked. Called with writeMu held.
func (s *Store) rowWrites(g *growth) ([]KV, error) {
	var kvs []KV
	for l := 1; l < len(g.levels); l++ {
		lo, hi := g.first>>l, g.end>>l
		for r := lo / rowWidth; r*rowWidth < hi; r++ {
			start := r * rowWidth
			var row []byte
			if start < lo {
				old := s.rows.get(rowKey(l, r))
				var err error
				if old == nil {
					old, err = get(s.db, rowKey(l, r))
				}
				if err != nil {
					return nil, fmt.Errorf("tree row %d/%d: %w", l, r, err)
				}
				if uint64(len(old)) != (lo-start)*tlog.HashSize {
					return nil, fmt.Errorf("%w: tree row %d/%d holds %d bytes, want %d nodes", ErrCorrupt, l, r, len(old), lo-start)
				}
				row = append([]byte(nil), old...)
			}
			for n := max(start, lo); n < min(start+rowWidth, hi); n++ {
				row = append(row, g.levels[l][n-lo][:]...)
			}
			kvs = append(kvs, KV{rowKey(l, r), row})
		}
	}
	return kvs, nil
}

// readNode returns node n of level l of the stored tree: for level 0 the
// hash of the stored leaf, otherwise a slice of its row.
func (s *Store) readNode(l int, n uint64) (tlog.Hash, error) {
	var h tlog.Hash
	if l == 0 {
		v, closer, err := s.db.Get(leafKey(n))
		if errors.Is(err, pebble.ErrNotFound) {
			return h, fmt.Errorf("tree node 0/%d: %w", n, ErrNotFound)
		}
		if err != nil {
			return h, fmt.Errorf("tree node 0/%d: %w", n, err)
		}
		h = tlog.RecordHash(v)
		return h, closer.Close()
	}
	off := (n % rowWidth) * tlog.HashSize
	key := rowKey(l, n/rowWidth)
	if row := s.rows.get(key); uint64(len(row)) >= off+tlog.HashSize {
		copy(h[:], row[off:])
		return h, nil
	}
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return h, fmt.Errorf("tree node %d/%d: %w", l, n, ErrNotFound)
	}
	if err != nil {
		return h, fmt.Errorf("tree node %d/%d: %w", l, n, err)
	}
	defer closer.Close()
	if len(v) == rowWidth*tlog.HashSize {
		// A full row never changes again (partial rows enter the cache
		// when AppendBlock writes them).
		s.rows.put(key, v)
	}
	if uint64(len(v)) < off+tlog.HashSize {
		return h, fmt.Errorf("tree node %d/%d: %w", l, n, ErrNotFound)
	}
	copy(h[:], v[off:])
	return h, nil
}

// HashReader returns a tlog.HashReader over the tree in tlog's stored-hash
// numbering. A hash the tree does not hold yet is ErrNotFound. It is safe
// for concurrent use; hashes never change once written.
func (s *Store) HashReader() tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, x := range indexes {
			if x < 0 {
				return nil, fmt.Errorf("stored hash %d: %w", x, ErrNotFound)
			}
			l, n := tlog.SplitStoredHashIndex(x)
			h, err := s.readNode(l, uint64(n))
			if err != nil {
				return nil, fmt.Errorf("stored hash %d: %w", x, err)
			}
			out[i] = h
		}
		return out, nil
	})
}

// readHashTile returns the hashes of tile t (checked to exist in the tree
// by the caller): a stored row for levels above 0, the hashes of a range of
// leaves for level 0.
func (s *Store) readHashTile(t chain.TilePath) ([]byte, error) {
	w := uint64(t.W())
	if t.Level == 0 {
		out := make([]byte, 0, w*tlog.HashSize)
		err := s.scanLeaves(t.N*rowWidth, t.N*rowWidth+w, func(_ uint64, leaf []byte) {
			h := tlog.RecordHash(leaf)
			out = append(out, h[:]...)
		})
		if err != nil {
			return nil, fmt.Errorf("tile %s: %w", t, err)
		}
		return out, nil
	}
	row, err := get(s.db, rowKey(int(t.Level)*chain.TileHeight, t.N))
	if err != nil {
		return nil, fmt.Errorf("%w: tile %s: %w", ErrCorrupt, t, err)
	}
	if uint64(len(row)) < w*tlog.HashSize {
		return nil, fmt.Errorf("%w: tile %s: row holds %d bytes", ErrCorrupt, t, len(row))
	}
	return row[:w*tlog.HashSize], nil
}

// scanLeaves calls fn with every leaf in [start, end), in order, and fails
// with ErrCorrupt if one is missing. leaf is valid only during the call.
func (s *Store) scanLeaves(start, end uint64, fn func(index uint64, leaf []byte)) error {
	next := start
	err := s.scan(leafKey(start), leafKey(end), func(k, v []byte) error {
		idx, err := keyNum(prefixLeaf, k)
		if err != nil {
			return err
		}
		if idx != next {
			return fmt.Errorf("%w: leaf %d missing", ErrCorrupt, next)
		}
		fn(idx, v)
		next++
		return nil
	})
	if err == nil && next != end {
		err = fmt.Errorf("%w: leaf %d missing", ErrCorrupt, next)
	}
	return err
}

// maxCachedRows bounds the row cache (8 KiB a row: 32 MiB).
const maxCachedRows = 4096

// rowCache keeps rows of tree hashes in memory: proofs for recent and
// popular records read the same rows again and again. A full row is
// immutable; a partial row is replaced in the cache by AppendBlock each
// time it is rewritten, and only ever grows, so a cached row is never
// wrong for a tree it covers.
type rowCache struct {
	mu   sync.RWMutex
	rows map[string][]byte
}

func (c *rowCache) get(key []byte) []byte {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.rows[string(key)]
}

func (c *rowCache) put(key, row []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rows == nil || len(c.rows) >= maxCachedRows {
		// Dropping everything is crude but bounded; hot rows return at once.
		c.rows = make(map[string][]byte, 256)
	}
	c.rows[string(key)] = append([]byte(nil), row...)
}
