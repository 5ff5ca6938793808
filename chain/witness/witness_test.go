package witness_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/cunzheng/cunzheng/chain/checkpoint"
	"github.com/cunzheng/cunzheng/chain/witness"
)

const origin = "evidence.other-court.example/v1"

// testLog is an in-memory RFC 6962 log signing its checkpoints.
type testLog struct {
	t      testing.TB
	hashes []tlog.Hash
	size   int64
	signer note.Signer
	vkey   string
	salt   string // distinguishes the leaves of a fork
}

func newTestLog(t testing.TB, name string) *testLog {
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := note.NewSigner(skey)
	return &testLog{t: t, signer: s, vkey: vkey}
}

func (l *testLog) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = l.hashes[x]
	}
	return out, nil
}

func (l *testLog) grow(n int) {
	for range n {
		hs, err := tlog.StoredHashes(l.size, fmt.Appendf(nil, "%sleaf %d", l.salt, l.size), l)
		if err != nil {
			l.t.Fatal(err)
		}
		l.hashes = append(l.hashes, hs...)
		l.size++
	}
}

func (l *testLog) root(size int64) tlog.Hash {
	h, err := tlog.TreeHash(size, l)
	if err != nil {
		l.t.Fatal(err)
	}
	return h
}

func (l *testLog) signed(size int64, signers ...note.Signer) []byte {
	if len(signers) == 0 {
		signers = []note.Signer{l.signer}
	}
	s, err := checkpoint.Sign(checkpoint.Checkpoint{Origin: origin, Size: size, Root: l.root(size)}, signers...)
	if err != nil {
		l.t.Fatal(err)
	}
	return s
}

func (l *testLog) proof(old, size int64) tlog.TreeProof {
	if old == 0 {
		return nil
	}
	p, err := tlog.ProveTree(size, old, l)
	if err != nil {
		l.t.Fatal(err)
	}
	return p
}

func (l *testLog) proofFunc(size int64) func(context.Context, int64) (tlog.TreeProof, error) {
	return func(_ context.Context, old int64) (tlog.TreeProof, error) {
		if old > size {
			return nil, errors.New("witness is ahead")
		}
		return l.proof(old, size), nil
	}
}

func (l *testLog) verifiers() note.Verifiers {
	v, err := note.NewVerifier(l.vkey)
	if err != nil {
		l.t.Fatal(err)
	}
	return note.VerifierList(v)
}

type fixture struct {
	log    *testLog
	signer *checkpoint.CosignatureSigner
	priv   ed25519.PrivateKey
	state  *witness.PebbleState
	dir    string
	srv    *witness.Server
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{log: newTestLog(t, "court.other.example"), dir: t.TempDir()}
	var err error
	_, f.priv, _ = ed25519.GenerateKey(rand.Reader)
	if f.signer, err = checkpoint.NewCosignatureSigner("witness.example/w", f.priv, nil); err != nil {
		t.Fatal(err)
	}
	f.open(t)
	f.log.grow(10)
	return f
}

