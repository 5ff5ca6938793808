package testnet

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/cunzheng/cunzheng/chain/checkpoint"
	"github.com/cunzheng/cunzheng/evidence/verify"
)

// acked is an acknowledged record: what a client was told.
type acked struct {
	digest  [32]byte
	sub     []byte
	index   uint64
	receipt string
}

// load submits fresh records to the running nodes until stop is closed,
// retrying each record (on any node) until it is acknowledged, as a client
// that gets a timeout would. It returns every acknowledgement.
func (c *cluster) load(t *testing.T, key ed25519.PrivateKey, workers int, stop <-chan struct{}) func() []acked {
	var mu sync.Mutex
	var out []acked
	var wg sync.WaitGroup
	var next int
	var nmu sync.Mutex
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				nmu.Lock()
				next++
				n := next
				nmu.Unlock()
				sub, d := presign(t, c.nw.Origin, key, fmt.Appendf(nil, "fault evidence %d %d", time.Now().UnixNano(), n))
				for attempt := 0; ; attempt++ {
					node := (w + attempt) % len(c.procs)
					if !c.alive(node) {
						continue
					}
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					resp, err := c.client(node).Submit(ctx, sub)
					cancel()
					if err == nil {
						mu.Lock()
						out = append(out, acked{d, sub, resp.Index, resp.Receipt})
						mu.Unlock()
						break
					}
					select {
					case <-stop:
						return // an unacknowledged record owes nothing
					case <-time.After(50 * time.Millisecond):
					}
				}
			}
		}(w)
	}
	return func() []acked {
		wg.Wait()
		return out
	}
}

