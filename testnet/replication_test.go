package testnet

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cunzheng/cunzheng/api"
	"github.com/cunzheng/cunzheng/api/client"
	"github.com/cunzheng/cunzheng/evidence"
	"github.com/cunzheng/cunzheng/evidence/verify"
)

// cluster is a local network of node processes that a test controls.
type cluster struct {
	mu    sync.Mutex // guards procs against the load generator's reads
	t     *testing.T
	nw    *Network
	procs []*proc
	fp    evidence.Fingerprint
	admin ed25519.PrivateKey
	env   map[int][]string // extra environment of node i's process (CUNZHENG_* config overrides)
}

func newCluster(t *testing.T, n int) *cluster {
	return newClusterEnv(t, n, nil)
}

// newClusterEnv is newCluster with extra environment for some nodes.
func newClusterEnv(t *testing.T, n int, env map[int][]string) *cluster {
	t.Helper()
	base, err := FreePortBase(20000+int(time.Now().UnixNano()%20000), n)
	if err != nil {
		t.Fatal(err)
	}
	nw, err := Create(binPath, t.TempDir(), n, base)
	if err != nil {
		t.Fatal(err)
	}
	fp, _ := evidence.ParseFingerprint(nw.Fingerprint)
	ak, _ := os.ReadFile(filepath.Join(nw.Nodes[0].Dir, "admin.key"))
	admin, _ := evidence.ParsePrivateKey(ak)
	c := &cluster{t: t, nw: nw, procs: make([]*proc, n), fp: fp, admin: admin, env: env}
	for i := range nw.Nodes {
		c.start(i)
	}
	return c
}

func (c *cluster) start(i int) {
	nd := c.nw.Nodes[i]
	c.mu.Lock()
	env := c.env[i]
	c.mu.Unlock()
	p := startNodeDir(c.t, nd.Dir, nd.API, env...)
	c.mu.Lock()
	c.procs[i] = p
	c.mu.Unlock()
}

// stop SIGKILLs node i.
func (c *cluster) stop(i int) {
	c.procs[i].kill()
	c.mu.Lock()
	c.procs[i] = nil
	c.mu.Unlock()
}

// alive reports whether node i runs; safe from any goroutine.
func (c *cluster) alive(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.procs[i] != nil
}

func (c *cluster) client(i int) *client.Client {
	cl, err := client.New("http://" + c.nw.Nodes[i].API)
	if err != nil {
		c.t.Fatal(err)
	}
	return cl
}

func (c *cluster) network() *network {
	return &network{dir: c.nw.Nodes[0].Dir, fp: c.fp, origin: c.nw.Origin, admin: c.admin}
}

// leader waits for a leader among the running nodes.
func (c *cluster) leader() int {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for i := range c.procs {
			if c.procs[i] == nil {
				continue
			}
			st, err := c.client(i).Status(context.Background())
			if err == nil && st.IsLeader {
				return i
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatal("no leader elected within 30s")
	return -1
}

// startNodeDir starts `cunzheng node` for a node directory on its
// configured ports.
func startNodeDir(t *testing.T, dir, api string, env ...string) *proc {
	t.Helper()
	cmd := exec.Command(binPath, "node", "--dir", dir, "--listen", api)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	p := &proc{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan struct{}), url: "http://" + api}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("log of %s:\n%s", dir, tail(p.stderr.String(), 3000))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		cl, _ := client.New(p.url)
		if _, err := cl.Status(context.Background()); err == nil {
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("node %s exited:\n%s", dir, p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s did not serve", dir)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// settledReceipt re-submits sub (a read, by dedup) until the node answers
// with the final receipt carrying the time service's token (or none, where
// the manifest in force has no time service): replicas apply
// the token entry each on its own schedule, and only then hand out the
// same bytes.
func settledReceipt(t *testing.T, cl *client.Client, sub []byte) *api.SubmitResponse {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := cl.Submit(context.Background(), sub)
		if err == nil && resp.Final && (resp.Timestamped || !timeServiceInForce(resp.Receipt)) {
			return resp
		}
		if time.Now().After(deadline) {
			t.Fatalf("no final timestamped receipt from %s within 30s: %+v, %v", cl.URL(), resp, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// timeServiceInForce reports whether the manifest version a receipt was
// issued under lists a time service (a network whose time service was
// removed issues final receipts without tokens).
func timeServiceInForce(receipt string) bool {
	rc, err := evidence.ParseReceipt([]byte(receipt))
	if err != nil {
		return true
	}
	chain, err := evidence.CheckManifestChain(rc.Network, rc.Manifests)
	if err != nil {
		return true
	}
	return len(chain[len(chain)-1].Manifest.TimeServices()) > 0
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestReplicatedNetwork: four institutions as processes; a submitter
// registered through a follower; submissions to every node; the same
// receipt from every node; the receipt verifies offline with the
// institutions' quorum signatures.
func TestReplicatedNetwork(t *testing.T) {
	c := newCluster(t, 4)
	lead := c.leader()
	follower := (lead + 1) % 4
	key := registerSubmitter(t, c.network(), c.client(follower))
	var receipts sync.Map
	for i := 0; i < 4; i++ {
		sub, d := presign(t, c.nw.Origin, key, fmt.Appendf(nil, "replicated evidence %d", i))
		resp, err := c.client(i).Submit(context.Background(), sub)
		if err != nil {
			t.Fatalf("submit to node %d: %v", i, err)
		}
		r := verify.Receipt([]byte(resp.Receipt), d[:], c.fp)
		if !r.OK() {
			t.Fatalf("receipt from node %d: %s", i, r.Reason)
		}
		if len(r.Signers) < 3 {
			t.Fatalf("final checkpoint signed by %v, want at least 3 institutions", r.Signers)
		}
		resp = settledReceipt(t, c.client(i), sub)
		receipts.Store(i, resp)
		// Every node hands out the same receipt for this record, once it
		// has applied the time service's token too.
		for j := 0; j < 4; j++ {
			again := settledReceipt(t, c.client(j), sub)
			if again.Receipt != resp.Receipt || !again.Existing {
				t.Fatalf("record %d from node %d: existing=%v same=%v err=%v", resp.Index, j, again != nil && again.Existing, again != nil && again.Receipt == resp.Receipt, err)
			}
		}
	}
}
