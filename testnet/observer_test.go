package testnet

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/cunzheng/cunzheng/api"
	"github.com/cunzheng/cunzheng/api/client"
	"github.com/cunzheng/cunzheng/chain/checkpoint"
	"github.com/cunzheng/cunzheng/evidence"
	"github.com/cunzheng/cunzheng/evidence/verify"
)

// TestObserverLearner: three voting institutions and an observer. The
// observer replicates every record and proves it, and a submission sent to
// it is forwarded and acknowledged; but it never votes. With two of the
// three voters down nothing is acknowledged although the observer is up;
// restarting one voter resumes acknowledgements, and those two voters go on
// acknowledging while the observer is down (two of four voters would not).
// The observer then catches up with what it missed.
func TestObserverLearner(t *testing.T) {
	base, err := FreePortBase(20000+int(time.Now().UnixNano()%20000), 4)
	if err != nil {
		t.Fatal(err)
	}
	var members []Member
	for i, m := range []struct{ name, role string }{
		{"court.example", "court"}, {"notary.example", "notary"}, {"tsc.example", "time-service"}, {"observer.example", "observer"},
	} {
		members = append(members, Member{Name: m.name, Role: m.role,
			API: fmt.Sprintf("127.0.0.1:%d", base+i), P2P: fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", base+100+i)})
	}
	nw, err := CreateMembers(binPath, t.TempDir(), "evidence.observer.example/v1", members)
	if err != nil {
		t.Fatal(err)
	}
	const obs = 3
	voters := []int{0, 1, 2}
	procs := make([]*proc, len(members))
	clients := make([]*client.Client, len(members))
	for i, nd := range nw.Nodes {
		procs[i] = startNodeDir(t, nd.Dir, nd.API)
		if clients[i], err = client.New("http://" + nd.API); err != nil {
			t.Fatal(err)
		}
	}
	rs := newReplicas(t, nw, clients)
	start := time.Now()
	lead := rs.leader(voters, 0, 20*time.Second)
	leadID := rs.mustStatus(lead).Leader
	rs.waitFor("the observer to learn the leader", 10*time.Second, func() bool {
		st, err := rs.status(obs)
		if err == nil && (st.Role != "observer" || st.IsLeader) {
			t.Fatalf("observer status: role %q, is_leader %v", st.Role, st.IsLeader)
		}
		return err == nil && st.Leader == leadID
	})

	// The observer forwards a governance entry and submissions; every
	// record reaches it with a proof that verifies.
	key := registerSubmitter(t, rs.network(), clients[obs])
	for i := range members {
		rs.submitUntilAcked(i, key, fmt.Appendf(nil, "observed evidence sent to node %d", i), 15*time.Second)
	}
	cp := rs.converge(all(len(members)), 20*time.Second)
	rs.checkAcked([]int{obs})
	t.Logf("leader %s; observer forwarded and holds all %d records, size %d (%v)", nw.Nodes[lead].Name, len(rs.acks), cp.Size, time.Since(start).Round(time.Millisecond))

	// Two voters down: the leader and the observer together are no quorum.
	var down []int
	for _, i := range voters {
		if i != lead {
			down = append(down, i)
		}
	}
	for _, i := range down {
		procs[i].kill()
	}
	stopped := time.Now()
	up := []int{lead, obs}
	var refused [][]byte
	var refusedFiles [][]byte
	for k, i := range []int{lead, obs, lead, obs} {
		file := fmt.Appendf(nil, "sent to %s without a quorum, try %d", nw.Nodes[i].Name, k)
		sub, _ := presign(t, nw.Origin, key, file)
		ctx, cancel := context.WithTimeout(context.Background(), refusalTimeout)
		resp, err := clients[i].Submit(ctx, sub)
		cancel()
		if err == nil {
			t.Fatalf("%s acknowledged record %d with one voter of three up", nw.Nodes[i].Name, resp.Index)
		}
		if !isRefusal(t, nw.Nodes[i].Name, err) {
			t.Fatalf("%s without a quorum: want a timeout or 503, got %v", nw.Nodes[i].Name, err)
		}
		refused, refusedFiles = append(refused, sub), append(refusedFiles, file)
	}
	for _, i := range up {
		if st := rs.mustStatus(i); st.TreeSize != uint64(cp.Size) {
			t.Fatalf("%s: log moved from %d to %d without a quorum", nw.Nodes[i].Name, cp.Size, st.TreeSize)
		}
	}
	rs.waitFor("the lone voter to step down", 10*time.Second, func() bool {
		st, err := rs.status(lead)
		return err == nil && !st.IsLeader
	})
	t.Logf("two voters down: %d submissions refused, leader stepped down (%v)", len(refused), time.Since(stopped).Round(time.Millisecond))

	// One voter back: a quorum of two voters again.
	back := down[0]
	procs[back] = startNodeDir(t, nw.Nodes[back].Dir, nw.Nodes[back].API)
	restarted := time.Now()
	up = append(up, back)
	rs.submitUntilAcked(obs, key, []byte("sent to the observer after a voter came back"), 20*time.Second)
	resumed := time.Since(restarted)
	for k, sub := range refused {
		rs.submitSignedUntilAcked(up[k%len(up)], sub, refusedFiles[k], 15*time.Second)
	}
	t.Logf("voter %s back: first acknowledgement after %v", nw.Nodes[back].Name, resumed.Round(time.Millisecond))

	// Without the observer, two voters of three are a quorum. Were the
	// observer a voter, two of four would not be.
	procs[obs].kill()
	for _, i := range []int{lead, back} {
		rs.submitUntilAcked(i, key, fmt.Appendf(nil, "sent to %s while the observer is down", nw.Nodes[i].Name), 20*time.Second)
	}
	// The observer comes back and catches up with what it missed.
	procs[obs] = startNodeDir(t, nw.Nodes[obs].Dir, nw.Nodes[obs].API)
	final := rs.converge(up, 20*time.Second)
	rs.checkAcked(up)
	rs.checkConsistent(up, cp, final)
	t.Logf("two voters acknowledged without the observer; all %d records on %d nodes, size %d (%v)", len(rs.acks), len(up), final.Size, time.Since(start).Round(time.Millisecond))
}

// refusalTimeout is how long a client waits before it counts a submission
// as not acknowledged; the node itself would wait api.RequestTimeout.
const refusalTimeout = 3 * time.Second

// isRefusal reports whether a submit error is a node declining for now: a
// timeout, or 503 (no leader, leader changed: retry).
func isRefusal(t *testing.T, who string, err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, client.ErrUnavailable)
}

func all(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// replicas are the API clients of a network's nodes and the invariants a
// fault test checks across them.
type replicas struct {
	t       *testing.T
	nw      *Network
	clients []*client.Client
	fp      evidence.Fingerprint
	policy  checkpoint.Policy
	network func() *network
	maxSize []uint64 // the largest tree size each node ever reported
	acks    []ackedRecord
}

type ackedRecord struct {
	digest [32]byte
	index  uint64
}

func newReplicas(t *testing.T, nw *Network, clients []*client.Client) *replicas {
	t.Helper()
	mf, err := os.ReadFile(filepath.Join(nw.Nodes[0].Dir, "genesis.json"))
	if err != nil {
		t.Fatal(err)
	}
	m, fp, err := evidence.ParseManifestFile(mf)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := m.Verifiers()
	if err != nil {
		t.Fatal(err)
	}
	ak, err := os.ReadFile(filepath.Join(nw.Nodes[0].Dir, "admin.key"))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := evidence.ParsePrivateKey(ak)
	if err != nil {
		t.Fatal(err)
	}
	return &replicas{t: t, nw: nw, clients: clients, fp: fp, maxSize: make([]uint64, len(clients)),
		policy:  checkpoint.Policy{Origin: m.Origin, Verifiers: vs, Threshold: int(m.Threshold)},
		network: func() *network { return &network{dir: nw.Nodes[0].Dir, fp: fp, origin: m.Origin, admin: admin} }}
}

// status asks node i for its status and fails the test if its log shrank.
func (rs *replicas) status(i int) (*api.StatusResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := rs.clients[i].Status(ctx)
	if err != nil {
		return nil, err
	}
	if st.TreeSize < rs.maxSize[i] {
		rs.t.Fatalf("%s: log shrank from %d to %d", rs.nw.Nodes[i].Name, rs.maxSize[i], st.TreeSize)
	}
	rs.maxSize[i] = st.TreeSize
	return st, nil
}

func (rs *replicas) mustStatus(i int) *api.StatusResponse {
	rs.t.Helper()
	st, err := rs.status(i)
	if err != nil {
		rs.t.Fatalf("%s: status: %v", rs.nw.Nodes[i].Name, err)
	}
	return st
}

// waitServing waits until node i answers its status.
func (rs *replicas) waitServing(i int, p *proc, within time.Duration) {
	rs.t.Helper()
	rs.waitFor(rs.nw.Nodes[i].Name+" to serve", within, func() bool {
		select {
		case <-p.done:
			rs.t.Fatalf("%s exited:\n%s", rs.nw.Nodes[i].Name, tail(p.stderr.String(), 4000))
		default:
		}
		_, err := rs.status(i)
		return err == nil
	})
}

func (rs *replicas) waitFor(what string, within time.Duration, cond func() bool) {
	rs.t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			rs.t.Fatalf("gave up after %v waiting for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// leader waits until one of among reports itself leader in a term after
// afterTerm, and returns it.
func (rs *replicas) leader(among []int, afterTerm uint64, within time.Duration) int {
	rs.t.Helper()
	lead := -1
	rs.waitFor("a leader", within, func() bool {
		for _, i := range among {
			if st, err := rs.status(i); err == nil && st.IsLeader && st.Term > afterTerm {
				lead = i
				return true
			}
		}
		return false
	})
	return lead
}

// submitUntilAcked submits a new record of the file to node i, retrying
// while the node answers 503 or times out, and checks its receipt.
func (rs *replicas) submitUntilAcked(i int, key ed25519.PrivateKey, file []byte, within time.Duration) {
	rs.t.Helper()
	sub, _ := presign(rs.t, rs.nw.Origin, key, file)
	rs.submitSignedUntilAcked(i, sub, file, within)
}

func (rs *replicas) submitSignedUntilAcked(i int, sub, file []byte, within time.Duration) {
	rs.t.Helper()
	digest := sha256.Sum256(file)
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), refusalTimeout)
		resp, err := rs.clients[i].Submit(ctx, sub)
		cancel()
		if err == nil {
			if r := verify.Receipt([]byte(resp.Receipt), digest[:], rs.fp); !r.OK() {
				rs.t.Fatalf("receipt of record %d from %s: %s", resp.Index, rs.nw.Nodes[i].Name, r.Reason)
			}
			rs.acks = append(rs.acks, ackedRecord{digest: digest, index: resp.Index})
			return
		}
		if !isRefusal(rs.t, rs.nw.Nodes[i].Name, err) {
			rs.t.Fatalf("submit to %s: %v", rs.nw.Nodes[i].Name, err)
		}
		if time.Now().After(deadline) {
			rs.t.Fatalf("submit to %s: not acknowledged within %v: %v", rs.nw.Nodes[i].Name, within, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// converge waits until the nodes report one tree size and publish
// checkpoints of that size with one root, and returns that checkpoint.
func (rs *replicas) converge(nodes []int, within time.Duration) checkpoint.Checkpoint {
	rs.t.Helper()
	var last string
	var got checkpoint.Checkpoint
	rs.waitFor("the nodes to converge", within, func() bool {
		last = ""
		var cps []checkpoint.Checkpoint
		for _, i := range nodes {
			st, err := rs.status(i)
			if err != nil {
				last = fmt.Sprintf("%s: %v", rs.nw.Nodes[i].Name, err)
				return false
			}
			cp, err := rs.checkpoint(i)
			if err != nil {
				last = fmt.Sprintf("%s: %v", rs.nw.Nodes[i].Name, err)
				return false
			}
			last += fmt.Sprintf(" %s: tree %d checkpoint %d;", rs.nw.Nodes[i].Name, st.TreeSize, cp.Size)
			if uint64(cp.Size) != st.TreeSize {
				return false
			}
			cps = append(cps, cp)
		}
		for _, cp := range cps[1:] {
			if cp.Size != cps[0].Size {
				return false
			}
			if cp.Root != cps[0].Root {
				rs.t.Fatalf("two roots for tree size %d:%s", cp.Size, last)
			}
		}
		got = cps[0]
		return true
	})
	if got.Size == 0 {
		rs.t.Fatalf("converged on an empty log:%s", last)
	}
	return got
}

func (rs *replicas) checkpoint(i int) (checkpoint.Checkpoint, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	signed, err := rs.clients[i].Checkpoint(ctx)
	if err != nil {
		return checkpoint.Checkpoint{}, err
	}
	f, err := checkpoint.Open(signed, rs.policy)
	if err != nil {
		rs.t.Fatalf("%s published a checkpoint that does not meet the policy: %v\n%s", rs.nw.Nodes[i].Name, err, signed)
	}
	return f.Checkpoint, nil
}

// checkAcked checks that every node holds every acknowledged record once,
// at the index its receipt named, with an inclusion proof that verifies.
func (rs *replicas) checkAcked(nodes []int) {
	rs.t.Helper()
	if len(rs.acks) == 0 {
		rs.t.Fatal("no record was acknowledged; the test proved nothing")
	}
	for _, i := range nodes {
		for _, a := range rs.acks {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			lr, err := rs.clients[i].Lookup(ctx, a.digest[:])
			cancel()
			if err != nil {
				rs.t.Fatalf("%s: acknowledged record %d: %v", rs.nw.Nodes[i].Name, a.index, err)
			}
			if len(lr.Records) != 1 || lr.Records[0].Index != a.index {
				rs.t.Fatalf("%s: acknowledged record %d: want it once, found %+v", rs.nw.Nodes[i].Name, a.index, lr.Records)
			}
			rec := lr.Records[0]
			if r := verify.Lookup(rec.Leaf, []byte(rec.Proof), lr.Manifests, a.digest[:], rs.fp); !r.OK() {
				rs.t.Fatalf("%s: proof of record %d: %s", rs.nw.Nodes[i].Name, a.index, r.Reason)
			}
		}
	}
}

// checkConsistent checks that each node proves its log at cur extends the
// tree of old: nothing before the fault was rewritten.
func (rs *replicas) checkConsistent(nodes []int, old, cur checkpoint.Checkpoint) {
	rs.t.Helper()
	for _, i := range nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		cr, err := rs.clients[i].Consistency(ctx, uint64(old.Size), uint64(cur.Size))
		cancel()
		if err != nil {
			rs.t.Fatalf("%s: consistency %d→%d: %v", rs.nw.Nodes[i].Name, old.Size, cur.Size, err)
		}
		proof := make(tlog.TreeProof, len(cr.Proof))
		for k, h := range cr.Proof {
			copy(proof[k][:], h)
		}
		if err := tlog.CheckTree(proof, cur.Size, cur.Root, old.Size, old.Root); err != nil {
			rs.t.Fatalf("%s: tree %d does not extend tree %d: %v", rs.nw.Nodes[i].Name, cur.Size, old.Size, err)
		}
	}
}
