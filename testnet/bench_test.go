package testnet

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cunzheng/cunzheng/api"
	"github.com/cunzheng/cunzheng/api/client"
	"github.com/cunzheng/cunzheng/evidence"
	"github.com/cunzheng/cunzheng/evidence/verify"
)

// Benchmarks of issue 2, run by `make bench`. Each starts a real node
// process (Pebble on disk, fsync on) and drives it over loopback HTTP with
// pre-signed records, so signing does not steal the cores. Figures that
// depend on the machine are reported next to a reference measured in the
// same run.

// benchNode starts a node with a registered submitter and n pre-signed
// submissions.
func benchNode(b *testing.B, n int) (*proc, *network, [][]byte, [][32]byte) {
	b.Helper()
	net := initNetwork(b, b.TempDir())
	p := startNode(b, net)
	key := registerSubmitter(b, net, p.client(b))
	subs := make([][]byte, n)
	digests := make([][32]byte, n)
	for i := range subs {
		subs[i], digests[i] = presign(b, net.origin, key, fmt.Appendf(nil, "bench evidence %d %d", time.Now().UnixNano(), i))
	}
	return p, net, subs, digests
}

func fastClient(b *testing.B, url string) *client.Client {
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}}
	c, err := client.New(url, client.WithHTTPClient(hc))
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// verifyCeiling measures Ed25519 verifications per second on all cores:
// the bound on ingest when every submission signature is checked.
func verifyCeiling(subs [][]byte, origin string) float64 {
	type item struct{ pub, msg, sig []byte }
	items := make([]item, 0, len(subs))
	for _, sb := range subs {
		s, _ := evidence.ParseSubmission(sb)
		msg, _ := s.SignedMessage(origin)
		items = append(items, item{s.Submitter.Key, msg, s.Signature})
	}
	workers := runtime.GOMAXPROCS(0)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(items); i += workers {
				if !ed25519.Verify(items[i].pub, items[i].msg, items[i].sig) {
					panic("bad signature")
				}
			}
		}()
	}
	wg.Wait()
	return float64(len(items)) / time.Since(start).Seconds()
}

// BenchmarkDurableIngest: records/s through the batch API with fsync on
// and every signature verified, against the Ed25519 verification ceiling
// of this machine measured in the same run.
func BenchmarkDurableIngest(b *testing.B) {
	const records, batch, clients = 40000, 500, 4
	p, net, subs, _ := benchNode(b, records)
	ceiling := verifyCeiling(subs, net.origin)
	// The load generator pre-encodes its requests and only checks the
	// status of each answer, so its own JSON work does not take the cores
	// the node is measured on; afterwards the log must hold every record.
	var bodies [][]byte
	for i := 0; i < records; i += batch {
		body, err := json.Marshal(api.BatchRequest{Submissions: subs[i:min(i+batch, records)]})
		if err != nil {
			b.Fatal(err)
		}
		bodies = append(bodies, body)
	}
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	b.ResetTimer()
	var next atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(bodies) {
					return
				}
				resp, err := hc.Post(p.url+"/v1/submissions/batch", "application/json", bytes.NewReader(bodies[i]))
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Errorf("batch %d: %s", i, resp.Status)
					return
				}
			}
		}()
	}
	wg.Wait()
	rate := float64(records) / time.Since(start).Seconds()
	b.StopTimer()
	if st, err := p.client(b).Status(context.Background()); err != nil || st.FinalSize != records+1 {
		b.Fatalf("after ingest: %+v %v, want %d final records", st, err, records+1)
	}
	b.ReportMetric(rate, "records/s")
	b.ReportMetric(ceiling, "verify-ceiling/s")
	b.ReportMetric(rate/ceiling, "ratio")
	b.Logf("durable ingest %.0f records/s; Ed25519 verify ceiling on %d cores %.0f/s; ratio %.2f (target ≥ 0.8)",
		rate, runtime.GOMAXPROCS(0), ceiling, rate/ceiling)
}

// BenchmarkSubmitLatencyOpenLoop offers single submissions at fixed rates,
// each sent at its scheduled time whatever the node's answers (open loop),
// and measures latency from the scheduled time, so queueing is counted.
func BenchmarkSubmitLatencyOpenLoop(b *testing.B) {
	rates := []int{200, 1000, 3000}
	const seconds = 3
	total := 0
	for _, r := range rates {
		total += r * seconds
	}
	p, _, subs, _ := benchNode(b, total)
	c := fastClient(b, p.url)
	b.ResetTimer()
	used := 0
	for _, rate := range rates {
		n := rate * seconds
		lat := make([]time.Duration, n)
		var failed atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		interval := time.Second / time.Duration(rate)
		for i := 0; i < n; i++ {
			at := start.Add(time.Duration(i) * interval)
			time.Sleep(time.Until(at))
			wg.Add(1)
			go func(i int, sub []byte) {
				defer wg.Done()
				if _, err := c.Submit(context.Background(), sub); err != nil {
					failed.Add(1)
				}
				lat[i] = time.Since(at)
			}(i, subs[used+i])
		}
		wg.Wait()
		used += n
		slices.Sort(lat)
		p50, p99 := lat[n/2], lat[n*99/100]
		b.ReportMetric(float64(p50.Microseconds())/1000, fmt.Sprintf("p50-ms@%d/s", rate))
		b.ReportMetric(float64(p99.Microseconds())/1000, fmt.Sprintf("p99-ms@%d/s", rate))
		b.Logf("offered %d/s for %ds: p50 %v p99 %v, %d failed", rate, seconds, p50, p99, failed.Load())
	}
}

// BenchmarkInclusionProofsHTTP: digest lookups (leaf + inclusion proof +
// final checkpoint) served per second over HTTP.
func BenchmarkInclusionProofsHTTP(b *testing.B) {
	const records = 20000
	p, net, subs, digests := benchNode(b, records)
	c := fastClient(b, p.url)
	for i := 0; i < records; i += 1000 {
		if _, err := c.SubmitBatch(context.Background(), subs[i:i+1000]); err != nil {
			b.Fatal(err)
		}
	}
	const lookups, clients = 60000, 32
	// Plain GETs whose answers are read and discarded: the figure is what
	// the node serves, not what a JSON-decoding client can take in; a
	// sample is verified in full afterwards.
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	urls := make([]string, records)
	for i, d := range digests {
		urls[i] = fmt.Sprintf("%s/v1/lookup/%x", p.url, d)
	}
	b.ResetTimer()
	var next atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > lookups {
					return
				}
				resp, err := hc.Get(urls[(int(i)*7919)%records])
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Errorf("lookup: %s", resp.Status)
					return
				}
			}
		}()
	}
	wg.Wait()
	rate := lookups / time.Since(start).Seconds()
	b.StopTimer()
	for _, i := range []int{0, records / 2, records - 1} {
		lr, err := c.Lookup(context.Background(), digests[i][:])
		if err != nil {
			b.Fatal(err)
		}
		if r := verify.Lookup(lr.Records[0].Leaf, []byte(lr.Records[0].Proof), lr.Manifests, digests[i][:], net.fp); !r.OK() {
			b.Fatalf("lookup %d does not verify: %s", i, r.Reason)
		}
	}
	b.ReportMetric(rate, "proofs/s")
	b.Logf("%d inclusion proofs over HTTP with %d clients: %.0f/s (target ≥ 20000/s)", lookups, clients, rate)
}
