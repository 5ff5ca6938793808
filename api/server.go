// Package api serves a cunzheng node over HTTP: the JSON API for submitting
// evidence and fetching receipts and proofs, and the C2SP tlog-tiles read
// endpoints (/checkpoint, /tile/…) so any tlog client can mirror the log.
// Public reads reveal only what leaves reveal; receipts, which name the
// submitter, need the node's API token and every such read is logged.
package api

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cunzheng/cunzheng/chain"
	"github.com/cunzheng/cunzheng/chain/store"
	"github.com/cunzheng/cunzheng/evidence"
	"github.com/cunzheng/cunzheng/evidence/ledger"
)

// Version is reported by /v1/status.
const Version = "0.1.0"

// Config configures a Server.
type Config struct {
	Ledger   *ledger.Ledger
	Node     string       // this institution's key name
	Role     string       // its role
	Token    string       // bearer token for receipt reads; "" disables them
	Logger   *slog.Logger // nil = discard
	Manifest []byte       // the genesis manifest file (JSON) served at /v1/manifest
	// DiskFree reports free bytes at the data directory and whether the
	// node is below its headroom (nil = not reported).
	DiskFree func() (free uint64, low bool)
	// SubmitTimeout bounds how long a submit waits for its final receipt
	// (0 = RequestTimeout seconds).
	SubmitTimeout time.Duration
	// Extra registers more handlers (web pages, metrics) on the same mux.
	Extra func(*http.ServeMux)
	// Consensus reports the replication state (nil in a network of one).
	Consensus func() (leader uint64, isLeader bool, term uint64)
	// Witness, if set, serves C2SP tlog-witness POST /add-checkpoint: this
	// node witnesses other logs (chain/witness.Server).
	Witness http.Handler
}

// Server is the node's HTTP handler.
type Server struct {
	cfg Config
	l   *ledger.Ledger
	log *slog.Logger
	mux *http.ServeMux
}

// NewServer returns the HTTP handler of a node.
func NewServer(cfg Config) *Server {
	s := &Server{cfg: cfg, l: cfg.Ledger, log: cfg.Logger, mux: http.NewServeMux()}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.cfg.SubmitTimeout <= 0 {
		s.cfg.SubmitTimeout = RequestTimeout * time.Second
	}
	m := s.mux
	m.HandleFunc("POST /v1/submissions", s.handleSubmit)
	m.HandleFunc("POST /v1/submissions/batch", s.handleBatch)
	m.HandleFunc("POST /v1/governance", s.handleGovernance)
	m.HandleFunc("GET /v1/lookup/{digest}", s.serving(s.handleLookup))
	m.HandleFunc("GET /v1/receipts/{index}", s.serving(s.handleReceipt))
	m.HandleFunc("GET /v1/consistency", s.serving(s.handleConsistency))
	m.HandleFunc("GET /v1/status", s.handleStatus)
	m.HandleFunc("GET /v1/manifest", s.handleManifest)
	m.HandleFunc("GET /v1/manifests", s.handleManifests)
	m.HandleFunc("GET /checkpoint", s.serving(s.handleCheckpoint))
	m.HandleFunc("GET /v1/timestamps", s.serving(s.handleTimestamps))
	m.HandleFunc("GET /tile/", s.serving(s.handleTile))
	if cfg.Witness != nil {
		m.HandleFunc("POST /add-checkpoint", cfg.Witness.ServeHTTP)
	}
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, &httpError{http.StatusNotFound, "no_such_endpoint", "no endpoint " + r.Method + " " + r.URL.Path})
	})
	if cfg.Extra != nil {
		cfg.Extra(m)
	}
	return s
}

// serving refuses reads while the replica catches up: a half-synced log
// would answer "not preserved" for records it simply lacks.
func (s *Server) serving(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.l.Syncing() {
			writeError(w, r, &httpError{http.StatusServiceUnavailable, "syncing", "this node is catching up with the network; ask another node or retry"})
			return
		}
		h(w, r)
	}
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// httpError is an error with its own status and code.
type httpError struct {
	status  int
	code    string
	message string
}

func (e *httpError) Error() string { return e.message }

func badRequest(code, format string, args ...any) error {
	return &httpError{http.StatusBadRequest, code, fmt.Sprintf(format, args...)}
}

