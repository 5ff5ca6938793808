package testnet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/cunzheng/cunzheng/chain/checkpoint"
)

// TestAudit runs `cunzheng audit` against a real four-node network and a
// fake node impersonating one of them: clean rounds pass and prove growth
// from the stored state; the fake showing an older checkpoint (rollback), a
// forged signature, or a second tree of the same size validly signed by a
// quorum (split view) makes the audit fail naming the fake.
func TestAudit(t *testing.T) {
	c := newCluster(t, 4)
	lead := c.leader()
	key := registerSubmitter(t, c.network(), c.client(lead))
	submit := func(from, n int) {
		for i := from; i < from+n; i++ {
			sub, _ := presign(t, c.nw.Origin, key, fmt.Appendf(nil, "audited evidence %d", i))
			if _, err := c.client(i%4).Submit(context.Background(), sub); err != nil {
				t.Fatalf("submit %d: %v", i, err)
			}
		}
	}
	// converge waits until every node shows the same checkpoint and returns it.
	converge := func() []byte {
		deadline := time.Now().Add(20 * time.Second)
		for {
			first, err := c.client(0).Checkpoint(context.Background())
			same := err == nil
			for i := 1; i < 4 && same; i++ {
				cp, err := c.client(i).Checkpoint(context.Background())
				same = err == nil && bytes.Equal(firstLines(cp), firstLines(first))
			}
			if same {
				return first
			}
			if time.Now().After(deadline) {
				t.Fatal("nodes did not converge on one checkpoint within 20s")
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// The fake node proxies everything to node 0 but may serve its own checkpoint.
	var override atomic.Pointer[[]byte]
	target, _ := url.Parse(c.nw.Nodes[0].URL())
	proxy := httputil.NewSingleHostReverseProxy(target)
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cp := override.Load(); cp != nil && r.URL.Path == "/checkpoint" {
			w.Write(*cp)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer fake.Close()

	stateDir := filepath.Join(t.TempDir(), "audit")
	audit := func(extra ...string) (int, string) {
		t.Helper()
		args := []string{"audit", "--genesis", c.fp.String(), "--state", stateDir, "--once"}
		for _, nd := range c.nw.Nodes {
			args = append(args, "--node", nd.URL())
		}
		args = append(args, extra...)
		cmd := exec.Command(binPath, args...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, out.String() + errb.String()
	}

	if code, out := audit("--genesis", ""); code != 2 {
		t.Fatalf("audit without a genesis: exit %d, want 2\n%s", code, out)
	}

	submit(0, 3)
	cp1 := converge()
	if code, out := audit(); code != 0 || !strings.Contains(out, "CONSISTENT") {
		t.Fatalf("first audit: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(stateDir, "audit.json")); err != nil {
		t.Fatalf("no state written: %v", err)
	}

	submit(3, 2)
	cp2 := converge()
	code, out := audit("--node", fake.URL)
	if code != 0 || strings.Count(out, "consistency proved") != 4 {
		t.Fatalf("second audit: exit %d, want 0 with growth of all four nodes proved\n%s", code, out)
	}

	// Rollback: the fake, which showed the latest tree, now shows an older
	// one, validly signed.
	override.Store(&cp1)
	code, out = audit("--node", fake.URL)
	if code != 1 || !strings.Contains(out, "ROLLBACK") || !strings.Contains(out, fake.URL) {
		t.Fatalf("rollback: exit %d, want 1 naming %s\n%s", code, fake.URL, out)
	}

	// A forged signature on the latest checkpoint.
	forged := flipLastSignature(t, cp2)
	override.Store(&forged)
	code, out = audit("--node", fake.URL)
	if code != 1 || !strings.Contains(out, "bad_checkpoint") || !strings.Contains(out, fake.URL) {
		t.Fatalf("forged signature: exit %d, want 1 naming %s\n%s", code, fake.URL, out)
	}

	// Split view: a second tree of the same size, signed by a quorum of the
	// institutions' own keys.
	fin := mustOpen(t, c.network(), cp2)
	other := checkpoint.Checkpoint{Origin: fin.Origin, Size: fin.Size, Root: sha256.Sum256([]byte("another history"))}
	var signers []note.Signer
	for _, nd := range c.nw.Nodes[:3] {
		skey, err := os.ReadFile(filepath.Join(nd.Dir, "note.key"))
		if err != nil {
			t.Fatal(err)
		}
		s, err := note.NewSigner(strings.TrimSpace(string(skey)))
		if err != nil {
			t.Fatal(err)
		}
		signers = append(signers, s)
	}
	split, err := checkpoint.Sign(other, signers...)
	if err != nil {
		t.Fatal(err)
	}
	override.Store(&split)
	code, out = audit("--node", fake.URL, "--json")
	if code != 1 {
		t.Fatalf("split view: exit %d, want 1\n%s", code, out)
	}
	var rep struct {
		Findings []struct {
			Kind  string   `json:"kind"`
			Nodes []string `json:"nodes"`
		} `json:"findings"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	found := false
	for _, f := range rep.Findings {
		if f.Kind == "split_view" && strings.Contains(strings.Join(f.Nodes, " "), fake.URL) && len(f.Nodes) > 1 {
			found = true
		}
	}
	if !found {
		t.Fatalf("split view not reported naming %s and the honest nodes:\n%s", fake.URL, out)
	}

	// The honest nodes alone are still consistent.
	if code, out := audit(); code != 0 {
		t.Fatalf("honest nodes after the attacks: exit %d\n%s", code, out)
	}
}

// firstLines is a checkpoint's body, without the signatures, which may
// differ between nodes.
func firstLines(cp []byte) []byte {
	body, _, _ := bytes.Cut(cp, []byte("\n\n"))
	return body
}

// flipLastSignature flips one bit of the last signature of a signed note,
// past the key hash, so the signature stays attributed to its key but no
// longer verifies.
func flipLastSignature(t *testing.T, signed []byte) []byte {
	t.Helper()
	s := strings.TrimSuffix(string(signed), "\n")
	i := strings.LastIndex(s, " ") + 1
	sig, err := base64.StdEncoding.DecodeString(s[i:])
	if err != nil {
		t.Fatal(err)
	}
	sig[10] ^= 1
	return []byte(s[:i] + base64.StdEncoding.EncodeToString(sig) + "\n")
}
