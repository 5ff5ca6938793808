package web_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/cunzheng/cunzheng/api"
	"github.com/cunzheng/cunzheng/api/web"
	"github.com/cunzheng/cunzheng/chain/store"
	"github.com/cunzheng/cunzheng/evidence"
	"github.com/cunzheng/cunzheng/evidence/ledger"
)

// testNode is a real node (Pebble on disk, ledger, HTTP API and the pages)
// on 127.0.0.1, as in api/server_test.go.
type testNode struct {
	t      testing.TB
	srv    *httptest.Server
	m      *evidence.Manifest
	mfile  []byte
	fp     evidence.Fingerprint
	admin  ed25519.PrivateKey
	origin string
}

func newTestNode(t testing.TB, name string) *testNode {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	adminPub, adminPriv, _ := ed25519.GenerateKey(rand.Reader)
	m := &evidence.Manifest{Origin: name + "/log", Sequence: 1, Threshold: 1, CreatedAt: 1,
		Members: []evidence.Member{{Name: name, Role: evidence.RoleCourt, RaftID: 1, NoteKey: vkey, AdminKey: adminPub}}}
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
	l, err := ledger.Open(ledger.Config{Store: st, Genesis: genesis, Signer: signer, BatchInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	pages, err := web.New(web.Options{Network: web.Network{Fingerprint: fp, Manifest: m}})
	if err != nil {
		t.Fatal(err)
	}
	n := &testNode{t: t, m: m, mfile: mf, fp: fp, admin: adminPriv, origin: m.Origin}
	n.srv = httptest.NewServer(api.NewServer(api.Config{Ledger: l, Node: name, Role: "court", Manifest: mf, Extra: pages.Register}))
	t.Cleanup(func() {
		n.srv.Close()
		l.Close()
		st.Close()
	})
	return n
}

func (n *testNode) post(path string, body any) (int, []byte) {
	n.t.Helper()
	enc, _ := json.Marshal(body)
	resp, err := http.Post(n.srv.URL+path, "application/json", bytes.NewReader(enc))
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// register makes a new submitter key and registers it.
func (n *testNode) register() ed25519.PrivateKey {
	n.t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	admin := evidence.Ed25519Signer{Key: n.admin}
	g := &evidence.Governance{Action: evidence.ActionRegisterSubmitter, IssuedMS: uint64(time.Now().UnixMilli()),
		Subject: evidence.PublicKey{Alg: evidence.Ed25519, Key: pub}, Label: "alice", Admin: admin.Public()}
	if err := g.Sign(n.origin, admin); err != nil {
		n.t.Fatal(err)
	}
	enc, _ := g.Marshal()
	if code, body := n.post("/v1/governance", api.GovernanceRequest{Entry: enc}); code != 200 {
		n.t.Fatalf("register: %d %s", code, body)
	}
	return priv
}

// preserve submits file with the given opening and returns the receipt
// (with the opening kept, as the submitter holds it) and its index.
func (n *testNode) preserve(key ed25519.PrivateKey, file []byte, op evidence.Opening) ([]byte, uint64) {
	n.t.Helper()
	d := sha256.Sum256(file)
	if err := op.DeriveSalt(key.Seed(), d[:]); err != nil {
		n.t.Fatal(err)
	}
	c, _ := op.Commitment()
	s := &evidence.Submission{Digests: []evidence.Digest{{Alg: evidence.SHA256, Value: d[:]}}, Kind: evidence.KindDocument,
		Size: uint64(len(file)), Submitter: evidence.Ed25519Signer{Key: key}.Public(), Commitment: c}
	if err := s.Sign(n.origin, evidence.Ed25519Signer{Key: key}); err != nil {
		n.t.Fatal(err)
	}
	enc, _ := s.Marshal()
	code, body := n.post("/v1/submissions", api.SubmitRequest{Submission: enc})
	if code != 200 {
		n.t.Fatalf("submit: %d %s", code, body)
	}
	var resp api.SubmitResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		n.t.Fatal(err)
	}
	rc, err := evidence.ParseReceipt([]byte(resp.Receipt))
	if err != nil {
		n.t.Fatal(err)
	}
	rc.Opening, _ = op.Marshal()
	return rc.Marshal(), resp.Index
}

func (n *testNode) recordID(idx uint64) string { return evidence.RecordID(n.fp, int64(idx)) }
