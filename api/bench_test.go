package api_test

import (
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
