package store

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkAppendBlock appends synced blocks of 1000 leaves of about 100
// bytes on the real filesystem and reports throughput and the bytes on disk
// each record costs beyond its leaf (tree hashes, keys, headers), measured
// after a flush and full compaction.
func BenchmarkAppendBlock(b *testing.B) {
	const perBlock, leafLen = 1000, 100
	s, err := Open(b.TempDir(), testGenesis, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	m := newLogModel()
	// Build blocks outside the timer: the model's root computation is not
	// what is measured.
	var leafBytes uint64
	rng := rand.NewChaCha8([32]byte{1})
	b.ResetTimer()
	var spent time.Duration
	for range b.N {
		b.StopTimer()
		blk := m.next(perBlock)
		for i, leaf := range blk.Leaves {
			// Random bytes, so compression does not flatter the overhead.
			padded := make([]byte, leafLen)
			rng.Read(padded)
			copy(padded, leaf)
			blk.Leaves[i] = padded
			blk.Sidecars[i] = nil
			leafBytes += leafLen
		}
		root, err := s.ComputeRoot(blk.Leaves)
		if err != nil {
			b.Fatal(err)
		}
		blk.Header.Root = root
		t0 := time.Now()
		b.StartTimer()
		if err := s.AppendBlock(blk, nil); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		spent += time.Since(t0)
		m.accept(blk)
	}
	records := float64(b.N * perBlock)
	b.ReportMetric(records/spent.Seconds(), "records/s")

	if err := s.db.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := s.db.Compact(context.Background(), []byte{0}, []byte{0xff}, false); err != nil {
		b.Fatal(err)
	}
	usage, err := s.DiskUsage()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric((float64(usage)-float64(leafBytes))/records, "overhead-B/record")
}
