package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkAppendBlock appends synced blocks of 1000 leaves of 100 random
// bytes on the real filesystem and reports throughput and the bytes each
// record costs on disk.
//
// The byte figures are taken after a flush and a full compaction, from the
// live sstables only: that is the cost that grows with the log. The live
// WAL, the manifest and obsolete files awaiting deletion are a fixed few MB
// that would otherwise swamp a short run (and vary with when Pebble deletes
// them), so they are reported apart as fixed-MB.
//
//   - overhead-B/record: bytes beyond the leaf and its sidecar (keys, tree
//     hashes, block headers, block index, filters, sstable framing).
//   - beyond-leaf-B/record (sub-benchmark "sidecar"): everything beyond the
//     leaf when a 200-byte sidecar is stored beside each leaf, as the
//     evidence layer does with the signed Submission: the sidecar itself,
//     its key, and the overhead above.
func BenchmarkAppendBlock(b *testing.B) {
	b.Run("leaves", func(b *testing.B) { benchAppend(b, 0) })
	b.Run("sidecar", func(b *testing.B) { benchAppend(b, 200) })
}

func benchAppend(b *testing.B, sidecarLen int) {
	const perBlock, leafLen = 1000, 100
	s, err := Open(b.TempDir(), testGenesis, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	m := newLogModel()
	var payload uint64
	rng := rand.NewChaCha8([32]byte{1})
	random := func(n int) []byte {
		// Random bytes, so compression does not flatter the overhead.
		out := make([]byte, n)
		rng.Read(out)
		return out
	}
	b.ResetTimer()
	var spent time.Duration
	for range b.N {
		// Build blocks outside the timer: the model's root computation is
		// not what is measured.
		b.StopTimer()
		blk := m.next(perBlock)
		for i := range blk.Leaves {
			blk.Leaves[i] = random(leafLen)
			blk.Sidecars[i] = nil
			if sidecarLen > 0 {
				blk.Sidecars[i] = random(sidecarLen)
			}
			payload += uint64(leafLen + sidecarLen)
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
	met := s.db.Metrics()
	tables := float64(met.Table.Local.LiveSize + met.BlobFiles.Local.LiveSize)
	sidecars := float64(b.N * perBlock * sidecarLen)
	b.ReportMetric((tables-float64(payload))/records, "overhead-B/record")
	if sidecarLen > 0 {
		b.ReportMetric((tables-float64(payload)+sidecars)/records, "beyond-leaf-B/record")
	}
	b.ReportMetric((float64(met.DiskSpaceUsage())-tables)/(1<<20), "fixed-MB")
}

// BenchmarkGetMissing measures the dedup check of a new submission: Get of
// a caller key the store does not hold, with 100k records and their dedup
// and digest keys stored. "cached" has the default block cache, which holds
// the whole store; "small-cache" has 256 KiB, the situation of a store much
// larger than its cache, where a lookup that cannot rule a table out reads
// a data block from the file.
func BenchmarkGetMissing(b *testing.B) {
	b.Run("cached", func(b *testing.B) { benchGetMissing(b, 0) })
	b.Run("small-cache", func(b *testing.B) { benchGetMissing(b, 256<<10) })
}

func benchGetMissing(b *testing.B, cacheSize int64) {
	const records, perBlock = 100_000, 1000
	s, err := Open(b.TempDir(), testGenesis, Options{CacheSize: cacheSize})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	m := newLogModel()
	for len(m.leaves) < records {
		blk := m.next(perBlock)
		index := make([]KV, 0, 2*perBlock)
		for i := range blk.Leaves {
			idx := blk.Header.FirstIndex + uint64(i)
			digest := sha256.Sum256(binary.BigEndian.AppendUint64(nil, idx))
			index = append(index,
				KV{Key: DedupKey([32]byte{byte(idx % 7)}, digest[:]), Value: EncodeIndex(idx)},
				KV{Key: DigestKey(digest[:], idx)})
		}
		if err := s.AppendBlock(blk, index); err != nil {
			b.Fatal(err)
		}
		m.accept(blk)
	}
	if err := s.db.Flush(); err != nil {
		b.Fatal(err)
	}
	// The shape the lookups met: background compaction moves the L0
	// tables (where filters count) into L6 (where Get reads no filter).
	defer func() {
		met := s.db.Metrics()
		b.Logf("LSM: %d tables in L0 (%d sublevels), %d in L6; filter %+v", met.Levels[0].TablesCount, met.Levels[0].Sublevels, met.Levels[6].TablesCount, met.Filter)
	}()
	keys := make([][]byte, 1024)
	for i := range keys {
		digest := sha256.Sum256(binary.BigEndian.AppendUint64([]byte("missing"), uint64(i)))
		keys[i] = DedupKey([32]byte{byte(i % 7)}, digest[:])
	}
	i := 0
	for b.Loop() {
		if _, err := s.Get(keys[i%len(keys)]); !errors.Is(err, ErrNotFound) {
			b.Fatalf("Get missing key = %v", err)
		}
		i++
	}
}
