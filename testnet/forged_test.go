package testnet

import (
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cunzheng/cunzheng/api/client"
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
	nodes := startInProcess(t, nw)
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
	nodes[lead].stop()
	next := inProcessLeader(t, nodes, cl, []int{lead})
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
