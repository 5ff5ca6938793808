//go:build linux

package testnet

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cunzheng/cunzheng/api"
	"github.com/cunzheng/cunzheng/api/client"
	"github.com/cunzheng/cunzheng/evidence/ledger"
)

// TestPartitionNetns cuts a five-institution network in two with network
// namespaces the test creates: the leader and one follower on one side,
// three followers on the other. The three elect a leader and go on
// acknowledging; the two acknowledge nothing and their logs do not move.
// After healing, all five converge on one log that holds every
// acknowledged record once, consistent with what each published before.
func TestPartitionNetns(t *testing.T) { partitionNetns(t, 0) }

// TestPartitionNetnsLong holds the partition longer than a follower's clock
// skew bound: after healing, the minority must still take the blocks the
// majority committed meanwhile, however old their times are by then.
func TestPartitionNetnsLong(t *testing.T) {
	partitionNetns(t, ledger.DefaultMaxSkew+2*time.Second)
}

// partitionNetns runs the partition scenario, holding the partition for at
// least hold once the majority has acknowledged.
func partitionNetns(t *testing.T, hold time.Duration) {
	requireNetns(t)
	const n = 5
	x, err := NewNetns(fmt.Sprintf("czpart-%d-%d", os.Getpid(), netnsSeq.Add(1)), "10.231.0", n)
	if err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs after the node processes are killed.
	t.Cleanup(func() {
		if err := x.Close(); err != nil {
			t.Errorf("remove namespaces: %v", err)
		}
	})
	members := make([]Member, n)
	for i := range members {
		name, role := institution(i)
		// Every namespace has its own loopback: the APIs share an address.
		members[i] = Member{Name: name, Role: role, API: "127.0.0.1:8080", P2P: fmt.Sprintf("/ip4/%s/tcp/4001", x.Addr(i))}
	}
	nw, err := CreateMembers(binPath, t.TempDir(), "evidence.partition.example/v1", members)
	if err != nil {
		t.Fatal(err)
	}
	clients := make([]*client.Client, n)
	procs := make([]*proc, n)
	for i, nd := range nw.Nodes {
		procs[i] = startNetnsNode(t, x, i, nd.Dir)
		hc := &http.Client{Transport: &http.Transport{DialContext: x.DialContext(i)}, Timeout: 2 * api.RequestTimeout * time.Second}
		if clients[i], err = client.New("http://"+nd.API, client.WithHTTPClient(hc)); err != nil {
			t.Fatal(err)
		}
	}
	rs := newReplicas(t, nw, clients)
	for i := range procs {
		rs.waitServing(i, procs[i], 30*time.Second)
	}
	start := time.Now()

	lead := rs.leader(all(n), 0, 20*time.Second)
	oldTerm := rs.mustStatus(lead).Term
	follower := (lead + 1) % n
	minority := []int{lead, follower}
	var majority []int
	for i := 0; i < n; i++ {
		if i != lead && i != follower {
			majority = append(majority, i)
		}
	}
	key := registerSubmitter(t, rs.network(), clients[follower])
	for i := 0; i < n; i++ {
		rs.submitUntilAcked(i, key, fmt.Appendf(nil, "before the partition %d", i), 15*time.Second)
	}
	before := rs.converge(all(n), 20*time.Second)
	t.Logf("%d nodes up, leader %s, %d records acknowledged, converged at size %d (%v)", n, nw.Nodes[lead].Name, len(rs.acks), before.Size, time.Since(start).Round(time.Millisecond))

	cut := time.Now()
	if err := x.Partition(minority, majority); err != nil {
		t.Fatal(err)
	}
	// Submit to both sides of the cut at once: the old leader may still
	// think it leads, but it must not acknowledge.
	refused := map[int][]byte{} // node → submission the minority was asked to preserve
	for _, i := range minority {
		refused[i], _ = presign(t, nw.Origin, key, minorityFile(i))
	}
	var wg sync.WaitGroup
	for _, i := range minority {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), refusalTimeout)
			defer cancel()
			resp, err := clients[i].Submit(ctx, refused[i])
			switch {
			case err == nil:
				t.Errorf("%s (minority) acknowledged record %d during the partition", nw.Nodes[i].Name, resp.Index)
			case !isRefusal(t, nw.Nodes[i].Name, err):
				t.Errorf("%s (minority): want a timeout or 503, got %v", nw.Nodes[i].Name, err)
			}
		}()
	}
	newLead := rs.leader(majority, oldTerm, 15*time.Second)
	elected := time.Since(cut)
	acked := len(rs.acks)
	for _, i := range majority {
		for k := 0; k < 3; k++ {
			rs.submitUntilAcked(i, key, fmt.Appendf(nil, "majority %d record %d", i, k), 15*time.Second)
		}
	}
	acked = len(rs.acks) - acked
	majorityAcked := time.Since(cut)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	// The old leader steps down (CheckQuorum) and the minority's logs stay
	// where they were when the network was cut.
	rs.waitFor("the minority to have no leader", 10*time.Second, func() bool {
		for _, i := range minority {
			if st, err := rs.status(i); err != nil || st.IsLeader {
				return false
			}
		}
		return true
	})
	for _, i := range minority {
		// Leaderless now, it still must not acknowledge.
		sub, _ := presign(t, nw.Origin, key, fmt.Appendf(nil, "sent to the leaderless minority %d", i))
		ctx, cancel := context.WithTimeout(context.Background(), refusalTimeout)
		resp, err := clients[i].Submit(ctx, sub)
		cancel()
		if err == nil {
			t.Fatalf("%s (minority) acknowledged record %d with no leader", nw.Nodes[i].Name, resp.Index)
		}
		if !isRefusal(t, nw.Nodes[i].Name, err) {
			t.Fatalf("%s (minority): want a timeout or 503, got %v", nw.Nodes[i].Name, err)
		}
		if st := rs.mustStatus(i); st.TreeSize != uint64(before.Size) {
			t.Fatalf("%s (minority) log moved from %d to %d during the partition", nw.Nodes[i].Name, before.Size, st.TreeSize)
		}
	}
	t.Logf("partition: %s elected after %v; majority acknowledged %d records by %v; minority refused and stepped down",
		nw.Nodes[newLead].Name, elected.Round(time.Millisecond), acked, majorityAcked.Round(time.Millisecond))

	if rest := hold - time.Since(cut); rest > 0 {
		time.Sleep(rest) // the fault itself lasts this long; nothing is awaited
	}
	healed := time.Now()
	if err := x.Heal(); err != nil {
		t.Fatal(err)
	}
	// Retrying what the minority refused preserves it exactly once.
	for _, i := range minority {
		rs.submitSignedUntilAcked(i, refused[i], minorityFile(i), 20*time.Second)
	}
	final := rs.converge(all(n), 30*time.Second)
	t.Logf("partition lasted %v; after healing, all %d nodes reached size %d in %v", healed.Sub(cut).Round(time.Millisecond), n, final.Size, time.Since(healed).Round(time.Millisecond))
	rs.checkAcked(all(n))
	rs.checkConsistent(all(n), before, final)
	t.Logf("total %v from first leader", time.Since(start).Round(time.Millisecond))
}

func minorityFile(i int) []byte { return fmt.Appendf(nil, "sent to the minority %d", i) }

var netnsSeq atomic.Int64

// requireNetns skips a test that needs root and iproute2, unless CI is set:
// there a missing prerequisite is a failure, never a silent skip.
func requireNetns(t *testing.T) {
	t.Helper()
	_, err := exec.LookPath("ip")
	if os.Geteuid() == 0 && err == nil {
		return
	}
	why := "needs root and iproute2's ip to create network namespaces"
	if os.Getenv("CI") != "" {
		t.Fatal(why)
	}
	t.Skip(why)
}

// startNetnsNode starts `cunzheng node` inside namespace host i.
func startNetnsNode(t *testing.T, x *Netns, i int, dir string) *proc {
	t.Helper()
	cmd := x.Command(i, binPath, "node", "--dir", dir)
	p := &proc{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("log of %s:\n%s", filepath.Base(dir), tail(p.stderr.String(), 4000))
		}
	})
	return p
}
