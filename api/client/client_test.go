package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cunzheng/cunzheng/api"
	"github.com/cunzheng/cunzheng/api/client"
)

// fakeNode answers the API paths with canned bodies and records requests.
type fakeNode struct {
	t        *testing.T
	lastAuth string
	lastBody []byte
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(api.Error{Err: api.ErrorBody{Code: code, Message: msg}})
}

func (f *fakeNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.lastAuth = r.Header.Get("Authorization")
	f.lastBody, _ = io.ReadAll(r.Body)
	digest := strings.Repeat("ab", 32)
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/submissions":
		var req api.SubmitRequest
		if err := json.Unmarshal(f.lastBody, &req); err != nil || len(req.Submission) == 0 {
			writeError(w, 400, "bad_request", "no submission")
			return
		}
		json.NewEncoder(w).Encode(api.SubmitResponse{Index: 7, RecordID: "CZ-1-7", Existing: true, Receipt: "r"})
	case r.Method == http.MethodPost && r.URL.Path == "/v1/submissions/batch":
		var req api.BatchRequest
		json.Unmarshal(f.lastBody, &req)
		res := api.BatchResponse{}
		for i := range req.Submissions {
			res.Results = append(res.Results, api.SubmitResponse{Index: uint64(i)})
		}
		json.NewEncoder(w).Encode(res)
	case r.Method == http.MethodPost && r.URL.Path == "/v1/governance":
		writeError(w, http.StatusInsufficientStorage, "disk_low", "node is short of disk")
	case r.URL.Path == "/v1/lookup/"+digest:
		json.NewEncoder(w).Encode(api.LookupResponse{Digest: digest, Preserved: true, Records: []api.LookupRecord{{Index: 3}}})
	case strings.HasPrefix(r.URL.Path, "/v1/lookup/"):
		writeError(w, 404, "not_found", "digest not preserved")
	case r.URL.Path == "/v1/receipts/5":
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			writeError(w, 401, "unauthorized", "bearer token required")
			return
		}
		io.WriteString(w, "cunzheng-receipt/v1\n")
	case r.URL.Path == "/v1/consistency":
		json.NewEncoder(w).Encode(api.ConsistencyResponse{Old: 1, New: 4, Proof: [][]byte{{1}}})
	case r.URL.Path == "/v1/status":
		w.Write([]byte(`{"origin":"o","tree_size":9,"unknown_future_field":1}`))
	case r.URL.Path == "/v1/manifest":
		w.Write(bytes.Repeat([]byte("x"), client.MaxManifestFileBytes+1))
	case r.URL.Path == "/checkpoint":
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "<html>\n  upstream   down\n</html>")
	default:
		writeError(w, 404, "not_found", "no route")
	}
}

func newTestClient(t *testing.T, opts ...client.Option) (*client.Client, *fakeNode) {
	t.Helper()
	f := &fakeNode{t: t}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL+"/", opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c, f
}

func TestNewRejectsBadURLs(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:8080", "ftp://x", "http://", "http://h/?q=1", "http://h/%zz"} {
		if _, err := client.New(u); err == nil {
			t.Errorf("New(%q) succeeded, want error", u)
		}
	}
}

func TestSubmitAndBatch(t *testing.T) {
	c, f := newTestClient(t)
	ctx := context.Background()
	resp, err := c.Submit(ctx, []byte{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Index != 7 || !resp.Existing || resp.RecordID != "CZ-1-7" {
		t.Errorf("Submit = %+v", resp)
	}
	if !bytes.Contains(f.lastBody, []byte(`"submission":"AQID"`)) {
		t.Errorf("request body %s does not carry base64 submission", f.lastBody)
	}
	b, err := c.SubmitBatch(ctx, [][]byte{{1}, {2}})
	if err != nil || len(b.Results) != 2 {
		t.Fatalf("SubmitBatch = %+v, %v", b, err)
	}
	if _, err := c.SubmitBatch(ctx, make([][]byte, api.MaxBatchSize+1)); err == nil {
		t.Error("SubmitBatch over the limit succeeded")
	}
}

func TestErrors(t *testing.T) {
	c, _ := newTestClient(t)
	ctx := context.Background()

	_, err := c.Lookup(ctx, bytes.Repeat([]byte{0xcd}, 32))
	var ce *client.Error
	if !errors.As(err, &ce) || ce.StatusCode != 404 || ce.Code != "not_found" || ce.Message != "digest not preserved" {
		t.Fatalf("Lookup unknown digest: %v", err)
	}
	if !errors.Is(err, client.ErrNotFound) || errors.Is(err, client.ErrUnavailable) {
		t.Errorf("errors.Is mismatch for %v", err)
	}
	if !strings.Contains(err.Error(), "HTTP 404 not_found: digest not preserved") {
		t.Errorf("error text %q", err)
	}

	_, err = c.Governance(ctx, []byte{1})
	if !errors.Is(err, client.ErrInsufficientStorage) {
		t.Errorf("Governance on a full node: %v, want ErrInsufficientStorage", err)
	}

	_, err = c.Checkpoint(ctx)
	if !errors.Is(err, client.ErrUnavailable) || !strings.Contains(err.Error(), "HTTP 503 service_unavailable: <html> upstream down </html>") {
		t.Errorf("Checkpoint with non-JSON 503: %v", err)
	}

	if _, err := c.Lookup(ctx, []byte{1, 2}); err == nil {
		t.Error("Lookup with a 2-byte digest succeeded")
	}
}

func TestLookupFound(t *testing.T) {
	c, _ := newTestClient(t)
	resp, err := c.Lookup(context.Background(), bytes.Repeat([]byte{0xab}, 32))
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Preserved || len(resp.Records) != 1 || resp.Records[0].Index != 3 {
		t.Errorf("Lookup = %+v", resp)
	}
}

func TestReceiptSendsToken(t *testing.T) {
	c, _ := newTestClient(t)
	if _, err := c.Receipt(context.Background(), 5); !errors.Is(err, client.ErrUnauthorized) {
		t.Errorf("Receipt without token: %v, want ErrUnauthorized", err)
	}
	c, f := newTestClient(t, client.WithToken("s3cret"))
	b, err := c.Receipt(context.Background(), 5)
	if err != nil || string(b) != "cunzheng-receipt/v1\n" {
		t.Fatalf("Receipt = %q, %v", b, err)
	}
	if f.lastAuth != "Bearer s3cret" {
		t.Errorf("Authorization = %q", f.lastAuth)
	}
}

func TestConsistencyAndStatus(t *testing.T) {
	c, _ := newTestClient(t)
	ctx := context.Background()
	cr, err := c.Consistency(ctx, 1, 4)
	if err != nil || cr.New != 4 || len(cr.Proof) != 1 {
		t.Fatalf("Consistency = %+v, %v", cr, err)
	}
	st, err := c.Status(ctx)
	if err != nil || st.TreeSize != 9 || st.Origin != "o" {
		t.Fatalf("Status = %+v, %v", st, err)
	}
}

func TestResponseSizeBounded(t *testing.T) {
	c, _ := newTestClient(t)
	if _, err := c.Manifest(context.Background()); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("oversized manifest: %v, want a size-limit error", err)
	}
}