func (f *fixture) open(t *testing.T) {
	st, err := witness.OpenPebbleState(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f.state = st
	f.srv, err = witness.NewServer(witness.Config{
		Logs:   []witness.Log{{Origin: origin, Verifiers: f.log.verifiers()}},
		Signer: f.signer, State: st,
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) post(body []byte) (int, string, string) {
	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, httptest.NewRequest("POST", "/add-checkpoint", bytes.NewReader(body)))
	return rec.Code, rec.Body.String(), rec.Header().Get("Content-Type")
}

func (f *fixture) add(t *testing.T, old, size int64) string {
	t.Helper()
	code, body, _ := f.post((&witness.Request{OldSize: old, Proof: f.log.proof(old, size), Checkpoint: f.log.signed(size)}).Format())
	if code != 200 {
		t.Fatalf("add-checkpoint old %d size %d: %d %s", old, size, code, body)
	}
	return body
}

func TestAddCheckpointCosigns(t *testing.T) {
	f := newFixture(t)
	cosig := f.add(t, 0, 4)
	f.add(t, 4, 10)
	if _, err := note.Open(append(f.log.signed(4), cosig...), note.VerifierList(f.signer.Verifier())); err != nil {
		t.Fatalf("first cosignature: %v", err)
	}
	// The same tree again is cosigned again. Both our verifier and
	// torchwood's verify what the server returned.
	got := append(f.log.signed(10), f.add(t, 10, 10)...)
	tw, err := torchwood.NewCosignatureSigner("witness.example/w", f.priv)
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]note.Verifier{"ours": f.signer.Verifier(), "torchwood": tw.Verifier()} {
		n, err := note.Open(got, note.VerifierList(v))
		if err != nil || len(n.Sigs) != 1 || n.Sigs[0].Name != "witness.example/w" {
			t.Errorf("%s verifier: %v %+v", name, err, n)
		}
	}
	if tr, _ := f.state.Latest(origin); tr.Size != 10 || tr.Root != f.log.root(10) {
		t.Errorf("state %+v, want size 10", tr)
	}
}

func TestAddCheckpointRefuses(t *testing.T) {
	other := newTestLog(t, "court.other.example")
	fork := newTestLog(t, "court.other.example")
	fork.salt = "forked "
	for _, tt := range []struct {
		name   string
		body   func(f *fixture) []byte
		status int
		size   string // 409 body
	}{
		{"empty body", func(*fixture) []byte { return nil }, 400, ""},
		{"no old line", func(f *fixture) []byte { return append([]byte("\n"), f.log.signed(6)...) }, 400, ""},
		{"old with leading zero", func(f *fixture) []byte { return append([]byte("old 04\n\n"), f.log.signed(6)...) }, 400, ""},
		{"negative old", func(f *fixture) []byte { return append([]byte("old -1\n\n"), f.log.signed(6)...) }, 400, ""},
		{"old size after new", func(f *fixture) []byte { return req(8, f.log.proof(4, 6), f.log.signed(6)) }, 400, ""},
		{"proof line not base64", func(f *fixture) []byte { return append([]byte("old 4\nnot-a-hash\n\n"), f.log.signed(6)...) }, 400, ""},
		{"proof with old 0", func(f *fixture) []byte { return req(0, f.log.proof(4, 6), f.log.signed(6)) }, 400, ""},
		{"64 proof lines", func(f *fixture) []byte { return req(4, make(tlog.TreeProof, 64), f.log.signed(6)) }, 400, ""},
		{"unsigned checkpoint", func(f *fixture) []byte {
			return append([]byte("old 4\n\n"), checkpoint.Checkpoint{Origin: origin, Size: 6, Root: f.log.root(6)}.Body()...)
		}, 400, ""},
		{"extension line", func(f *fixture) []byte {
			s, _ := note.Sign(&note.Note{Text: string(checkpoint.Checkpoint{Origin: origin, Size: 6, Root: f.log.root(6)}.Body()) + "ext\n"}, f.log.signer)
			return req(4, f.log.proof(4, 6), s)
		}, 400, ""},
		{"unknown origin", func(f *fixture) []byte {
			s, _ := checkpoint.Sign(checkpoint.Checkpoint{Origin: "other.example/log", Size: 6, Root: f.log.root(6)}, f.log.signer)
			return req(4, f.log.proof(4, 6), s)
		}, 404, ""},
		{"signed by another key of the same name", func(f *fixture) []byte { return req(4, f.log.proof(4, 6), f.log.signed(6, other.signer)) }, 403, ""},
		{"signature not in canonical base64", func(f *fixture) []byte {
			s := f.log.signed(6)
			// The last base64 digit before "=" carries two padding bits.
			i := bytes.LastIndex(s, []byte("=\n")) - 1
			s[i] ^= 1
			return req(4, f.log.proof(4, 6), s)
		}, 403, ""},
		{"stale old size", func(f *fixture) []byte { return req(2, f.log.proof(2, 6), f.log.signed(6)) }, 409, "4\n"},
		{"old 0 when the witness knows the log", func(f *fixture) []byte { return req(0, nil, f.log.signed(6)) }, 409, "4\n"},
		{"same size, other root", func(f *fixture) []byte {
			s, _ := checkpoint.Sign(checkpoint.Checkpoint{Origin: origin, Size: 4, Root: f.log.root(5)}, f.log.signer)
			return req(4, nil, s)
		}, 409, "4\n"},
		{"bad consistency proof", func(f *fixture) []byte {
			p := f.log.proof(4, 6)
			p[0][0] ^= 1
			return req(4, p, f.log.signed(6))
		}, 422, ""},
		{"proof to a forked tree", func(f *fixture) []byte {
			// A tree of size 6 whose first 4 leaves differ.
			fork.grow(6)
			s, _ := checkpoint.Sign(checkpoint.Checkpoint{Origin: origin, Size: 6, Root: fork.root(6)}, f.log.signer)
			return req(4, fork.proof(4, 6), s)
		}, 422, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.add(t, 0, 4)
			code, body, ctype := f.post(tt.body(f))
			if code != tt.status {
				t.Fatalf("status %d (%s), want %d", code, strings.TrimSpace(body), tt.status)
			}
			if tt.status == 409 && (body != tt.size || ctype != "text/x.tlog.size") {
				t.Errorf("409 body %q type %q, want %q text/x.tlog.size", body, ctype, tt.size)
			}
			// Nothing changed.
			if tr, _ := f.state.Latest(origin); tr.Size != 4 || tr.Root != f.log.root(4) {
				t.Errorf("state moved to %+v", tr)
			}
		})
	}
}