// statusOf is the one place errors become HTTP statuses.
func statusOf(err error) (int, string) {
	var he *httpError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &he):
		return he.status, he.code
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, "body_too_large"
	case errors.Is(err, ledger.ErrInvalid):
		return http.StatusBadRequest, "invalid_entry"
	case errors.Is(err, ledger.ErrNotRegistered):
		return http.StatusForbidden, "not_registered"
	case errors.Is(err, ledger.ErrRevoked):
		return http.StatusForbidden, "revoked"
	case errors.Is(err, ledger.ErrUnauthorized):
		return http.StatusForbidden, "not_admin"
	case errors.Is(err, ledger.ErrConflict):
		return http.StatusConflict, "conflict"
	case errors.Is(err, ledger.ErrNotFound), errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrBeyondTree):
		return http.StatusNotFound, "not_found"
	case errors.Is(err, ledger.ErrInsufficientDisk):
		return http.StatusInsufficientStorage, "insufficient_storage"
	case errors.Is(err, ledger.ErrNotFinal):
		return http.StatusServiceUnavailable, "not_final"
	case errors.Is(err, ledger.ErrOverloaded):
		return http.StatusServiceUnavailable, "overloaded"
	case errors.Is(err, ledger.ErrClosed):
		return http.StatusServiceUnavailable, "shutting_down"
	case errors.Is(err, ledger.ErrNotLeader):
		return http.StatusServiceUnavailable, "no_leader"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable, "timeout"
	}
	return http.StatusInternalServerError, "internal"
}

func writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, code := statusOf(err)
	msg := err.Error()
	if status == http.StatusInternalServerError {
		msg = "internal error; see the node's log"
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, status, Error{Err: ErrorBody{Code: code, Message: msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// decode strictly reads one JSON value of at most limit bytes.
func decode(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return &httpError{http.StatusUnsupportedMediaType, "unsupported_media_type", "send Content-Type: application/json"}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return badRequest("malformed_json", "request body is not the expected JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("malformed_json", "request body has data after the JSON value")
	}
	return nil
}

func (s *Server) handleSubmit(w http.ResponseWriter, r *http.Request) {
	var req SubmitRequest
	if err := decode(w, r, MaxBodyBytes, &req); err != nil {
		writeError(w, r, err)
		return
	}
	if len(req.Submission) == 0 {
		writeError(w, r, badRequest("missing_submission", "field \"submission\" (base64 canonical Submission) is required"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.SubmitTimeout)
	defer cancel()
	idx, existing, err := s.l.Submit(ctx, req.Submission)
	if err != nil {
		writeError(w, r, err)
		return
	}
	rc, final, err := s.l.ReceiptNow(idx)
	if err != nil {
		writeError(w, r, err)
		return
	}
	status := http.StatusOK
	if !final {
		status = http.StatusAccepted // committed and durable; the final receipt follows
	}
	writeJSON(w, status, s.submitResponse(idx, existing, rc))
}

func (s *Server) submitResponse(idx uint64, existing bool, rc *evidence.Receipt) SubmitResponse {
	return SubmitResponse{
		Index: idx, RecordID: evidence.RecordID(s.l.Fingerprint(), int64(idx)),
		Existing: existing, Final: rc.Committed == nil, Timestamped: len(rc.Timestamps) > 0,
		Receipt: string(rc.Marshal()),
	}
}

func (s *Server) handleBatch(w http.ResponseWriter, r *http.Request) {
	var req BatchRequest
	if err := decode(w, r, MaxBatchBytes, &req); err != nil {
		writeError(w, r, err)
		return
	}
	n := len(req.Submissions)
	if n == 0 || n > MaxBatchSize {
		writeError(w, r, badRequest("bad_batch_size", "a batch holds 1 to %d submissions, got %d", MaxBatchSize, n))
		return
	}
	prepared := make([]*ledger.Prepared, n)
	for i, sb := range req.Submissions {
		p, err := s.l.Prepare(sb)
		if err != nil {
			status, code := statusOf(err)
			writeError(w, r, &httpError{status, code, fmt.Sprintf("submission %d: %v; nothing in this batch was submitted", i, err)})
			return
		}
		prepared[i] = p
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.SubmitTimeout)
	defer cancel()
	type result struct {
		idx      uint64
		existing bool
		err      error
	}
	results := make([]result, n)
	done := make(chan struct{})
	for i, p := range prepared {
		go func() {
			idx, ex, err := s.l.SubmitPrepared(ctx, p)
			results[i] = result{idx, ex, err}
			done <- struct{}{}
		}()
	}
	for range prepared {
		<-done
	}
	idxs := make([]uint64, n)
	for i, res := range results {
		if res.err != nil {
			status, code := statusOf(res.err)
			writeError(w, r, &httpError{status, code, fmt.Sprintf("submission %d: %v (earlier items may be preserved; retrying the batch is safe)", i, res.err)})
			return
		}
		idxs[i] = res.idx
	}
	receipts, err := s.l.Receipts(idxs)
	if errors.Is(err, ledger.ErrNotFinal) {
		// Some records missed the deadline: each gets the best receipt
		// there is, final or committed.
		receipts = make([]*evidence.Receipt, n)
		for i, idx := range idxs {
			if receipts[i], _, err = s.l.ReceiptNow(idx); err != nil {
				break
			}
		}
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := BatchResponse{Results: make([]SubmitResponse, n)}
	for i, rc := range receipts {
		out.Results[i] = s.submitResponse(idxs[i], results[i].existing, rc)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleGovernance(w http.ResponseWriter, r *http.Request) {
	var req GovernanceRequest
	if err := decode(w, r, MaxBodyBytes, &req); err != nil {
		writeError(w, r, err)
		return
	}
	g, err := evidence.ParseGovernance(req.Entry)
	if err != nil {
		writeError(w, r, fmt.Errorf("%w: %w", ledger.ErrInvalid, err))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.SubmitTimeout)
	defer cancel()
	idx, existing, err := s.l.SubmitGovernance(ctx, req.Entry)
	if err != nil {
		writeError(w, r, err)
		return
	}
	s.log.Info("governance entry", "index", idx, "action", g.Action.String(), "subject", hex.EncodeToString(g.Subject.Key), "existing", existing)
	writeJSON(w, http.StatusOK, GovernanceResponse{Index: idx, Existing: existing, Action: g.Action.String()})
}

func (s *Server) handleLookup(w http.ResponseWriter, r *http.Request) {
	d, err := hex.DecodeString(r.PathValue("digest"))
	if err != nil || len(d) != 32 {
		writeError(w, r, badRequest("bad_digest", "want a SHA-256 digest as 64 hex digits"))
		return
	}
	idxs, err := s.l.LookupDigest(d)
	if err != nil {
		writeError(w, r, err)
		return
	}
	resp := LookupResponse{Digest: hex.EncodeToString(d), Network: s.l.Fingerprint().String()}
	for _, idx := range idxs {
		if len(resp.Records) == MaxLookupHits {
			break
		}
		rec, err := s.l.Record(idx)
		if errors.Is(err, ledger.ErrNotFinal) {
			continue // committed moments ago; its checkpoint follows
		}
		if err != nil {
			writeError(w, r, err)
			return
		}
		leaf, err := evidence.ParseLeaf(rec.Leaf)
		if err != nil {
			writeError(w, r, fmt.Errorf("stored leaf %d: %w", idx, err))
			return
		}
		resp.Records = append(resp.Records, LookupRecord{
			Index: idx, RecordID: evidence.RecordID(s.l.Fingerprint(), int64(idx)),
			Time: leaf.Time().Format(time.RFC3339Nano), BlockHeight: leaf.Height,
			Leaf: rec.Leaf, Proof: string(rec.Proof),
			ManifestVersions: len(s.l.ManifestsFor(rec.CheckpointSize)),
		})
	}
	// Read after the records: the chain only grows, so it holds every
	// record's prefix.
	resp.Manifests = s.l.Manifests()
	if len(resp.Records) == 0 {
		writeError(w, r, &httpError{http.StatusNotFound, "not_found", "no evidence with sha256 " + resp.Digest + " is preserved in this log"})
		return
	}
	resp.Preserved = true
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) authorized(r *http.Request) bool {
	if s.cfg.Token == "" {
		return false
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.Token)) == 1
}

func (s *Server) handleReceipt(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		writeError(w, r, &httpError{http.StatusUnauthorized, "unauthorized",
			"receipts name the submitter: send the node's API token as 'Authorization: Bearer TOKEN' (submitters get theirs by re-submitting)"})
		return
	}
	idx, err := parseUint(r.PathValue("index"), "index")
	if err != nil {
		writeError(w, r, err)
		return
	}
	rc, err := s.l.Receipt(idx)
	if err != nil {
		writeError(w, r, err)
		return
	}
	// Reading a Submission reveals who preserved what: leave a trail.
	s.log.Info("receipt read", "index", idx, "remote", r.RemoteAddr)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write(rc.Marshal())
}

func parseUint(v, name string) (uint64, error) {
	n, err := strconv.ParseUint(v, 10, 63)
	if err != nil || strconv.FormatUint(n, 10) != v {
		return 0, badRequest("bad_"+name, "%s must be a non-negative decimal integer, got %q", name, v)
	}
	return n, nil
}

func (s *Server) handleConsistency(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	oldN, err := parseUint(q.Get("old"), "old")
	if err != nil {
		writeError(w, r, err)
		return
	}
	newN, err := parseUint(q.Get("new"), "new")
	if err != nil {
		writeError(w, r, err)
		return
	}
	if oldN == 0 || oldN > newN {
		writeError(w, r, badRequest("bad_range", "want 0 < old <= new, got old=%d new=%d", oldN, newN))
		return
	}
	if size := s.l.Store().TreeSize(); newN > size {
		writeError(w, r, &httpError{http.StatusNotFound, "not_found", fmt.Sprintf("new=%d is beyond the log size %d", newN, size)})
		return
	}
	p, err := s.l.Store().ConsistencyProof(oldN, newN)
	if err != nil {
		writeError(w, r, err)
		return
	}
	resp := ConsistencyResponse{Old: oldN, New: newN, Proof: make([][]byte, len(p))}
	for i, h := range p {
		resp.Proof[i] = h[:]
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	st := s.l.Store()
	resp := StatusResponse{
		Origin: s.l.Manifest().Origin, Network: s.l.Fingerprint().String(),
		Node: s.cfg.Node, Role: s.cfg.Role, TreeSize: st.TreeSize(), Version: Version,
	}
	if h, ok := st.Head(); ok {
		resp.BlockHeight = h.Height
	}
	if size, signed, err := st.LatestCheckpoint(); err == nil {
		resp.FinalSize, resp.Checkpoint = size, string(signed)
	}
	if s.cfg.DiskFree != nil {
		resp.DiskFreeBytes, resp.DiskLowHeadroom = s.cfg.DiskFree()
	}
	if s.cfg.Consensus != nil {
		resp.Leader, resp.IsLeader, resp.Term = s.cfg.Consensus()
	} else {
		resp.IsLeader = true
	}
	resp.Syncing, resp.Alarms = s.l.Syncing(), s.l.Alarms()
	writeJSON(w, http.StatusOK, resp)
}

// handleManifests serves the manifest chain as far as this replica's log
// goes (evidence.ChainFile): what `cunzheng member` extends and what a
// member added later starts with.
func (s *Server) handleManifests(w http.ResponseWriter, r *http.Request) {
	out, err := evidence.MarshalChainFile(s.l.Fingerprint(), s.l.Manifests())
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(out)
}

func (s *Server) handleManifest(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(s.cfg.Manifest)
}

func (s *Server) handleCheckpoint(w http.ResponseWriter, r *http.Request) {
	_, signed, err := s.l.Store().LatestCheckpoint()
	if err != nil {
		writeError(w, r, &httpError{http.StatusNotFound, "not_found", "the log is empty: no checkpoint yet"})
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(signed)
}

// handleTimestamps returns the latest final checkpoint with every token
// over it: the first, then the freshness re-stamps of an idle network.
func (s *Server) handleTimestamps(w http.ResponseWriter, r *http.Request) {
	size, signed, err := s.l.Store().LatestCheckpoint()
	if err != nil {
		writeError(w, r, &httpError{http.StatusNotFound, "not_found", "the log is empty: no checkpoint yet"})
		return
	}
	toks, err := s.l.Tokens(size)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, TimestampsResponse{TreeSize: size, Checkpoint: string(signed), Tokens: toks})
}

// handleTile serves C2SP tlog-tiles hash tiles and entry bundles for the
// tree of the latest final checkpoint.
func (s *Server) handleTile(w http.ResponseWriter, r *http.Request) {
	t, err := chain.ParseTilePath(strings.TrimPrefix(r.URL.Path, "/"))
	if err != nil {
		writeError(w, r, &httpError{http.StatusNotFound, "bad_tile_path", err.Error()})
		return
	}
	size, _, err := s.l.Store().LatestCheckpoint()
	if err != nil {
		writeError(w, r, &httpError{http.StatusNotFound, "not_found", "the log is empty"})
		return
	}
	data, err := s.l.Store().ReadTile(t, size)
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	if t.Width == 0 {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	w.Write(data)
}
