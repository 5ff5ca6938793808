package testnet

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cunzheng/cunzheng/api/client"
	"github.com/cunzheng/cunzheng/evidence"
)

var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cunzheng-bin")
	if err != nil {
		panic(err)
	}
	binPath = filepath.Join(dir, "cunzheng")
	build := exec.Command("go", "build", "-o", binPath, "../cmd/cunzheng")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build cunzheng:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// network is a one-institution node directory and what tests need of it.
type network struct {
	dir    string
	fp     evidence.Fingerprint
	origin string
	admin  ed25519.PrivateKey
}

func initNetwork(t testing.TB, dir string) *network {
	t.Helper()
	out, err := exec.Command(binPath, "init", "--dir", dir, "--name", "court.example", "--role", "court").CombinedOutput()
	if err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	mf, err := os.ReadFile(filepath.Join(dir, "genesis.json"))
	if err != nil {
		t.Fatal(err)
	}
	m, fp, err := evidence.ParseManifestFile(mf)
	if err != nil {
		t.Fatal(err)
	}
	ak, err := os.ReadFile(filepath.Join(dir, "admin.key"))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := evidence.ParsePrivateKey(ak)
	if err != nil {
		t.Fatal(err)
	}
	return &network{dir: dir, fp: fp, origin: m.Origin, admin: admin}
}

// proc is a running node process.
type proc struct {
	cmd    *exec.Cmd
	url    string
	stderr *lockedBuffer
	done   chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startNode starts `cunzheng node` on a free loopback port and waits until
// it serves.
func startNode(t testing.TB, n *network, env ...string) *proc {
	t.Helper()
	cmd := exec.Command(binPath, "node", "--dir", n.dir, "--listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), env...)
	stdout, _ := cmd.StdoutPipe()
	p := &proc{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "serving "); ok {
				urlc <- u
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() { cmd.Wait(); close(p.done) }()
	select {
	case p.url = <-urlc:
	case <-p.done:
		t.Fatalf("node exited before serving:\n%s", p.stderr.String())
	case <-time.After(30 * time.Second):
		p.kill()
		t.Fatalf("node did not serve within 30s:\n%s", p.stderr.String())
	}
	t.Cleanup(p.kill)
	return p
}

// kill sends SIGKILL and waits for the process to go.
func (p *proc) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

func (p *proc) client(t testing.TB) *client.Client {
	c, err := client.New(p.url)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// registerSubmitter registers a fresh submitter key through a governance entry.
func registerSubmitter(t testing.TB, n *network, c *client.Client) ed25519.PrivateKey {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	g := &evidence.Governance{Action: evidence.ActionRegisterSubmitter, IssuedMS: uint64(time.Now().UnixMilli()),
		Subject: evidence.PublicKey{Alg: evidence.Ed25519, Key: pub}, Label: "load",
		Admin: evidence.Ed25519Signer{Key: n.admin}.Public()}
	if err := g.Sign(n.origin, evidence.Ed25519Signer{Key: n.admin}); err != nil {
		t.Fatal(err)
	}
	enc, _ := g.Marshal()
	if _, err := c.Governance(context.Background(), enc); err != nil {
		t.Fatalf("register submitter: %v", err)
	}
	return priv
}

// presign builds a signed Submission for the file contents.
func presign(t testing.TB, origin string, key ed25519.PrivateKey, file []byte) (sub []byte, digest [32]byte) {
	digest = sha256.Sum256(file)
	op := evidence.Opening{FileName: "evidence.bin"}
	op.DeriveSalt(key.Seed(), digest[:])
	c, _ := op.Commitment()
	s := &evidence.Submission{Digests: []evidence.Digest{{Alg: evidence.SHA256, Value: digest[:]}}, Kind: evidence.KindFile,
		Size: uint64(len(file)), Submitter: evidence.Ed25519Signer{Key: key}.Public(), Commitment: c}
	if err := s.Sign(origin, evidence.Ed25519Signer{Key: key}); err != nil {
		t.Fatal(err)
	}
	enc, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return enc, digest
}
