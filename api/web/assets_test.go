package web

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cunzheng/cunzheng/evidence"
)

// TestGeneratedAssetsFresh rebuilds verify.wasm and wasm_exec.js and fails
// when the committed ones differ: run `go generate ./api/web`.
func TestGeneratedAssetsFresh(t *testing.T) {
	if testing.Short() {
		t.Skip("rebuilds the WebAssembly verifier; skipped with -short")
	}
	dir := t.TempDir()
	cmd := exec.Command("go", "run", "./internal/genassets", "-dir", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("genassets: %v\n%s", err, out)
	}
	for _, name := range []string{"verify.wasm", "wasm_exec.js"} {
		fresh, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(fresh, asset(name)) {
			t.Errorf("assets/%s is stale: run `go generate ./api/web` and commit it", name)
		}
	}
}

func TestOfflinePageIsSelfContained(t *testing.T) {
	page, err := OfflinePage(Network{Fingerprint: evidence.Fingerprint{1}})
	if err != nil {
		t.Fatal(err)
	}
	s := string(page)
	for _, bad := range []string{"<script src", "<link", "<img", "<iframe", "url(", "@import"} {
		if strings.Contains(s, bad) {
			t.Errorf("offline page loads something from outside itself: %q", bad)
		}
	}
	if !strings.Contains(s, "connect-src 'none'") {
		t.Error("offline page lacks the CSP that forbids network requests")
	}
}

// FuzzCertificateRequest sends arbitrary bodies to POST /v1/certificate:
// every one gets a 4xx answer, never a certificate or a server error.
func FuzzCertificateRequest(f *testing.F) {
	f.Add([]byte("cunzheng-receipt/v1\nnetwork 00\n\n"), "text/plain")
	f.Add([]byte("hello"), "")
	f.Add([]byte("cunzheng-receipt/v1\nnetwork "+strings.Repeat("0", 64)+"\nmanifest AQ==\nsubmission AQ==\nleaf AQ==\n\nc2ln"), "text/plain; charset=utf-8")
	pages, err := New(Options{Network: Network{Fingerprint: evidence.Fingerprint{1}}})
	if err != nil {
		f.Fatal(err)
	}
	mux := http.NewServeMux()
	pages.Register(mux)
	f.Fuzz(func(t *testing.T, body []byte, ctype string) {
		req := httptest.NewRequest("POST", "/v1/certificate", bytes.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, req)
		if w.Code < 400 || w.Code >= 500 {
			t.Fatalf("body %q: status %d", body, w.Code)
		}
	})
}