// invariants checks, on every running node: every acknowledged record
// verifies and is in the log exactly once at its index; all nodes hold
// identical logs up to the lowest size (same root); no log shrank below
// what it showed before (minSizes).
func (c *cluster) invariants(t *testing.T, acks []acked, minSizes map[int]uint64) {
	t.Helper()
	// Wait for every running node to catch up to the same final size.
	var sizes map[int]uint64
	deadline := time.Now().Add(30 * time.Second)
	for {
		sizes = map[int]uint64{}
		var max, min uint64 = 0, ^uint64(0)
		for i, p := range c.procs {
			if p == nil {
				continue
			}
			st, err := c.client(i).Status(context.Background())
			if err != nil || st.Syncing {
				continue
			}
			sizes[i] = st.FinalSize
			max, min = maxU(max, st.FinalSize), minU(min, st.FinalSize)
		}
		if len(sizes) == countRunning(c.procs) && max == min {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nodes did not converge: final sizes %v", sizes)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var root tlog.Hash
	first := true
	for i := range sizes {
		cp, err := c.client(i).Checkpoint(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		body, _, _ := cutNote(cp)
		ck, err := checkpoint.ParseBody(body)
		if err != nil {
			t.Fatal(err)
		}
		if !first && ck.Root != root {
			t.Fatalf("node %d holds another tree of size %d", i, ck.Size)
		}
		root, first = ck.Root, false
		if minSizes != nil && uint64(ck.Size) < minSizes[i] {
			t.Fatalf("node %d log shrank from %d to %d", i, minSizes[i], ck.Size)
		}
		if minSizes != nil {
			minSizes[i] = uint64(ck.Size)
		}
	}
	for _, a := range acks {
		if r := verify.Receipt([]byte(a.receipt), a.digest[:], c.fp); !r.OK() {
			t.Fatalf("acknowledged record %d: receipt does not verify: %s", a.index, r.Reason)
		}
		for i := range sizes {
			lr, err := c.client(i).Lookup(context.Background(), a.digest[:])
			if err != nil {
				t.Fatalf("acknowledged record %d missing on node %d: %v", a.index, i, err)
			}
			if len(lr.Records) != 1 || lr.Records[0].Index != a.index {
				t.Fatalf("record %d on node %d: %d copies", a.index, i, len(lr.Records))
			}
		}
	}
}

func cutNote(cp []byte) (body string, sigs string, ok bool) {
	for i := 0; i+1 < len(cp); i++ {
		if cp[i] == '\n' && cp[i+1] == '\n' {
			return string(cp[:i+1]), string(cp[i+2:]), true
		}
	}
	return string(cp), "", false
}

func countRunning(ps []*proc) int {
	n := 0
	for _, p := range ps {
		if p != nil {
			n++
		}
	}
	return n
}

func maxU(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

func minU(a, b uint64) uint64 {
	if a < b {
		return a
	}
	return b
}

// TestLeaderKilledUnderLoad SIGKILLs the leader while clients submit: a new
// leader is elected, retries succeed, no acknowledged record is lost, and
// the old leader rejoins and converges.
func TestLeaderKilledUnderLoad(t *testing.T) {
	c := newCluster(t, 4)
	key := registerSubmitter(t, c.network(), c.client(c.leader()))
	minSizes := map[int]uint64{}
	for round := 0; round < 2; round++ {
		stop := make(chan struct{})
		wait := c.load(t, key, 4, stop)
		time.Sleep(700 * time.Millisecond)
		lead := c.leader()
		c.stop(lead)
		killed := time.Now()
		newLead := c.leader()
		t.Logf("round %d: killed leader %d, new leader %d after %v", round, lead, newLead, time.Since(killed))
		time.Sleep(700 * time.Millisecond)
		close(stop)
		acks := wait()
		if len(acks) == 0 {
			t.Fatal("no record acknowledged")
		}
		c.start(lead)
		c.invariants(t, acks, minSizes)
		t.Logf("round %d: %d acknowledged, all verified on all nodes", round, len(acks))
	}
}

// TestFollowerRestartAndSnapshotCatchUp: a follower killed and restarted
// catches up; a follower offline while the others compact their raft logs
// past it catches up by snapshot plus block sync, including after being
// killed in the middle of syncing.
func TestFollowerRestartAndSnapshotCatchUp(t *testing.T) {
	os.Setenv("CUNZHENG_RAFT_SNAPSHOT_ENTRIES", "20")
	defer os.Unsetenv("CUNZHENG_RAFT_SNAPSHOT_ENTRIES")
	c := newCluster(t, 4)
	lead := c.leader()
	key := registerSubmitter(t, c.network(), c.client(lead))
	f := (lead + 1) % 4
	submitN := func(n int) []acked {
		var out []acked
		for i := 0; i < n; i++ {
			sub, d := presign(t, c.nw.Origin, key, fmt.Appendf(nil, "catch-up %d %d", time.Now().UnixNano(), i))
			lead := c.leader()
			resp, err := c.client(lead).Submit(context.Background(), sub)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, acked{d, sub, resp.Index, resp.Receipt})
		}
		return out
	}
	var all []acked
	// Follower killed and restarted.
	c.stop(f)
	all = append(all, submitN(10)...)
	c.start(f)
	c.invariants(t, all, nil)
	// Follower offline long enough for snapshots and compaction (every 20
	// entries): it must come back by snapshot + block sync.
	c.stop(f)
	batch := func(n int) {
		subs := make([][]byte, 0, n)
		for i := 0; i < n; i++ {
			sub, d := presign(t, c.nw.Origin, key, fmt.Appendf(nil, "bulk %d %d", time.Now().UnixNano(), i))
			subs = append(subs, sub)
			_ = d
		}
		for i := 0; i < len(subs); i += 50 {
			if _, err := c.client(c.leader()).SubmitBatch(context.Background(), subs[i:i+50]); err != nil {
				t.Fatal(err)
			}
			// Many small blocks and finalize entries, so the raft log
			// compacts several times.
		}
	}
	batch(400)
	all = append(all, submitN(20)...)
	c.start(f)
	c.invariants(t, all, nil)
	if log := c.procs[f].stderr.String(); !strings.Contains(log, "installing snapshot") || !strings.Contains(log, "msg=synced") {
		t.Fatalf("the follower did not catch up by snapshot and block sync:\n%s", tail(log, 4000))
	}
	// Killed in the middle of syncing: kill it again while it catches up,
	// then let it finish.
	c.stop(f)
	batch(400)
	c.start(f)
	time.Sleep(20 * time.Millisecond)
	c.stop(f)
	c.start(f)
	c.invariants(t, all, nil)
	st, err := c.client(f).Status(context.Background())
	if err != nil || st.Syncing {
		t.Fatalf("follower still syncing after catching up: %+v %v", st, err)
	}
}

// TestMismatchedGenesisRefused: a node given another genesis manifest that
// lists the same institutions refuses to start, names the peer and the
// fingerprints, and writes nothing.
func TestMismatchedGenesisRefused(t *testing.T) {
	c := newCluster(t, 4)
	c.leader()
	nd := c.nw.Nodes[3]
	c.stop(3)
	var descs []string
	for _, n := range c.nw.Nodes {
		descs = append(descs, n.Dir+"/descriptor.json")
	}
	other := t.TempDir() + "/other.json"
	if out, err := exec.Command(binPath, append([]string{"genesis", "--origin", "other.testnet.example/v1", "-o", other}, descs...)...).CombinedOutput(); err != nil {
		t.Fatalf("genesis: %v %s", err, out)
	}
	data, _ := os.ReadFile(other)
	os.WriteFile(nd.Dir+"/genesis.json", data, 0o644)
	before, _ := os.ReadDir(nd.Dir + "/data")
	out, err := exec.Command(binPath, "node", "--dir", nd.Dir, "--listen", nd.API).CombinedOutput()
	if err == nil {
		t.Fatal("a node with another genesis started")
	}
	if !strings.Contains(string(out), "another network") || !strings.Contains(string(out), "genesis") {
		t.Fatalf("unclear error: %s", out)
	}
	after, _ := os.ReadDir(nd.Dir + "/data")
	if len(after) != len(before) {
		t.Fatalf("the refused node wrote a data directory: %v → %v", before, after)
	}
}
