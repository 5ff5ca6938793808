package testnet

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cunzheng/cunzheng/evidence"
	"github.com/cunzheng/cunzheng/evidence/verify"
)

// TestMemberRemoveAndAdd: four institutions as processes; one follower's
// directory is wiped; `cunzheng member remove` takes it out of the
// manifest; a freshly initialised node (new raft ID, keys and name) is
// added with `cunzheng member add` and started with the chain file it
// wrote. It catches up from genesis (snapshot and block sync), co-signs
// checkpoints, and receipts from after the change verify offline against
// the genesis fingerprint, as does one from before. Re-adding the wiped
// node's raft ID is refused, by the CLI and by the network.
func TestMemberRemoveAndAdd(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	c := newCluster(t, 4)
	lead := c.leader()
	key := registerSubmitter(t, c.network(), c.client(lead))
	submit := func(node int, what string) (string, [32]byte) {
		t.Helper()
		sub, d := presign(t, c.nw.Origin, key, []byte(what))
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := c.client(node).Submit(ctx, sub); err != nil {
			t.Fatalf("submit %q to node %d: %v", what, node, err)
		}
		return settledReceipt(t, c.client(node), sub).Receipt, d
	}
	beforeReceipt, beforeDigest := submit(lead, "before the membership change")
	if r := verify.Receipt([]byte(beforeReceipt), beforeDigest[:], c.fp); !r.OK() {
		t.Fatalf("receipt before the change: %s", r.Reason)
	}

	// Wipe a follower (never node 0, whose admin key registered the
	// submitter; it does not matter, but keeps the roles simple).
	victim := 3
	if victim == lead {
		victim = 2
	}
	old := c.nw.Nodes[victim]
	oldDesc := readDescriptor(t, filepath.Join(old.Dir, "descriptor.json"))
	var admins []string
	var alive []int
	for i, nd := range c.nw.Nodes {
		if i != victim {
			admins = append(admins, "--admin-key", filepath.Join(nd.Dir, "admin.key"))
			alive = append(alive, i)
		}
	}
	c.procs[victim].kill()
	c.procs[victim] = nil
	if err := os.RemoveAll(old.Dir); err != nil {
		t.Fatal(err)
	}

	work := t.TempDir()
	run := func(args ...string) (string, error) {
		out, err := exec.Command(binPath, args...).CombinedOutput()
		return string(out), err
	}
	out, err := run(append([]string{"member", "remove", "--node", c.nw.Nodes[lead].URL(), "--genesis", c.fp.String(),
		"--name", old.Name, "-o", filepath.Join(work, "chain-v2.json")}, admins...)...)
	if err != nil {
		t.Fatalf("member remove: %v\n%s", err, out)
	}
	t.Logf("member remove:\n%s", out)
	during, duringDigest := submit(alive[0], "with three members")

	// A new institution node: new directory, new raft ID, new name.
	base, err := FreePortBase(40000+int(time.Now().UnixNano()%10000), 1)
	if err != nil {
		t.Fatal(err)
	}
	nd := &Node{Name: "court9.example", Role: "court", Dir: filepath.Join(c.nw.Dir, "court9.example"),
		API: fmt.Sprintf("127.0.0.1:%d", base), P2P: fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", base+100)}
	if out, err := run("init", "--dir", nd.Dir, "--name", nd.Name, "--role", nd.Role, "--origin", c.nw.Origin,
		"--listen", nd.API, "--p2p-listen", nd.P2P); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	copyGenesis(t, c.nw.Dir, nd.Dir)
	chainFile := filepath.Join(nd.Dir, "manifest-chain.json")
	out, err = run(append([]string{"member", "add", "--node", c.nw.Nodes[alive[1]].URL(), "--genesis", c.fp.String(),
		"-o", chainFile, filepath.Join(nd.Dir, "descriptor.json")}, admins...)...)
	if err != nil {
		t.Fatalf("member add: %v\n%s", err, out)
	}
	t.Logf("member add:\n%s", out)
	setConf(t, nd.Dir, "manifest_chain", "manifest-chain.json")
	c.nw.Nodes = append(c.nw.Nodes, nd)
	c.procs = append(c.procs, startNodeDir(t, nd.Dir, nd.API))
	added := len(c.procs) - 1

	// The new member catches up and co-signs: keep preserving records
	// until a final checkpoint carries its signature.
	var afterReceipt string
	var afterDigest [32]byte
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; ; i++ {
		afterReceipt, afterDigest = submit(alive[i%len(alive)], fmt.Sprintf("after the change %d", i))
		r := verify.Receipt([]byte(afterReceipt), afterDigest[:], c.fp)
		if !r.OK() {
			t.Fatalf("receipt after the change: %s", r.Reason)
		}
		if slices.Contains(r.Signers, nd.Name) {
			rc, _ := evidence.ParseReceipt([]byte(afterReceipt))
			if len(rc.Manifests) != 3 || r.Manifest.Sequence != 3 {
				t.Fatalf("receipt carries %d manifest versions (in force: %d), want 3", len(rc.Manifests), r.Manifest.Sequence)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no final checkpoint signed by %s within 60s; last signers %v", nd.Name, r.Signers)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The new node serves the records from before it existed: the same
	// receipts, which verify against the genesis pin.
	for _, rec := range []struct {
		receipt string
		digest  [32]byte
		what    string
	}{{beforeReceipt, beforeDigest, "before the membership change"}, {during, duringDigest, "with three members"}} {
		if r := verify.Receipt([]byte(rec.receipt), rec.digest[:], c.fp); !r.OK() {
			t.Fatalf("receipt %q: %s", rec.what, r.Reason)
		}
		sub, _ := presign(t, c.nw.Origin, key, []byte(rec.what))
		resp := settledReceipt(t, c.client(added), sub)
		if !resp.Existing || resp.Receipt != rec.receipt {
			t.Fatalf("record %q from the new node: existing=%v same=%v", rec.what, resp.Existing, resp.Receipt == rec.receipt)
		}
	}

	if log := c.procs[added].stderr.String(); !strings.Contains(log, "msg=synced") {
		t.Errorf("the new member did not catch up by block sync; its log:\n%s", tail(log, 3000))
	}

	// The wiped node's raft ID never comes back, even with new keys.
	retry := filepath.Join(work, "court10")
	if out, err := run("init", "--dir", retry, "--name", "court10.example", "--role", "court", "--origin", c.nw.Origin); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	desc := readDescriptor(t, filepath.Join(retry, "descriptor.json"))
	desc.RaftID = oldDesc.RaftID
	reused, _ := evidence.MarshalDescriptor(desc)
	os.WriteFile(filepath.Join(retry, "descriptor.json"), reused, 0o644)
	out, err = run(append([]string{"member", "add", "--node", c.nw.Nodes[lead].URL(), "-o", filepath.Join(work, "x.json"),
		filepath.Join(retry, "descriptor.json")}, admins...)...)
	if err == nil || !strings.Contains(out, "reuses") {
		t.Fatalf("member add with the old raft ID: err=%v\n%s", err, out)
	}
	// The network refuses it too, not only the CLI.
	entry := manualUpdate(t, c, *desc, append(admins, "--admin-key", filepath.Join(nd.Dir, "admin.key")))
	if _, err := c.client(lead).Governance(context.Background(), entry); err == nil || !strings.Contains(err.Error(), "reuses") {
		t.Fatalf("network accepted a manifest update re-adding raft ID %d: %v", desc.RaftID, err)
	}
}

func readDescriptor(t *testing.T, path string) *evidence.Member {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := evidence.ParseDescriptor(data)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func copyGenesis(t *testing.T, netDir, nodeDir string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(netDir, "genesis.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(nodeDir, "genesis.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// setConf sets an empty key of node.conf.
func setConf(t *testing.T, dir, key, value string) {
	t.Helper()
	path := filepath.Join(dir, "node.conf")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(data), "\n"+key+" =\n", "\n"+key+" = "+value+"\n", 1)
	if s == string(data) {
		t.Fatalf("node.conf has no empty %s line", key)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// manualUpdate builds a manifest update adding mem to the manifest in
// force, approved by every admin key given, without the CLI's own check.
func manualUpdate(t *testing.T, c *cluster, mem evidence.Member, adminFlags []string) []byte {
	t.Helper()
	data, err := c.client(c.leader()).ManifestChain(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	chain, err := evidence.ParseChainFile(data, c.fp)
	if err != nil {
		t.Fatal(err)
	}
	prev := chain[len(chain)-1].Manifest
	next := *prev
	next.Members = append(slices.Clone(prev.Members), mem)
	fp, _ := prev.Fingerprint()
	next.Sequence, next.Previous, next.Threshold = prev.Sequence+1, fp[:], evidence.DefaultThreshold(next.Members)
	enc, err := next.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	g := &evidence.Governance{Action: evidence.ActionManifestUpdate, Manifest: enc}
	for i := 1; i < len(adminFlags); i += 2 {
		k, err := os.ReadFile(adminFlags[i])
		if err != nil {
			t.Fatal(err)
		}
		priv, err := evidence.ParsePrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Approve(prev.Origin, fp, evidence.Ed25519Signer{Key: priv}); err != nil {
			t.Fatal(err)
		}
	}
	entry, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return entry
}
