package testnet

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/torchwood"
	"golang.org/x/crypto/ssh"
	"golang.org/x/mod/sumdb/note"

	"github.com/cunzheng/cunzheng/chain/checkpoint"
	"github.com/cunzheng/cunzheng/evidence"
	"github.com/cunzheng/cunzheng/evidence/verify"
)

// The witness tests run cunzheng against an independent C2SP tlog-witness
// implementation: litewitness of filippo.io/torchwood v0.6.1 (a tool of
// this module, see go.mod), a real process on loopback whose key lives in
// a real ssh-agent, as litewitness requires.

const liteName = "witness.example/lite"

// torchwoodTools builds litewitness and witnessctl once per test.
func torchwoodTools(t *testing.T) (litewitness, witnessctl string) {
	t.Helper()
	for _, tool := range []string{"ssh-agent", "ssh-add"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (Debian package openssh-client; .ci/run installs it)", tool)
		}
	}
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir, "filippo.io/torchwood/cmd/litewitness", "filippo.io/torchwood/cmd/witnessctl")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build torchwood tools: %v\n%s", err, out)
	}
	return filepath.Join(dir, "litewitness"), filepath.Join(dir, "witnessctl")
}

// liteWitness is a litewitness process with its database and ssh-agent.
type liteWitness struct {
	t                *testing.T
	bin, ctl, db     string
	sock, addr, hash string
	priv             ed25519.PrivateKey
	proc             *proc
}

func newLiteWitness(t *testing.T) *liteWitness {
	lw, ctl := torchwoodTools(t)
	// A unix socket path must stay short: not under t.TempDir().
	sockDir, err := os.MkdirTemp("", "lw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	w := &liteWitness{t: t, bin: lw, ctl: ctl, db: filepath.Join(t.TempDir(), "litewitness.db"),
		sock: filepath.Join(sockDir, "s"), addr: freeAddr(t)}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	w.priv = priv
	sum := sha256.Sum256(pub)
	w.hash = hex.EncodeToString(sum[:])
	agent := exec.Command("ssh-agent", "-D", "-a", w.sock)
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	agentDone := make(chan struct{})
	go func() { agent.Wait(); close(agentDone) }()
	t.Cleanup(func() { agent.Process.Kill(); <-agentDone })
	waitFor(t, "ssh-agent socket", func() bool { _, err := os.Stat(w.sock); return err == nil })
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "witness.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	add := exec.Command("ssh-add", keyFile)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+w.sock)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v\n%s", err, out)
	}
	return w
}

