package testnet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/cunzheng/cunzheng/api/audit"
	"github.com/cunzheng/cunzheng/api/client"
	"github.com/cunzheng/cunzheng/api/node"
	"github.com/cunzheng/cunzheng/chain"
	"github.com/cunzheng/cunzheng/chain/checkpoint"
	"github.com/cunzheng/cunzheng/evidence"
	"github.com/cunzheng/cunzheng/evidence/verify"
)

// TestMaliciousLeader runs four real nodes in this process over real
// libp2p and has a compromised leader, with nothing but its own keys and
// its own node, try to fork the log: it builds a second tree of a size
// already final (another record at the last index) and signs it.
//
//   - No institution signs on request: the only way in is the RPC that
//     carries checkpoint signatures, and each follower refuses a note over
//     a root it does not hold, with an alarm. A finalize entry carrying
//     the fork with the leader's signature alone is refused by every
//     follower before it can commit, with an alarm.
//   - No honest node ever records or serves a signature over the fork,
//     and no replica stores it as final.
//   - The auditor, clean before the attack, fails naming the leader once
//     the leader's API shows the fork.
//   - With the compromised institution taken out, the others go on
//     finalizing new records.
//   - The next leader, compromised in turn, re-proposes a committed block
//     with another record in it (rewriting history): the followers refuse
//     it, nothing is applied, and they raise an alarm.
func TestMaliciousLeader(t *testing.T) {
	base, err := FreePortBase(20000+int(time.Now().UnixNano()%20000), 4)
	if err != nil {
		t.Fatal(err)
	}
	nw, err := Create(binPath, t.TempDir(), 4, base)
	if err != nil {
		t.Fatal(err)
	}
	fp, _ := evidence.ParseFingerprint(nw.Fingerprint)
	nodes := startInProcess(t, nw)
	ctx := context.Background()
	cl := func(i int) *client.Client {
		c, _ := client.New(nodes[i].url)
		return c
	}
	lead := inProcessLeader(t, nodes, cl, nil)
	ak, _ := os.ReadFile(filepath.Join(nw.Nodes[0].Dir, "admin.key"))
	admin, err := evidence.ParsePrivateKey(ak)
	if err != nil {
		t.Fatal(err)
	}
	netw := &network{dir: nw.Nodes[0].Dir, fp: fp, origin: nw.Origin, admin: admin}
	key := registerSubmitter(t, netw, cl(lead))
	for i := range 3 {
		sub, _ := presign(t, nw.Origin, key, []byte{'r', 'e', 'c', byte('0' + i)})
		if _, err := cl(i).Submit(ctx, sub); err != nil {
			t.Fatalf("submit %d: %v", i, err)
		}
	}
	// Every node holds, has signed and stores as final the same tree.
	size := nodes[lead].Ledger.Store().TreeSize()
	honestRoot, err := nodes[lead].Ledger.Store().TreeHash(size)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "every node signs and finalizes the tree", 20*time.Second, func() bool {
		for _, n := range nodes {
			st := n.Ledger.Store()
			s, r, ok, err := st.LastSigned()
			fin, _, ferr := st.LatestCheckpoint()
			if err != nil || !ok || s != size || r != honestRoot || ferr != nil || fin != size {
				return false
			}
		}
		return true
	})
	_, honestFinal, _ := nodes[lead].Ledger.Store().LatestCheckpoint()
	followers := slices.DeleteFunc([]int{0, 1, 2, 3}, func(i int) bool { return i == lead })

	// The auditor sees the leader's API through a proxy that, once the
	// attack starts, serves the leader's fork as its checkpoint.
	var forkServed atomic.Pointer[[]byte]
	target, _ := url.Parse(nodes[lead].url)
	proxy := httputil.NewSingleHostReverseProxy(target)
	leaderAPI := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cp := forkServed.Load(); cp != nil && r.URL.Path == "/checkpoint" {
			w.Write(*cp)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer leaderAPI.Close()
	urls := make([]string, len(nodes))
	for i, n := range nodes {
		urls[i] = n.url
	}
	urls[lead] = leaderAPI.URL
	stateDir := t.TempDir()
	if code, rep, out := runAudit(t, nw.Fingerprint, stateDir, urls); code != 0 || !rep.OK {
		t.Fatalf("audit before the attack: exit %d\n%s", code, out)
	}
	stateBefore := readAuditState(t, fp, stateDir)

	// The fork: the same records but for another one at the last index, a
	// real leaf of a real signed submission, and the leader's own signature.
	st := nodes[lead].Ledger.Store()
	leaves := make([][]byte, size)
	for i := range leaves {
		if leaves[i], err = st.Leaf(uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if got := treeRoot(leaves); got != honestRoot {
		t.Fatalf("tree root computed here %x, the store's %x", got, honestRoot)
	}
	last, err := st.BlockForIndex(size - 1)
	if err != nil {
		t.Fatal(err)
	}
	forkSub, _ := presign(t, nw.Origin, key, []byte("the record the leader would rather have"))
	ps, _ := evidence.ParseSubmission(forkSub)
	forkLeaf, err := evidence.EvidenceLeaf(ps, forkSub, last.TimeMS, last.Height).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	forkRoot := treeRoot(append(slices.Clone(leaves[:size-1]), forkLeaf))
	leaderKey, err := os.ReadFile(filepath.Join(nw.Nodes[lead].Dir, "note.key"))
	if err != nil {
		t.Fatal(err)
	}
	leaderSigner, err := note.NewSigner(strings.TrimSpace(string(leaderKey)))
	if err != nil {
		t.Fatal(err)
	}
	fork, err := checkpoint.Sign(checkpoint.Checkpoint{Origin: nw.Origin, Size: int64(size), Root: forkRoot}, leaderSigner)
	if err != nil {
		t.Fatal(err)
	}

	// (a) Offered to each follower by the checkpoint-signature RPC, the
	// only way a node takes a note from another: refused.
	for _, i := range followers {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := nodes[lead].Cosign(cctx, nw.Nodes[i].Name, fork)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "root this replica does not have") {
			t.Fatalf("follower %s answered the forked note with %v, want a refusal naming the root", nw.Nodes[i].Name, err)
		}
	}
	// (b) Proposed as a finalize entry with the leader's signature alone.
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	err = nodes[lead].Orderer.Propose(pctx, append([]byte{2}, fork...))
	cancel()
	if err == nil {
		t.Fatal("the forked finalize entry was committed")
	}
	for _, i := range followers {
		alarms := strings.Join(nodes[i].Ledger.Alarms(), "; ")
		for _, want := range []string{"cosignature over a different root", "final checkpoint names a root this replica does not have"} {
			if !strings.Contains(alarms, want) {
				t.Errorf("follower %s raised no alarm %q: %s", nw.Nodes[i].Name, want, alarms)
			}
		}
	}
	// No honest node signed the fork, none serves it, none stores it.
	for i, n := range nodes {
		st := n.Ledger.Store()
		if fin, signed, err := st.LatestCheckpoint(); err != nil || fin != size || !bytes.Equal(signed, honestFinal) {
			t.Errorf("node %s: final checkpoint changed: size %d, err %v\n%s", nw.Nodes[i].Name, fin, err, signed)
		}
		if i == lead {
			continue
		}
		if s, r, _, err := st.LastSigned(); err != nil || s != size || r != honestRoot {
			t.Errorf("node %s: last signed size %d root %x (err %v), want %d %x", nw.Nodes[i].Name, s, r, err, size, honestRoot)
		}
		served, err := cl(i).Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if c := mustOpen(t, netw, served); c.Root != honestRoot || bytes.Equal(firstLines(served), firstLines(fork)) {
			t.Errorf("node %s serves a checkpoint of root %x", nw.Nodes[i].Name, c.Root)
		}
	}

	// (c) The leader's API shows the fork, with its own signature and the
	// other institutions' signature lines copied from the real checkpoint:
	// the most it can produce. The auditor fails naming the leader alone.
	var copied []string
	for _, line := range strings.SplitAfter(string(honestFinal[bytes.Index(honestFinal, []byte("\n\n"))+2:]), "\n") {
		if line != "" && !strings.HasPrefix(line, "— "+leaderSigner.Name()+" ") {
			copied = append(copied, line)
		}
	}
	shown := []byte(string(fork) + strings.Join(copied, ""))
	forkServed.Store(&shown)
	code, rep, out := runAudit(t, nw.Fingerprint, stateDir, urls)
	if code != 1 || rep.OK || len(rep.Findings) == 0 {
		t.Fatalf("audit of the fork: exit %d, want 1 with findings\n%s", code, out)
	}
	for _, f := range rep.Findings {
		if f.Kind != audit.KindBadCheckpoint || !slices.Equal(f.Nodes, []string{leaderAPI.URL}) {
			t.Errorf("finding %s naming %v, want %s naming the leader %s alone: %s", f.Kind, f.Nodes, audit.KindBadCheckpoint, leaderAPI.URL, f.Message)
		}
	}
	if after := readAuditState(t, fp, stateDir); after.Nodes[leaderAPI.URL] != stateBefore.Nodes[leaderAPI.URL] || *after.Largest != *stateBefore.Largest {
		t.Errorf("the audit state advanced on a refused checkpoint:\nbefore %+v\nafter  %+v", stateBefore, after)
	}

	// The compromised institution is taken out; the others go on.
	nodes[lead].stop()
	next := inProcessLeader(t, nodes, cl, []int{lead})
	sub, d := presign(t, nw.Origin, key, []byte("after the fork attempt"))
	resp, err := cl(next).Submit(ctx, sub)
	if err != nil {
		t.Fatalf("the network did not go on: %v", err)
	}
	if r := verify.Receipt([]byte(resp.Receipt), d[:], fp); !r.OK() {
		t.Fatalf("receipt after the attack: %s", r.Reason)
	}
	for _, i := range followers {
		st := nodes[i].Ledger.Store()
		waitUntil(t, "a newer tree is final on "+nw.Nodes[i].Name, 10*time.Second, func() bool {
			fin, _, err := st.LatestCheckpoint()
			return err == nil && fin > size
		})
		if r, err := st.TreeHash(size); err != nil || r != honestRoot {
			t.Errorf("node %s: tree %d now has root %x (%v)", nw.Nodes[i].Name, size, r, err)
		}
	}

	// The next leader rewrites history: the committed block that holds the
	// last record of the forked size again, with the other record in it.
	st = nodes[next].Ledger.Store()
	prev, err := st.BlockHeader(last.Height - 1)
	if err != nil {
		t.Fatal(err)
	}
	rewritten := &chain.Block{Header: chain.BlockHeader{Origin: nw.Origin, Height: last.Height, Prev: prev.Hash(),
		FirstIndex: last.FirstIndex, Count: 1, TreeSize: last.FirstIndex + 1,
		Root: treeRoot(append(slices.Clone(leaves[:last.FirstIndex]), forkLeaf)), TimeMS: last.TimeMS},
		Leaves: [][]byte{forkLeaf}, Sidecars: [][]byte{forkSub}}
	enc, err := rewritten.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	heads := map[int][32]byte{}
	sizes := map[int]uint64{}
	for _, i := range followers {
		h, _ := nodes[i].Ledger.Store().Head()
		heads[i], sizes[i] = h.Hash(), nodes[i].Ledger.Store().TreeSize()
	}
	pctx, cancel = context.WithTimeout(ctx, 3*time.Second)
	err = nodes[next].Orderer.Propose(pctx, append([]byte{1}, enc...))
	cancel()
	if err == nil {
		t.Fatal("the block rewriting history was committed")
	}
	for _, i := range followers {
		st := nodes[i].Ledger.Store()
		if h, _ := st.Head(); h.Hash() != heads[i] || st.TreeSize() != sizes[i] {
			t.Errorf("node %s applied something: size %d → %d", nw.Nodes[i].Name, sizes[i], st.TreeSize())
		}
		if r, err := st.TreeHash(size); err != nil || r != honestRoot {
			t.Errorf("node %s: tree %d now has root %x (%v)", nw.Nodes[i].Name, size, r, err)
		}
		if i == next {
			continue
		}
		if alarms := strings.Join(nodes[i].Ledger.Alarms(), "; "); !strings.Contains(alarms, "rewrites committed history") {
			t.Errorf("follower %s raised no alarm for the rewrite: %s", nw.Nodes[i].Name, alarms)
		}
	}
}

// inProcessNode is a node served by node.Run in the test process.
type inProcessNode struct {
	node.Running
	url      string
	logs     *lockedBuffer
	cancel   context.CancelFunc
	done     chan error
	stopOnce sync.Once
}

// stop stops the node and waits for it; later calls do nothing.
func (n *inProcessNode) stop() {
	n.stopOnce.Do(func() {
		n.cancel()
		<-n.done
	})
}

// startInProcess runs every node of nw in this process until the test ends.
func startInProcess(t *testing.T, nw *Network) []*inProcessNode {
	t.Helper()
	nodes := make([]*inProcessNode, len(nw.Nodes))
	for i, nd := range nw.Nodes {
		ctx, cancel := context.WithCancel(context.Background())
		n := &inProcessNode{url: nd.URL(), logs: &lockedBuffer{}, cancel: cancel, done: make(chan error, 1)}
		started := make(chan node.Running, 1)
		go func() {
			n.done <- node.Run(ctx, nd.Dir, node.RunOptions{
				Logger:  slog.New(slog.NewTextHandler(n.logs, nil)),
				Started: func(run node.Running) { started <- run },
			})
		}()
		select {
		case n.Running = <-started:
		case err := <-n.done:
			cancel()
			t.Fatalf("node %s: %v", nd.Name, err)
		case <-time.After(30 * time.Second):
			cancel()
			t.Fatalf("node %s did not start", nd.Name)
		}
		nodes[i] = n
		t.Cleanup(func() {
			n.stop()
			if t.Failed() {
				t.Logf("log of %s:\n%s", nd.Name, tail(n.logs.String(), 3000))
			}
		})
	}
	return nodes
}

// inProcessLeader waits for a leader among the nodes not in skip.
func inProcessLeader(t *testing.T, nodes []*inProcessNode, cl func(int) *client.Client, skip []int) int {
	t.Helper()
	lead := -1
	waitUntil(t, "a leader", 30*time.Second, func() bool {
		for i := range nodes {
			if slices.Contains(skip, i) {
				continue
			}
			if st, err := cl(i).Status(context.Background()); err == nil && st.IsLeader {
				lead = i
				return true
			}
		}
		return false
	})
	return lead
}

// waitUntil polls cond until it holds, failing the test after within.
func waitUntil(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runAudit runs `cunzheng audit --once --json` over urls and returns its
// exit code, its report and its whole output.
func runAudit(t *testing.T, genesis, stateDir string, urls []string) (int, *audit.Report, string) {
	t.Helper()
	args := []string{"audit", "--genesis", genesis, "--state", stateDir, "--once", "--json"}
	for _, u := range urls {
		args = append(args, "--node", u)
	}
	cmd := exec.Command(binPath, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	code := 0
	var ee *exec.ExitError
	if err := cmd.Run(); errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var rep audit.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("audit --json output: %v\n%s%s", err, out.String(), errb.String())
	}
	return code, &rep, out.String() + errb.String()
}

// readAuditState reads the state the audit command keeps in dir.
func readAuditState(t *testing.T, fp evidence.Fingerprint, dir string) *audit.State {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "audit.json"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := audit.ParseState(data, fp)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// memHashes is a tlog.HashReader over a tree held in memory.
type memHashes []tlog.Hash

func (m memHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		out[i] = m[x]
	}
	return out, nil
}

// treeRoot is the RFC 6962 root of a tree of leaves, computed here, apart
// from the store.
func treeRoot(leaves [][]byte) tlog.Hash {
	var hs memHashes
	for i, leaf := range leaves {
		stored, err := tlog.StoredHashes(int64(i), leaf, hs)
		if err != nil {
			panic(err)
		}
		hs = append(hs, stored...)
	}
	root, err := tlog.TreeHash(int64(len(leaves)), hs)
	if err != nil {
		panic(err)
	}
	return root
}
