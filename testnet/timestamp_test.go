package testnet

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cunzheng/cunzheng/api"
	"github.com/cunzheng/cunzheng/api/client"
	"github.com/cunzheng/cunzheng/evidence"
	"github.com/cunzheng/cunzheng/evidence/tsa"
	"github.com/cunzheng/cunzheng/evidence/verify"
)

// tscIndex is the time-service institution of a testnet (tsc.example).
const tscIndex = 2

// TestTrustedTime runs four node processes whose time service checks its
// clock against a real SNTP server on loopback, and checks issue 4's
// trusted-time claims end to end: receipts are final and carry the time
// service's token, identical from every node; an idle network gets fresh
// tokens; with the reference clock 5 s off, the time service refuses to
// stamp and says so while submission goes on, and receipts gain their
// token once the clocks agree again; with the time service down, records
// are still preserved, and gain their token when it returns.
func TestTrustedTime(t *testing.T) {
	var skew atomic.Int64
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go tsa.ServeSNTP(pc, func() time.Time { return time.Now().Add(time.Duration(skew.Load())) })
	c := newClusterEnv(t, 4, map[int][]string{tscIndex: {
		"CUNZHENG_TSA_REFERENCE=sntp://" + pc.LocalAddr().String(),
		"CUNZHENG_TSA_RESTAMP_INTERVAL=1s",
	}})
	lead := c.leader()
	n := c.network()
	key := registerSubmitter(t, n, c.client(lead))
	ctx := context.Background()

	submit := func(i int, sub []byte) *api.SubmitResponse {
		t.Helper()
		resp, err := c.client(i).Submit(ctx, sub)
		if err != nil {
			t.Fatalf("submit to node %d: %v", i, err)
		}
		return resp
	}
	checkTimestamped := func(resp *api.SubmitResponse, file []byte, after time.Time) *verify.Result {
		t.Helper()
		d := sha256.Sum256(file)
		res := verify.Receipt([]byte(resp.Receipt), d[:], c.fp)
		if !res.OK() || res.Timestamp == nil {
			t.Fatalf("receipt: verdict %s (%s), timestamp %+v", res.Verdict, res.Reason, res.Timestamp)
		}
		if res.Timestamp.Authority != "tsc.example" || res.Timestamp.Time.Before(after.Add(-2*time.Second)) || res.Timestamp.Time.After(time.Now().Add(2*time.Second)) {
			t.Fatalf("token says %+v (submitted after %v)", res.Timestamp, after)
		}
		return res
	}

	// 1. A record's receipt is final and timestamped, the same bytes from
	// every node.
	start := time.Now()
	file := []byte("contract scan, trusted time")
	sub, _ := presign(t, n.origin, key, file)
	first := settledReceipt(t, c.client(lead), sub)
	checkTimestamped(first, file, start)
	for i := range c.procs {
		// Each replica applies the token entry on its own schedule.
		if got := settledReceipt(t, c.client(i), sub); got.Receipt != first.Receipt {
			t.Fatalf("node %d hands out another receipt:\n%s\nwant\n%s", i, got.Receipt, first.Receipt)
		}
	}

	// 2. Freshness: the idle network's latest checkpoint gets new tokens.
	var ts api.TimestampsResponse
	deadline := time.Now().Add(15 * time.Second)
	for {
		if err := getJSON(c.nw.Nodes[0].URL()+"/v1/timestamps", &ts); err != nil {
			t.Fatal(err)
		}
		if len(ts.Tokens) >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("idle checkpoint of size %d has %d tokens, want fresh ones every second", ts.TreeSize, len(ts.Tokens))
		}
		time.Sleep(200 * time.Millisecond)
	}
	m, err := manifestOf(c)
	if err != nil {
		t.Fatal(err)
	}
	body, _, _ := strings.Cut(ts.Checkpoint, "\n\n")
	var prev time.Time
	for i, tok := range ts.Tokens {
		got, err := evidence.VerifyToken(tok, []byte(body+"\n"), m)
		if err != nil {
			t.Fatalf("freshness token %d: %v", i, err)
		}
		if !got.Time.After(prev) {
			t.Fatalf("freshness token %d at %v is not after the one before (%v)", i, got.Time, prev)
		}
		prev = got.Time
	}

	// 3. The reference clock 5 s away: the time service refuses, loudly;
	// records are still preserved, final, without a token; once the
	// clocks agree the checkpoint is stamped and the receipt gains it.
	skew.Store(int64(5 * time.Second))
	waitAlarm(t, c.client(tscIndex), "time service refuses to stamp")
	skewedFile := []byte("recorded while the time service's clock was off")
	sub2, _ := presign(t, n.origin, key, skewedFile)
	if resp := submit(lead, sub2); !resp.Final || resp.Timestamped {
		t.Fatalf("with the clock off: final=%v timestamped=%v, want final without a token", resp.Final, resp.Timestamped)
	}
	skew.Store(0)
	checkTimestamped(settledReceipt(t, c.client(lead), sub2), skewedFile, start)

	// 4. The time service down (it may have been the leader): preserving
	// goes on; the token follows when it is back.
	c.stop(tscIndex)
	other := (tscIndex + 1) % len(c.procs)
	downFile := []byte("recorded while the time service was down")
	sub3, _ := presign(t, n.origin, key, downFile)
	resp := submitRetry(t, c.client(other), sub3, 30*time.Second)
	if resp.Timestamped {
		t.Fatal("a token with the time service down")
	}
	c.start(tscIndex)
	checkTimestamped(settledReceipt(t, c.client(other), sub3), downFile, start)
}

// submitRetry submits until the network answers (a new leader may be
// being elected).
func submitRetry(t *testing.T, cl *client.Client, sub []byte, within time.Duration) *api.SubmitResponse {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		resp, err := cl.Submit(context.Background(), sub)
		if err == nil {
			return resp
		}
		if time.Now().After(deadline) {
			t.Fatalf("submit: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitAlarm(t *testing.T, cl *client.Client, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, err := cl.Status(context.Background())
		if err == nil {
			for _, a := range st.Alarms {
				if strings.Contains(a, want) {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no alarm %q; status %+v, err %v", want, st, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// manifestOf reads the network's genesis manifest.
func manifestOf(c *cluster) (*evidence.Manifest, error) {
	var resp struct {
		Canonical []byte `json:"canonical"`
	}
	if err := getJSON(c.nw.Nodes[0].URL()+"/v1/manifest", &resp); err != nil {
		return nil, err
	}
	m, err := evidence.ParseManifest(resp.Canonical)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	return m, nil
}
