package store

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/cunzheng/cunzheng/chain"
)

// TestPowerLoss appends blocks (with checkpoints and signatures) while
// readers run, takes crash clones of the filesystem at random moments, and
// checks that each clone reopens with every write acknowledged before the
// clone, a hash chain and tree that re-derive to the head, and checkpoints
// the tree covers.
func TestPowerLoss(t *testing.T) {
	const blocks = 60
	fs := vfs.NewCrashableMem()
	s, err := Open("db", testGenesis, Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	// Expected state, written by the writer before each call.
	var (
		mu       sync.Mutex
		expected []*chain.Block // every block attempted, in order
		notes    = map[uint64][]byte{}
	)
	// Acknowledged state, published after each call returned nil.
	var ackedBlocks, ackedCheckpoint, ackedSigned atomic.Uint64
	// The writer sometimes pauses right after an acknowledgement until the
	// main goroutine has cloned: the moment most likely to expose a write
	// acknowledged before its sync. Other clones land at arbitrary moments.
	acks := make(chan chan struct{})

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	// Runs before s.Close: stop and wait for the readers and the writer.
	defer func() { cancel(); wg.Wait() }()
	writerErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(acks)
		writerErr <- func() error {
			m := newLogModel()
			rng := rand.New(rand.NewPCG(3, 4))
			for i := 0; i < blocks; i++ {
				b := m.next(1 + rng.IntN(60))
				mu.Lock()
				expected = append(expected, b)
				mu.Unlock()
				if err := s.AppendBlock(b, []KV{{Key: DigestKey([]byte("d"), b.Header.FirstIndex), Value: nil}}); err != nil {
					return err
				}
				m.accept(b)
				ackedBlocks.Store(b.Header.Height)
				if i%5 == 4 {
					size := b.Header.TreeSize
					if err := s.RecordSigned(size, b.Header.Root); err != nil {
						return err
					}
					ackedSigned.Store(size)
					note := fmt.Appendf(nil, "%s\n%d\n%x\n", testOrigin, size, b.Header.Root)
					mu.Lock()
					notes[size] = note
					mu.Unlock()
					if err := s.PutCheckpoint(size, note); err != nil {
						return err
					}
					ackedCheckpoint.Store(size)
				}
				if rng.IntN(4) == 0 {
					cloned := make(chan struct{})
					select {
					case acks <- cloned:
						<-cloned
					case <-ctx.Done():
						return nil
					}
				}
			}
			return nil
		}()
	}()

	// Readers check proofs against the roots they read, concurrently with
	// the writer and the clones.
	for r := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 9))
			for ctx.Err() == nil {
				size := s.TreeSize()
				if size == 0 {
					continue
				}
				i := rng.Uint64N(size)
				leaf, err := s.Leaf(i)
				if err != nil {
					t.Errorf("reader: leaf %d of %d: %v", i, size, err)
					return
				}
				p, err := s.InclusionProof(i, size)
				if err != nil {
					t.Errorf("reader: proof %d in %d: %v", i, size, err)
					return
				}
				root, err := s.TreeHash(size)
				if err != nil {
					t.Errorf("reader: root %d: %v", size, err)
					return
				}
				if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, size, rfc6962.DefaultHasher.HashLeaf(leaf), hashes(p), root[:]); err != nil {
					t.Errorf("reader: verify %d in %d: %v", i, size, err)
					return
				}
			}
		}()
	}

	rng := rand.New(rand.NewPCG(5, 6))
	clones := 0
	for cloned := range acks {
		for _, paused := range []bool{true, false} {
			// Read the acknowledgements before cloning: everything they
			// count was synced before the clone was taken.
			blocksBefore, cpBefore, signedBefore := ackedBlocks.Load(), ackedCheckpoint.Load(), ackedSigned.Load()
			pct := []int{0, 10, 50, 90, 100}[rng.IntN(5)]
			clone := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: pct, RNG: rand.New(rand.NewPCG(rng.Uint64(), 1))})
			if paused {
				close(cloned) // the second clone is taken while the writer runs
			}
			mu.Lock()
			exp := expected[:len(expected):len(expected)]
			expNotes := maps.Clone(notes)
			mu.Unlock()
			checkRecovered(t, clone, exp, expNotes, blocksBefore, cpBefore, signedBefore)
			clones++
		}
	}
	cancel()
	wg.Wait()
	if err := <-writerErr; err != nil {
		t.Fatalf("writer: %v", err)
	}
	if clones == 0 {
		t.Fatal("no crash clone was checked")
	}
	t.Logf("checked %d crash clones", clones)
}

