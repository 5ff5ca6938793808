package testnet

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cunzheng/cunzheng/api/client"
	"github.com/cunzheng/cunzheng/api/node"
	"github.com/cunzheng/cunzheng/chain"
	"github.com/cunzheng/cunzheng/evidence"
	"github.com/cunzheng/cunzheng/evidence/verify"
)

// TestForgedBlockFromLeaderRefused runs four real nodes in this process,
// talking over real libp2p connections, and has the leader propose a forged
// block (a root that does not match its leaves) straight into raft,
// bypassing its own sequencer, as a compromised institution could. The
// followers refuse to acknowledge it, so it never commits and no replica
// applies it; each raises an alarm and keeps running; once the faulty
// leader is taken out, the others elect a new one and go on preserving.
func TestForgedBlockFromLeaderRefused(t *testing.T) {
	base, err := FreePortBase(20000+int(time.Now().UnixNano()%20000), 4)
	if err != nil {
		t.Fatal(err)
	}
	nw, err := Create(binPath, t.TempDir(), 4, base)
	if err != nil {
		t.Fatal(err)
	}
	fp, _ := evidence.ParseFingerprint(nw.Fingerprint)
	type running struct {
		node.Running
		cancel context.CancelFunc
		done   chan error
		logs   *lockedBuffer
		url    string
	}
	nodes := make([]*running, len(nw.Nodes))
	for i, nd := range nw.Nodes {
		ctx, cancel := context.WithCancel(context.Background())
		r := &running{cancel: cancel, done: make(chan error, 1), logs: &lockedBuffer{}, url: nd.URL()}
		started := make(chan node.Running, 1)
		go func() {
			r.done <- node.Run(ctx, nd.Dir, node.RunOptions{
				Logger:  slog.New(slog.NewTextHandler(r.logs, nil)),
				Started: func(run node.Running) { started <- run },
			})
		}()
		select {
		case r.Running = <-started:
		case err := <-r.done:
			t.Fatalf("node %s: %v", nd.Name, err)
		case <-time.After(30 * time.Second):
			t.Fatalf("node %s did not start", nd.Name)
		}
		nodes[i] = r
		t.Cleanup(func() {
			cancel()
			<-r.done
			if t.Failed() {
				t.Logf("log of %s:\n%s", nd.Name, tail(r.logs.String(), 3000))
			}
		})
	}
	cl := func(i int) *client.Client {
		c, _ := client.New(nodes[i].url)
		return c
	}
	leader := func(skip int) int {
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			for i := range nodes {
				if i == skip {
					continue
				}
				if st, err := cl(i).Status(context.Background()); err == nil && st.IsLeader {
					return i
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatal("no leader")
		return -1
	}
	lead := leader(-1)
	ak, _ := os.ReadFile(filepath.Join(nw.Nodes[0].Dir, "admin.key"))
	admin, err := evidence.ParsePrivateKey(ak)
	if err != nil {
		t.Fatal(err)
	}
	netw := &network{dir: nw.Nodes[0].Dir, fp: fp, origin: nw.Origin, admin: admin}
	key := registerSubmitter(t, netw, cl(lead))
	sub, d := presign(t, nw.Origin, key, []byte("before the forgery"))
	if _, err := cl(lead).Submit(context.Background(), sub); err != nil {
		t.Fatal(err)
	}

	// The forged block: a real, signed submission, but the header's root
	// does not match the leaf.
	st := nodes[lead].Ledger.Store()
	head, _ := st.Head()
	fsub, _ := presign(t, nw.Origin, key, []byte("forged"))
	ps, _ := evidence.ParseSubmission(fsub)
	leaf, _ := evidence.EvidenceLeaf(ps, fsub, uint64(time.Now().UnixMilli()), head.Height+1).Marshal()
	b := &chain.Block{Header: chain.BlockHeader{Origin: nw.Origin, Height: head.Height + 1, Prev: head.Hash(),
		FirstIndex: head.TreeSize, Count: 1, TreeSize: head.TreeSize + 1, Root: sha256.Sum256([]byte("not the root")),
		TimeMS: uint64(time.Now().UnixMilli())}, Leaves: [][]byte{leaf}, Sidecars: [][]byte{fsub}}
	enc, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[int]uint64{}
	for i := range nodes {
		sizes[i] = nodes[i].Ledger.Store().TreeSize()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	err = nodes[lead].Orderer.Propose(ctx, append([]byte{1}, enc...))
	cancel()
	if err == nil {
		t.Fatal("the forged block was committed")
	}
	for i := range nodes {
		if got := nodes[i].Ledger.Store().TreeSize(); got != sizes[i] {
			t.Fatalf("node %d applied the forged block: size %d → %d", i, sizes[i], got)
		}
		if i == lead {
			continue
		}
		if !strings.Contains(strings.Join(nodes[i].Ledger.Alarms(), ";"), "root does not match") {
			t.Fatalf("follower %d raised no alarm: %v", i, nodes[i].Ledger.Alarms())
		}
	}
	// The faulty institution is taken out; the others carry on.
	nodes[lead].cancel()
	<-nodes[lead].done
	nodes[lead].done <- nil // for the cleanup
	next := leader(lead)
	sub2, d2 := presign(t, nw.Origin, key, []byte("after the forgery"))
	resp, err := cl(next).Submit(context.Background(), sub2)
	if err != nil {
		t.Fatalf("the network did not recover: %v", err)
	}
	if r := verify.Receipt([]byte(resp.Receipt), d2[:], fp); !r.OK() {
		t.Fatalf("receipt after recovery: %s", r.Reason)
	}
	if lr, err := cl(next).Lookup(context.Background(), d[:]); err != nil || len(lr.Records) != 1 {
		t.Fatalf("record before the forgery: %v", err)
	}
}
