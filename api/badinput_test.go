package api_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"

	"github.com/cunzheng/cunzheng/api"
	"github.com/cunzheng/cunzheng/evidence"
)

// TestBadInput sends every kind of bad request and checks each gets a 4xx
// JSON error naming the problem, and that the log does not change.
func TestBadInput(t *testing.T) {
	n := newTestNode(t)
	alice := n.register()
	good := signedSubmission(t, n.origin, alice, []byte("good"))
	sub, _ := evidence.ParseSubmission(good)

	mutate := func(f func(s *evidence.Submission)) []byte {
		s, _ := evidence.ParseSubmission(good)
		f(s)
		return encodeSubmission(t, s)
	}
	// A revoked key.
	_, revokedPriv, _ := ed25519.GenerateKey(rand.Reader)
	revokedPub := revokedPriv.Public().(ed25519.PublicKey)
	if code, body := n.governance(evidence.ActionRegisterSubmitter, revokedPub, n.admin); code != 200 {
		t.Fatalf("register: %d %s", code, body)
	}
	if code, body := n.governance(evidence.ActionRevokeSubmitter, revokedPub, n.admin); code != 200 {
		t.Fatalf("revoke: %d %s", code, body)
	}
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	wrongDigestLen := append([]byte(nil), good...)
	wrongDigestLen[3] = 31 // the sha256 digest's length byte
	unknownAlg := append([]byte(nil), good...)
	unknownAlg[2] = 9 // the first digest's algorithm byte

	batch := func(items ...[]byte) api.BatchRequest { return api.BatchRequest{Submissions: items} }
	tooMany := make([][]byte, api.MaxBatchSize+1)
	for i := range tooMany {
		tooMany[i] = good
	}
	sizeBefore := n.st.TreeSize()

	tests := []struct {
		name, method, path string
		body               any
		status             int
		code, mention      string
	}{
		{"malformed json", "POST", "/v1/submissions", `{"submission":`, 400, "malformed_json", "JSON"},
		{"unknown field", "POST", "/v1/submissions", `{"submission":"AA==","x":1}`, 400, "malformed_json", "unknown field"},
		{"trailing data", "POST", "/v1/submissions", `{"submission":"AA=="} {}`, 400, "malformed_json", "after the JSON"},
		{"not base64", "POST", "/v1/submissions", `{"submission":"***"}`, 400, "malformed_json", "base64"},
		{"missing submission", "POST", "/v1/submissions", `{}`, 400, "missing_submission", "required"},
		{"garbage submission", "POST", "/v1/submissions", api.SubmitRequest{Submission: []byte("garbage")}, 400, "invalid_entry", "unsupported"},
		{"wrong digest length", "POST", "/v1/submissions", api.SubmitRequest{Submission: wrongDigestLen}, 400, "invalid_entry", "malformed"},
		{"unknown algorithm", "POST", "/v1/submissions", api.SubmitRequest{Submission: unknownAlg}, 400, "invalid_entry", "alg(9)"},
		{"bad signature", "POST", "/v1/submissions", api.SubmitRequest{Submission: mutate(func(s *evidence.Submission) { s.Signature[0] ^= 1 })}, 400, "invalid_entry", "signature"},
		{"missing signature", "POST", "/v1/submissions", api.SubmitRequest{Submission: mutate(func(s *evidence.Submission) { s.Signature = nil })}, 400, "invalid_entry", "signature"},
		{"signature for other network", "POST", "/v1/submissions", api.SubmitRequest{Submission: resign(t, sub, "other.example/log", alice)}, 400, "invalid_entry", "signature"},
		{"unregistered key", "POST", "/v1/submissions", api.SubmitRequest{Submission: signedSubmission(t, n.origin, stranger, []byte("x"))}, 403, "not_registered", "not registered"},
		{"revoked key", "POST", "/v1/submissions", api.SubmitRequest{Submission: signedSubmission(t, n.origin, revokedPriv, []byte("x"))}, 403, "revoked", "revoked"},
		{"oversized body", "POST", "/v1/submissions", `{"submission":"` + strings.Repeat("A", api.MaxBodyBytes) + `"}`, 413, "body_too_large", "too large"},
		{"wrong content type", "POST", "/v1/submissions", nil, 415, "unsupported_media_type", "application/json"},
		{"empty batch", "POST", "/v1/submissions/batch", batch(), 400, "bad_batch_size", "1 to 1000"},
		{"batch over the limit", "POST", "/v1/submissions/batch", api.BatchRequest{Submissions: tooMany}, 400, "bad_batch_size", "got 1001"},
		{"batch with one bad item", "POST", "/v1/submissions/batch", batch(signedSubmission(t, n.origin, alice, []byte("new1")), mutate(func(s *evidence.Submission) { s.Signature[5] ^= 1 })), 400, "invalid_entry", "submission 1"},
		{"governance by non-admin", "POST", "/v1/governance", govEntry(t, n.origin, stranger), 403, "not_admin", "administrator"},
		{"governance garbage", "POST", "/v1/governance", api.GovernanceRequest{Entry: []byte{1, 2, 3}}, 400, "invalid_entry", "malformed"},
		{"re-register revoked", "POST", "/v1/governance", regEntry(t, n.origin, revokedPub, n.admin), 409, "conflict", "revoked"},
		{"lookup bad digest", "GET", "/v1/lookup/xyz", nil, 400, "bad_digest", "64 hex"},
		{"lookup short digest", "GET", "/v1/lookup/abcd", nil, 400, "bad_digest", "64 hex"},
		{"lookup unknown digest", "GET", "/v1/lookup/" + strings.Repeat("ab", 32), nil, 404, "not_found", "no evidence"},
		{"receipt without token", "GET", "/v1/receipts/0", nil, 401, "unauthorized", "token"},
		{"consistency missing", "GET", "/v1/consistency", nil, 400, "bad_old", "old"},
		{"consistency negative", "GET", "/v1/consistency?old=-1&new=2", nil, 400, "bad_old", "non-negative"},
		{"consistency leading zero", "GET", "/v1/consistency?old=01&new=2", nil, 400, "bad_old", "decimal"},
		{"consistency reversed", "GET", "/v1/consistency?old=3&new=2", nil, 400, "bad_range", "old <= new"},
		{"consistency zero", "GET", "/v1/consistency?old=0&new=2", nil, 400, "bad_range", "0 < old"},
		{"consistency beyond", "GET", "/v1/consistency?old=1&new=99999", nil, 404, "not_found", "beyond"},
		{"bad tile path", "GET", "/tile/0/01", nil, 404, "bad_tile_path", "tile"},
		{"tile beyond tree", "GET", "/tile/0/999", nil, 404, "not_found", ""},
		{"unknown endpoint", "GET", "/v2/nothing", nil, 404, "no_such_endpoint", "/v2/nothing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var code int
			var body []byte
			if tc.name == "wrong content type" {
				code, body = n.doCT("POST", tc.path, "text/plain", `{"submission":"AA=="}`)
			} else {
				code, body = n.do(tc.method, tc.path, tc.body)
			}
			if code != tc.status {
				t.Fatalf("status %d, want %d: %s", code, tc.status, body)
			}
			var e api.Error
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("error body is not JSON: %s", body)
			}
			if e.Err.Code != tc.code || !strings.Contains(strings.ToLower(e.Err.Message), strings.ToLower(tc.mention)) {
				t.Fatalf("error %+v, want code %q mentioning %q", e.Err, tc.code, tc.mention)
			}
		})
	}
	if got := n.st.TreeSize(); got != sizeBefore {
		t.Fatalf("bad input changed the log: size %d → %d", sizeBefore, got)
	}
	// A token read works, and the disk-low gate answers 507 and recovers.
	code, body := n.doAuth("GET", "/v1/receipts/0")
	if code != 404 { // index 0 is the registration, not evidence
		t.Fatalf("receipt of governance entry: %d %s", code, body)
	}
	n.lowDisk = true
	code, body = n.do("POST", "/v1/submissions", api.SubmitRequest{Submission: signedSubmission(t, n.origin, alice, []byte("disk"))})
	if code != 507 || !strings.Contains(string(body), "insufficient_storage") {
		t.Fatalf("low disk: %d %s", code, body)
	}
	n.lowDisk = false
	if code, body = n.do("POST", "/v1/submissions", api.SubmitRequest{Submission: signedSubmission(t, n.origin, alice, []byte("disk"))}); code != 200 {
		t.Fatalf("after disk recovers: %d %s", code, body)
	}
}

func resign(t *testing.T, s *evidence.Submission, origin string, key ed25519.PrivateKey) []byte {
	c := *s
	if err := c.Sign(origin, evidence.Ed25519Signer{Key: key}); err != nil {
		t.Fatal(err)
	}
	b, _ := c.Marshal()
	return b
}

// encodeSubmission encodes s as a client would send it, even with a bad or
// missing signature.
func encodeSubmission(t *testing.T, s *evidence.Submission) []byte {
	b, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func regEntry(t *testing.T, origin string, subject ed25519.PublicKey, admin ed25519.PrivateKey) api.GovernanceRequest {
	g := &evidence.Governance{Action: evidence.ActionRegisterSubmitter, IssuedMS: 42,
		Subject: evidence.PublicKey{Alg: evidence.Ed25519, Key: subject}, Admin: evidence.Ed25519Signer{Key: admin}.Public()}
	if err := g.Sign(origin, evidence.Ed25519Signer{Key: admin}); err != nil {
		t.Fatal(err)
	}
	enc, _ := g.Marshal()
	return api.GovernanceRequest{Entry: enc}
}

func govEntry(t *testing.T, origin string, admin ed25519.PrivateKey) api.GovernanceRequest {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	return regEntry(t, origin, pub, admin)
}
