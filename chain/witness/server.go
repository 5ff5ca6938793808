package witness

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/cunzheng/cunzheng/chain/checkpoint"
)

// Log is a log the witness cosigns.
type Log struct {
	Origin    string
	Verifiers note.Verifiers // the log's checkpoint keys
	// Threshold is how many distinct keys' signatures a checkpoint must
	// carry (0 = 1): a court's network sets its manifest threshold, so no
	// single institution can have the witness cosign a tree alone.
	Threshold int
}

// Config configures a Server.
type Config struct {
	Logs   []Log
	Signer note.Signer // the witness's cosignature/v1 key (checkpoint.CosignatureSigner)
	State  State
	Logger *slog.Logger // nil = discard
}

// Server is a C2SP tlog-witness: an http.Handler answering add-checkpoint
// requests, to be mounted at <submission prefix>/add-checkpoint. It
// cosigns only three-line checkpoint bodies (no extension lines), the only
// form a cosignature/v1 signer here signs.
type Server struct {
	logs   map[string]Log
	signer note.Signer
	state  State
	log    *slog.Logger
}

// NewServer checks cfg and returns the witness handler.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Signer == nil || cfg.State == nil {
		return nil, errors.New("witness: Signer and State are required")
	}
	s := &Server{logs: map[string]Log{}, signer: cfg.Signer, state: cfg.State, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	for _, l := range cfg.Logs {
		if l.Origin == "" || l.Verifiers == nil {
			return nil, fmt.Errorf("witness: log %q needs an origin and keys", l.Origin)
		}
		if _, dup := s.logs[l.Origin]; dup {
			return nil, fmt.Errorf("witness: log %q listed twice", l.Origin)
		}
		if l.Threshold <= 0 {
			l.Threshold = 1
		}
		s.logs[l.Origin] = l
	}
	return s, nil
}

// Errors mapped to the statuses the spec names (see statusOf).
var (
	errUnknownLog  = errors.New("witness: unknown log origin")
	errSignature   = errors.New("witness: no valid signature by the log's keys")
	errOldAfterNew = errors.New("witness: old size is larger than the checkpoint size")
	errProof       = errors.New("witness: consistency proof does not verify")
	errMethod      = errors.New("witness: add-checkpoint takes POST")
)

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var cosig []byte
	err := errMethod
	if r.Method == http.MethodPost {
		var body []byte
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestSize))
		if err == nil {
			cosig, err = s.addCheckpoint(body)
		}
	}
	if err != nil {
		s.writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write(cosig)
}

// statusOf is the one place errors become HTTP statuses.
func statusOf(err error) int {
	var ce *ConflictError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ce):
		return http.StatusConflict
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrMalformed), errors.Is(err, errOldAfterNew):
		return http.StatusBadRequest
	case errors.Is(err, errUnknownLog):
		return http.StatusNotFound
	case errors.Is(err, errSignature):
		return http.StatusForbidden
	case errors.Is(err, errProof):
		return http.StatusUnprocessableEntity
	case errors.Is(err, errMethod):
		return http.StatusMethodNotAllowed
	}
	return http.StatusInternalServerError
}

func (s *Server) writeError(w http.ResponseWriter, err error) {
	status := statusOf(err)
	var ce *ConflictError
	if errors.As(err, &ce) {
		w.Header().Set("Content-Type", "text/x.tlog.size")
		w.WriteHeader(status)
		io.WriteString(w, strconv.FormatInt(ce.Latest.Size, 10)+"\n")
		return
	}
	if status == http.StatusInternalServerError {
		s.log.Error("witness: add-checkpoint failed", "err", err)
		err = errors.New("internal error")
	}
	if status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", http.MethodPost)
	}
	http.Error(w, err.Error(), status)
}

// addCheckpoint runs the spec's checks in its order, records the new tree
// by compare-and-swap and returns the cosignature line.
func (s *Server) addCheckpoint(body []byte) ([]byte, error) {
	req, err := ParseRequest(body)
	if err != nil {
		return nil, err
	}
	originLine, _, _ := bytes.Cut(req.Checkpoint, []byte("\n"))
	origin := string(originLine)
	l, ok := s.logs[origin]
	if !ok {
		return nil, fmt.Errorf("%w: %q", errUnknownLog, origin)
	}
	// Signatures in anything but canonical base64 verify nothing here
	// (note.Open alone would read past non-zero padding bits).
	_, sigs, _ := splitNote(req.Checkpoint)
	for _, line := range strings.Split(strings.TrimSuffix(string(sigs), "\n"), "\n") {
		if err := checkSignatureLine(line); err != nil {
			return nil, fmt.Errorf("%w: %v", errSignature, err)
		}
	}
	n, err := note.Open(req.Checkpoint, l.Verifiers)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errSignature, err)
	}
	if signers := distinctSigners(n); signers < l.Threshold {
		return nil, fmt.Errorf("%w: %d of %d required keys signed", errSignature, signers, l.Threshold)
	}
	c, err := checkpoint.ParseBody(n.Text)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if req.OldSize > c.Size {
		return nil, fmt.Errorf("%w: old %d, checkpoint %d", errOldAfterNew, req.OldSize, c.Size)
	}
	latest, err := s.state.Latest(origin)
	if err != nil {
		return nil, err
	}
	if latest.Size != req.OldSize {
		return nil, &ConflictError{Latest: latest}
	}
	switch {
	case req.OldSize == 0:
		// First checkpoint of this log: nothing to be consistent with.
	case req.OldSize == c.Size:
		if c.Root != latest.Root || len(req.Proof) != 0 {
			// The spec's 409 for a second root at the cosigned size.
			s.log.Warn("witness: log showed two roots for one size", "origin", origin, "size", c.Size, "checkpoint", string(req.Checkpoint))
			return nil, &ConflictError{Latest: latest}
		}
	default:
		if err := tlog.CheckTree(req.Proof, c.Size, c.Root, req.OldSize, latest.Root); err != nil {
			// Possibly proof of a fork: keep the signed request in the log.
			s.log.Warn("witness: inconsistent checkpoint", "origin", origin, "old", req.OldSize, "size", c.Size, "checkpoint", string(req.Checkpoint))
			return nil, fmt.Errorf("%w: %v", errProof, err)
		}
	}
	if err := s.state.Swap(origin, latest, Tree{Size: c.Size, Root: c.Root}); err != nil {
		return nil, err
	}
	signed, err := note.Sign(&note.Note{Text: n.Text}, s.signer)
	if err != nil {
		return nil, err
	}
	s.log.Debug("witness: cosigned", "origin", origin, "size", c.Size)
	return signed[len(n.Text)+1:], nil
}

func distinctSigners(n *note.Note) int {
	seen := map[string]bool{}
	for _, sig := range n.Sigs {
		seen[sig.Name] = true
	}
	return len(seen)
}
