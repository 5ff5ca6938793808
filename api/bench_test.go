package api_test

import (
	"crypto/sha256"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cunzheng/cunzheng/api"
)

// BenchmarkBatchIngestInProcess measures the node's ingest path (HTTP batch
// → verify → block → fsync → checkpoint → receipts) in one process, for
// profiling; testnet's BenchmarkDurableIngest measures a node process.
func BenchmarkBatchIngestInProcess(b *testing.B) {
	n := newTestNode(b)
	alice := n.register()
	const records, batch, clients = 20000, 500, 4
	subs := make([][]byte, records)
	for i := range subs {
		subs[i] = signedSubmission(b, n.origin, alice, fmt.Appendf(nil, "ingest %d %d", time.Now().UnixNano(), i))
	}
	b.ResetTimer()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(batch)) - batch
				if i >= records {
					return
				}
				if code, body := n.do("POST", "/v1/submissions/batch", api.BatchRequest{Submissions: subs[i : i+batch]}); code != 200 {
					b.Errorf("batch: %d %s", code, body)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(records)/time.Since(start).Seconds(), "records/s")
}

// BenchmarkLookupInProcess profiles the public lookup path (digest →
// leaf, inclusion proof and final checkpoint).
func BenchmarkLookupInProcess(b *testing.B) {
	n := newTestNode(b)
	alice := n.register()
	const records = 5000
	subs := make([][]byte, records)
	for i := range subs {
		subs[i] = signedSubmission(b, n.origin, alice, fmt.Appendf(nil, "lookup %d", i))
	}
	for i := 0; i < records; i += 1000 {
		if code, body := n.do("POST", "/v1/submissions/batch", api.BatchRequest{Submissions: subs[i : i+1000]}); code != 200 {
			b.Fatalf("batch: %d %s", code, body)
		}
	}
	paths := make([]string, records)
	for i := range paths {
		d := sha256.Sum256(fmt.Appendf(nil, "lookup %d", i))
		paths[i] = fmt.Sprintf("/v1/lookup/%x", d)
	}
	b.ResetTimer()
	var next atomic.Int64
	b.SetParallelism(8) // many clients, as a court's users would be
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(next.Add(1)) % records
			if code, _ := n.do("GET", paths[i], nil); code != 200 {
				b.Errorf("lookup: %d", code)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
}