func req(old int64, p tlog.TreeProof, signed []byte) []byte {
	return (&witness.Request{OldSize: old, Proof: p, Checkpoint: signed}).Format()
}

func TestThreshold(t *testing.T) {
	a, b := newTestLog(t, "a.example"), newTestLog(t, "b.example")
	a.grow(3)
	st, err := witness.OpenPebbleState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	vb, _ := note.NewVerifier(b.vkey)
	va, _ := note.NewVerifier(a.vkey)
	signer, _ := checkpoint.GenerateCosignatureKey("w.example", rand.Reader)
	srv, err := witness.NewServer(witness.Config{Signer: signer, State: st,
		Logs: []witness.Log{{Origin: origin, Verifiers: note.VerifierList(va, vb), Threshold: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		signers []note.Signer
		status  int
	}{{[]note.Signer{a.signer}, 403}, {[]note.Signer{a.signer, b.signer}, 200}} {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest("POST", "/add-checkpoint", bytes.NewReader(req(0, nil, a.signed(3, tt.signers...)))))
		if rec.Code != tt.status {
			t.Errorf("%d signers: status %d, want %d", len(tt.signers), rec.Code, tt.status)
		}
	}
}

func TestStateCompareAndSwap(t *testing.T) {
	dir := t.TempDir()
	st, err := witness.OpenPebbleState(dir)
	if err != nil {
		t.Fatal(err)
	}
	t1 := witness.Tree{Size: 5, Root: tlog.Hash{1}}
	t2 := witness.Tree{Size: 9, Root: tlog.Hash{2}}
	if err := st.Swap(origin, witness.Tree{}, t1); err != nil {
		t.Fatal(err)
	}
	var ce *witness.ConflictError
	if err := st.Swap(origin, witness.Tree{}, t2); !errors.As(err, &ce) || ce.Latest != t1 {
		t.Fatalf("Swap from a stale tree = %v, want conflict naming %+v", err, t1)
	}
	if err := st.Swap(origin, witness.Tree{Size: 5, Root: tlog.Hash{9}}, t2); !errors.As(err, &ce) {
		t.Fatalf("Swap from the right size but another root = %v, want conflict", err)
	}
	// Concurrent swaps from one tree: exactly one wins.
	var wins, conflicts int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := st.Swap(origin, t1, witness.Tree{Size: int64(10 + i)})
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				wins++
			} else if errors.As(err, new(*witness.ConflictError)) {
				conflicts++
			}
		}()
	}
	wg.Wait()
	if wins != 1 || conflicts != 7 {
		t.Fatalf("%d swaps won and %d conflicted, want 1 and 7", wins, conflicts)
	}
	won, _ := st.Latest(origin)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st2, err := witness.OpenPebbleState(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	if got, err := st2.Latest(origin); err != nil || got != won {
		t.Errorf("after reopening: %+v, %v; want %+v", got, err, won)
	}
	if got, _ := st2.Latest("never.example"); got != (witness.Tree{}) {
		t.Errorf("unknown origin: %+v, want the zero tree", got)
	}
}

