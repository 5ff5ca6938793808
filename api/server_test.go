package api_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/cunzheng/cunzheng/api"
	"github.com/cunzheng/cunzheng/chain/store"
	"github.com/cunzheng/cunzheng/evidence"
	"github.com/cunzheng/cunzheng/evidence/ledger"
	"github.com/cunzheng/cunzheng/evidence/verify"
)

// testNode is a real node (Pebble on disk, ledger, HTTP server) in-process.
type testNode struct {
	t       testing.TB
	srv     *httptest.Server
	l       *ledger.Ledger
	st      *store.Store
	m       *evidence.Manifest
	fp      evidence.Fingerprint
	admin   ed25519.PrivateKey
	origin  string
	token   string
	lowDisk bool
}

func newTestNode(t testing.TB) *testNode {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "court.example")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	adminPub, adminPriv, _ := ed25519.GenerateKey(rand.Reader)
	m := &evidence.Manifest{Origin: "court.example/log", Sequence: 1, Threshold: 1, CreatedAt: 1,
		Members: []evidence.Member{{Name: "court.example", Role: evidence.RoleCourt, RaftID: 1, NoteKey: vkey, AdminKey: adminPub}}}
	genesis, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	mf, _ := evidence.MarshalManifestFile(m)
	fp, _ := m.Fingerprint()
	st, err := store.Open(filepath.Join(t.TempDir(), "data"), fp, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := &testNode{t: t, st: st, m: m, fp: fp, admin: adminPriv, origin: m.Origin, token: "secret-token"}
	l, err := ledger.Open(ledger.Config{Store: st, Genesis: genesis, Signer: signer, SpaceCheck: func() error {
		if n.lowDisk {
			return fmt.Errorf("%w: test", ledger.ErrInsufficientDisk)
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	n.l = l
	n.srv = httptest.NewServer(api.NewServer(api.Config{Ledger: l, Node: "court.example", Role: "court", Token: n.token, Manifest: mf}))
	t.Cleanup(func() {
		n.srv.Close()
		l.Close()
		st.Close()
	})
	return n
}

func (n *testNode) do(method, path string, body any) (int, []byte) {
	n.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		enc, _ := json.Marshal(b)
		r = bytes.NewReader(enc)
	}
	req, _ := http.NewRequest(method, n.srv.URL+path, r)
	if r != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func (n *testNode) governance(action evidence.Action, subject ed25519.PublicKey, admin ed25519.PrivateKey) (int, []byte) {
	g := &evidence.Governance{Action: action, IssuedMS: uint64(time.Now().UnixMilli()),
		Subject: evidence.PublicKey{Alg: evidence.Ed25519, Key: subject}, Label: "alice",
		Admin: evidence.Ed25519Signer{Key: admin}.Public()}
	if err := g.Sign(n.origin, evidence.Ed25519Signer{Key: admin}); err != nil {
		n.t.Fatal(err)
	}
	enc, _ := g.Marshal()
	return n.do("POST", "/v1/governance", api.GovernanceRequest{Entry: enc})
}

func (n *testNode) register() ed25519.PrivateKey {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	if code, body := n.governance(evidence.ActionRegisterSubmitter, pub, n.admin); code != 200 {
		n.t.Fatalf("register: %d %s", code, body)
	}
	return priv
}

func signedSubmission(t testing.TB, origin string, key ed25519.PrivateKey, file []byte) []byte {
	t.Helper()
	d := sha256.Sum256(file)
	op := evidence.Opening{FileName: "f.bin"}
	op.DeriveSalt(key.Seed(), d[:])
	c, _ := op.Commitment()
	s := &evidence.Submission{Digests: []evidence.Digest{{Alg: evidence.SHA256, Value: d[:]}}, Kind: evidence.KindFile,
		Size: uint64(len(file)), Submitter: evidence.Ed25519Signer{Key: key}.Public(), Commitment: c}
	if err := s.Sign(origin, evidence.Ed25519Signer{Key: key}); err != nil {
		t.Fatal(err)
	}
	enc, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

func TestSubmitAndVerify(t *testing.T) {
	n := newTestNode(t)
	alice := n.register()
	file := []byte("infringing page capture")
	code, body := n.do("POST", "/v1/submissions", api.SubmitRequest{Submission: signedSubmission(t, n.origin, alice, file)})
	if code != 200 {
		t.Fatalf("submit: %d %s", code, body)
	}
	var resp api.SubmitResponse
	json.Unmarshal(body, &resp)
	d := sha256.Sum256(file)
	res := verify.Receipt([]byte(resp.Receipt), d[:], n.fp)
	if !res.OK() {
		t.Fatalf("receipt does not verify: %s %+v", res.Reason, res.Checks)
	}
	// Re-submission returns the same receipt.
	code, body2 := n.do("POST", "/v1/submissions", api.SubmitRequest{Submission: signedSubmission(t, n.origin, alice, file)})
	var resp2 api.SubmitResponse
	json.Unmarshal(body2, &resp2)
	if code != 200 || !resp2.Existing || resp2.Receipt != resp.Receipt {
		t.Fatalf("re-submit: %d existing=%v same=%v", code, resp2.Existing, resp2.Receipt == resp.Receipt)
	}
	// Lookup.
	code, body = n.do("GET", fmt.Sprintf("/v1/lookup/%x", d), nil)
	if code != 200 {
		t.Fatalf("lookup: %d %s", code, body)
	}
	if strings.Contains(string(body), "alice") || bytes.Contains(body, []byte(`"submission"`)) {
		t.Fatalf("lookup reveals the submitter: %s", body)
	}
	var lr api.LookupResponse
	json.Unmarshal(body, &lr)
	if r := verify.Lookup(lr.Records[0].Leaf, []byte(lr.Records[0].Proof), lr.Manifests, d[:], n.fp); !r.OK() {
		t.Fatalf("lookup does not verify: %s", r.Reason)
	}
	if os.Getenv("X") != "" {
		t.Log(resp.Receipt)
	}
}

func (n *testNode) doCT(method, path, ct, body string) (int, []byte) {
	n.t.Helper()
	req, _ := http.NewRequest(method, n.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", ct)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func (n *testNode) doAuth(method, path string) (int, []byte) {
	n.t.Helper()
	req, _ := http.NewRequest(method, n.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+n.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}