func checkRecovered(t *testing.T, fs vfs.FS, expected []*chain.Block, notes map[uint64][]byte, ackedBlocks, ackedCheckpoint, ackedSigned uint64) {
	t.Helper()
	s, err := Open("db", testGenesis, Options{FS: fs})
	if err != nil {
		t.Fatalf("reopen clone: %v", err)
	}
	defer s.Close()
	head, ok := s.Head()
	if ackedBlocks > 0 && (!ok || head.Height < ackedBlocks) {
		t.Fatalf("clone lost acknowledged blocks: head %d, acknowledged %d", head.Height, ackedBlocks)
	}
	if head.Height > uint64(len(expected)) {
		t.Fatalf("clone head %d beyond the %d blocks written", head.Height, len(expected))
	}
	var prev [32]byte
	for h := uint64(1); h <= head.Height; h++ {
		got, err := s.BlockHeader(h)
		if err != nil {
			t.Fatalf("clone block %d: %v", h, err)
		}
		if *got != expected[h-1].Header || got.Prev != prev {
			t.Fatalf("clone block %d differs from the one written", h)
		}
		prev = got.Hash()
	}
	// Re-derive the tree from the stored leaves alone.
	r := rangeFactory.NewEmptyRange(0)
	for i := uint64(0); i < head.TreeSize; i++ {
		leaf, err := s.Leaf(i)
		if err != nil {
			t.Fatalf("clone leaf %d: %v", i, err)
		}
		if err := r.Append(rfc6962.DefaultHasher.HashLeaf(leaf), nil); err != nil {
			t.Fatal(err)
		}
	}
	if head.TreeSize > 0 {
		root, err := r.GetRootHash(nil)
		if err != nil {
			t.Fatal(err)
		}
		stored, err := s.TreeHash(head.TreeSize)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(root, head.Root[:]) || stored != head.Root {
			t.Fatalf("clone tree does not re-derive to head root")
		}
	}
	// The caller index entry of the head block was written with it.
	if ok {
		if _, err := s.Get(DigestKey([]byte("d"), head.FirstIndex)); err != nil {
			t.Fatalf("clone lost the index entry of block %d: %v", head.Height, err)
		}
		if _, err := s.Get(DigestKey([]byte("d"), head.TreeSize)); err == nil {
			t.Fatalf("clone has an index entry beyond its head")
		}
	}
	size, note, err := s.LatestCheckpoint()
	switch {
	case err != nil && ackedCheckpoint > 0:
		t.Fatalf("clone lost checkpoints: %v", err)
	case err == nil && (size < ackedCheckpoint || size > head.TreeSize || !bytes.Equal(note, notes[size])):
		t.Fatalf("clone checkpoint %d (acknowledged %d, tree %d) inconsistent", size, ackedCheckpoint, head.TreeSize)
	}
	signed, root, ok, err := s.LastSigned()
	if err != nil || (ackedSigned > 0 && (!ok || signed < ackedSigned)) || signed > head.TreeSize {
		t.Fatalf("clone last signed %d (acknowledged %d, tree %d): %v", signed, ackedSigned, head.TreeSize, err)
	}
	if ok {
		if want, err := s.TreeHash(signed); err != nil || want != root {
			t.Fatalf("clone signed root for %d is not the tree's", signed)
		}
	}
}