// TestRestartKeepsState: a witness restarted on its state refuses to roll
// back, and a request from the size it held before is answered 409.
func TestRestartKeepsState(t *testing.T) {
	f := newFixture(t)
	f.add(t, 0, 7)
	f.state.Close()
	f.open(t)
	code, body, _ := f.post(req(0, nil, f.log.signed(3)))
	if code != 409 || body != "7\n" {
		t.Fatalf("after restart, old 0: %d %q, want 409 \"7\\n\"", code, body)
	}
	f.add(t, 7, 10)
}

func TestClient(t *testing.T) {
	f := newFixture(t)
	ts := httptest.NewServer(f.srv)
	defer ts.Close()
	var c witness.Client
	ctx := context.Background()
	// The client starts from 0; the witness is fresh.
	cosig, size, err := c.AddCheckpoint(ctx, ts.URL, 0, f.log.proofFunc(4), f.log.signed(4))
	if err != nil || size != 4 {
		t.Fatalf("first: %v, size %d", err, size)
	}
	if _, err := note.Open(append(f.log.signed(4), cosig...), note.VerifierList(f.signer.Verifier())); err != nil {
		t.Fatalf("cosignature does not verify: %v", err)
	}
	// A client that lost track (old 0) is told 409 and resends from 4.
	if _, size, err := c.AddCheckpoint(ctx, ts.URL, 0, f.log.proofFunc(10), f.log.signed(10)); err != nil || size != 10 {
		t.Fatalf("after 409: %v, size %d", err, size)
	}
	// A checkpoint older than the witness's: no proof possible, size reported.
	if _, size, err := c.AddCheckpoint(ctx, ts.URL, 4, f.log.proofFunc(6), f.log.signed(6)); err == nil || size != 10 {
		t.Fatalf("witness ahead: %v, size %d; want an error naming size 10", err, size)
	}
	// A refusal surfaces as a StatusError.
	var se *witness.StatusError
	_, _, err = c.AddCheckpoint(ctx, ts.URL, 10, f.log.proofFunc(10), f.log.signed(10, newTestLog(t, "court.other.example").signer))
	if !errors.As(err, &se) || se.Code != 403 {
		t.Fatalf("bad signature: %v, want a 403 StatusError", err)
	}
	// Method other than POST.
	resp, err := http.Get(ts.URL + "/add-checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Errorf("GET: %d, want 405", resp.StatusCode)
	}
}

func TestParseRequestRoundTrip(t *testing.T) {
	l := newTestLog(t, "court.other.example")
	l.grow(9)
	r := &witness.Request{OldSize: 5, Proof: l.proof(5, 9), Checkpoint: l.signed(9)}
	body := r.Format()
	got, err := witness.ParseRequest(body)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Format(), body) || got.OldSize != 5 || len(got.Proof) != len(r.Proof) {
		t.Errorf("round trip changed the request")
	}
	if !strings.HasPrefix(string(body), "old 5\n") || !strings.Contains(string(body), "\n\n"+origin+"\n9\n") {
		t.Errorf("body %q not in the spec form", body)
	}
	if _, err := witness.ParseRequest(append(body, make([]byte, witness.MaxRequestSize)...)); !errors.Is(err, witness.ErrMalformed) {
		t.Errorf("oversized request: %v", err)
	}
}