// vkey is the witness's cosignature/v1 key, as chain/checkpoint derives it.
func (w *liteWitness) vkey() string {
	s, err := checkpoint.NewCosignatureSigner(liteName, w.priv, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	return s.Verifier().String()
}

func (w *liteWitness) ctlRun(args ...string) {
	w.t.Helper()
	if out, err := exec.Command(w.ctl, append(args, "-db", w.db)...).CombinedOutput(); err != nil {
		w.t.Fatalf("witnessctl %v: %v\n%s", args, err, out)
	}
}

func (w *liteWitness) start() {
	w.t.Helper()
	cmd := exec.Command(w.bin, "-db", w.db, "-name", liteName, "-key", w.hash, "-ssh-agent", w.sock, "-listen", w.addr)
	p := &proc{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan struct{}), url: "http://" + w.addr}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	go func() { cmd.Wait(); close(p.done) }()
	w.t.Cleanup(func() {
		p.kill()
		if w.t.Failed() {
			w.t.Logf("litewitness log:\n%s", tail(p.stderr.String(), 3000))
		}
	})
	w.proc = p
	waitFor(w.t, "litewitness listening", func() bool {
		select {
		case <-p.done:
			w.t.Fatalf("litewitness exited:\n%s", p.stderr.String())
		default:
		}
		c, err := net.Dial("tcp", w.addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLitewitnessCosignsFinalCheckpoints: a three-institution network
// whose manifest requires litewitness and lists a second, optional
// witness that never answers. Final checkpoints carry litewitness's
// cosignature (checked by the offline verifier and by torchwood), never
// the dead witness's; with litewitness down nothing becomes final, and
// finality resumes when it returns.
func TestLitewitnessCosignsFinalCheckpoints(t *testing.T) {
	lw := newLiteWitness(t)
	dead, _ := checkpoint.GenerateCosignatureKey("dead.witness.example", rand.Reader)
	base, err := FreePortBase(20000+int(time.Now().UnixNano()%20000), 3)
	if err != nil {
		t.Fatal(err)
	}
	members := make([]Member, 3)
	for i := range members {
		name, role := institution(i)
		members[i] = Member{Name: name, Role: role, API: "127.0.0.1:" + strconv.Itoa(base+i), P2P: "/ip4/127.0.0.1/tcp/" + strconv.Itoa(base+100+i)}
	}
	origin := "evidence.witnessed.example/v1"
	nw, err := CreateMembers(binPath, t.TempDir(), origin, members,
		"--witness", lw.vkey()+"=http://"+lw.addr+",required",
		"--witness", dead.Verifier().String()+"=http://"+freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	// litewitness learns the log: its origin and the institutions' keys.
	lw.ctlRun("add-log", "-origin", origin)
	for _, nd := range nw.Nodes {
		k, err := os.ReadFile(filepath.Join(nd.Dir, "note.pub"))
		if err != nil {
			t.Fatal(err)
		}
		lw.ctlRun("add-key", "-origin", origin, "-key", strings.TrimSpace(string(k)))
	}
	lw.start()

	fp, _ := evidence.ParseFingerprint(nw.Fingerprint)
	ak, _ := os.ReadFile(filepath.Join(nw.Nodes[0].Dir, "admin.key"))
	admin, _ := evidence.ParsePrivateKey(ak)
	c := &cluster{t: t, nw: nw, procs: make([]*proc, len(nw.Nodes)), fp: fp, admin: admin}
	for i := range nw.Nodes {
		c.start(i)
	}
	leader := c.leader()
	cl := c.client(leader)
	key := registerSubmitter(t, c.network(), cl)
	ctx := context.Background()

	checkReceipt := func(receipt []byte, file []byte) {
		t.Helper()
		digest := sha256.Sum256(file)
		r := verify.Receipt(receipt, digest[:], fp)
		if !r.OK() {
			t.Fatalf("receipt: %s", r.Reason)
		}
		if !slices.Equal(r.Witnesses, []string{liteName}) {
			t.Errorf("verifier reports witnesses %v, want [%s]", r.Witnesses, liteName)
		}
		var detail string
		for _, c := range r.Checks {
			if c.Name == verify.CheckCheckpoint {
				detail = c.Detail
			}
		}
		if !strings.Contains(detail, "witnesses cosigned: ["+liteName+"]") {
			t.Errorf("checkpoint detail %q does not name the witness", detail)
		}
		// torchwood's own verifier accepts the cosignature in the receipt.
		rc, err := evidence.ParseReceipt(receipt)
		if err != nil {
			t.Fatal(err)
		}
		p, err := checkpoint.ParseProof(rc.Proof)
		if err != nil {
			t.Fatal(err)
		}
		tw, err := torchwood.NewCosignatureSigner(liteName, lw.priv)
		if err != nil {
			t.Fatal(err)
		}
		n, err := note.Open(p.Checkpoint, note.VerifierList(tw.Verifier()))
		if err != nil || len(n.Sigs) != 1 {
			t.Fatalf("torchwood's CosignatureVerifier on the final checkpoint: %v", err)
		}
		if ts, err := torchwood.CosignatureTimestamp(n.Sigs[0]); err != nil || time.Since(time.Unix(ts, 0)).Abs() > time.Minute {
			t.Errorf("cosignature time %d, %v", ts, err)
		}
	}

	file1 := []byte("witnessed evidence 1")
	sub1, _ := presign(t, origin, key, file1)
	resp, err := cl.Submit(ctx, sub1)
	if err != nil || !resp.Final {
		t.Fatalf("submit with litewitness up: %v (final receipt: %v)", err, resp != nil && resp.Final)
	}
	checkReceipt([]byte(resp.Receipt), file1)
	final1 := checkpointSize(t, cl.Checkpoint)

	// litewitness down: the record is committed but nothing is final
	// (the node answers with a committed receipt once its deadline passes).
	lw.proc.kill()
	file2 := []byte("witnessed evidence 2")
	sub2, _ := presign(t, origin, key, file2)
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	resp, err = cl.Submit(sctx, sub2)
	cancel()
	if err == nil && resp.Final {
		t.Fatal("a checkpoint became final while its required witness was down")
	}
	if got := checkpointSize(t, cl.Checkpoint); got != final1 {
		t.Fatalf("final checkpoint moved from %d to %d without the required witness", final1, got)
	}

	// litewitness back on its database: finality resumes by itself.
	lw.start()
	deadline := time.Now().Add(30 * time.Second)
	for {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err = cl.Submit(sctx, sub2)
		cancel()
		if err == nil && resp.Final {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not final 30s after the witness returned: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	checkReceipt([]byte(resp.Receipt), file2)
	if got := checkpointSize(t, cl.Checkpoint); got <= final1 {
		t.Fatalf("final checkpoint %d, want beyond %d", got, final1)
	}
}

func checkpointSize(t *testing.T, get func(context.Context) ([]byte, error)) int64 {
	t.Helper()
	cp, err := get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitN(string(cp), "\n", 3)
	n, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		t.Fatalf("checkpoint %q: %v", cp, err)
	}
	return n
}

// TestNodeWitnessReplaysTorchwoodVectors: a cunzheng node configured to
// witness the Sigsum log of torchwood's litewitness test script answers
// that script's add-checkpoint requests — bodies written by another
// implementation — as the spec says (torchwood answers 403 for an unknown
// origin where the spec, and cunzheng, say 404), and its cosignature
// verifies with its published key.
func TestNodeWitnessReplaysTorchwoodVectors(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "filippo.io/torchwood").Output()
	if err != nil {
		t.Fatalf("locate torchwood: %v", err)
	}
	script, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "cmd/litewitness/testdata/litewitness.txt"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?s)POST http://localhost:7380/add-checkpoint\n```\n(.*?)```\nHTTP (\\d+)\n\\[Asserts\\]\n(body == \"(\\d+)\\\\n\")?")
	reqs := re.FindAllStringSubmatch(string(script), -1)
	if len(reqs) != 9 {
		t.Fatalf("found %d requests in torchwood's script, want 9", len(reqs))
	}
	logKey, _ := hex.DecodeString("ffdc2d4d98e4124d3feaf788c0c2f9abfd796083d1f0495437f302ec79cf100f")
	keyHash := sha256.Sum256(logKey)
	logOrigin := "sigsum.org/v1/tree/" + hex.EncodeToString(keyHash[:])
	vkey, err := note.NewEd25519VerifierKey(logOrigin, logKey)
	if err != nil {
		t.Fatal(err)
	}
	n := initNetwork(t, t.TempDir())
	list := filepath.Join(n.dir, "witness-logs.txt")
	if err := os.WriteFile(list, []byte("# torchwood's test log\nlog "+logOrigin+"\nkey "+vkey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startNode(t, n, "CUNZHENG_WITNESS_LOGS="+list)
	pubText, _ := os.ReadFile(filepath.Join(n.dir, "witness.pub"))
	wv, err := checkpoint.NewCosignatureVerifier(strings.TrimSpace(string(pubText)))
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range reqs {
		body, want := r[1], r[2]
		if i == 2 {
			want = "404" // unknown origin
		}
		resp, err := http.Post(p.url+"/add-checkpoint", "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strconv.Itoa(resp.StatusCode) != want {
			t.Fatalf("request %d: %d %q, want %s", i+1, resp.StatusCode, answer, want)
		}
		if want == "409" && (reqs[i][4] == "" || string(answer) != reqs[i][4]+"\n") {
			t.Fatalf("request %d: 409 body %q, want %q", i+1, answer, reqs[i][4]+"\n")
		}
		if want == "200" {
			_, signed, _ := strings.Cut(body, "\n\n")
			nt, err := note.Open(append([]byte(signed), answer...), note.VerifierList(wv))
			if err != nil || len(nt.Sigs) != 1 {
				t.Fatalf("request %d: cosignature %q does not verify: %v", i+1, answer, err)
			}
		}
	}
	// The witness now holds size 5 and says so, in the spec's form.
	first := reqs[0][1]
	resp, err := http.Post(p.url+"/add-checkpoint", "text/plain", strings.NewReader(first))
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 409 || string(answer) != "5\n" || resp.Header.Get("Content-Type") != "text/x.tlog.size" {
		t.Fatalf("stale request: %d %q %q, want 409 \"5\\n\" text/x.tlog.size", resp.StatusCode, answer, resp.Header.Get("Content-Type"))
	}
	// A node not configured as a witness has no such endpoint.
	m := initNetwork(t, t.TempDir())
	q := startNode(t, m)
	resp, err = http.Post(q.url+"/add-checkpoint", "text/plain", strings.NewReader(first))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("node without witness_logs: %d, want 404", resp.StatusCode)
	}
}
