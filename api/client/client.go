// Package client is a small Go client for the cunzheng node HTTP API (the
// JSON contract in package api). It bounds every response body it reads and
// turns every non-2xx answer into an *Error carrying the API's error code.
package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cunzheng/cunzheng/api"
	"github.com/cunzheng/cunzheng/evidence"
)

// Limits on what the client reads from a node. A response over its limit is
// an error, never silently truncated.
const (
	MaxResponseBytes      = 16 << 20  // any JSON answer but a batch
	MaxBatchResponseBytes = 256 << 20 // a batch answer: up to api.MaxBatchSize receipts
	MaxCheckpointBytes    = 1 << 20   // a signed note
	MaxManifestFileBytes  = 4 << 20   // the genesis manifest file (JSON)
	MaxErrorBodyBytes     = 64 << 10  // the body of a non-2xx answer
)

// DefaultTimeout bounds one whole request. It exceeds api.RequestTimeout so
// a submission that waits for finality on the node gets the node's answer
// (a receipt, or 503) rather than a client-side timeout.
const DefaultTimeout = (api.RequestTimeout + 30) * time.Second

// Sentinel errors matched by *Error through errors.Is.
var (
	// ErrNotFound: the node has no such record, digest or index (HTTP 404).
	ErrNotFound = errors.New("client: not found")
	// ErrUnavailable: the node asks to retry later (HTTP 503).
	ErrUnavailable = errors.New("client: node unavailable, retry later")
	// ErrInsufficientStorage: the node is short of disk (HTTP 507).
	ErrInsufficientStorage = errors.New("client: node short of disk")
	// ErrUnauthorized: a bearer token is missing or wrong (HTTP 401 or 403).
	ErrUnauthorized = errors.New("client: not authorised")
)

// Error is a non-2xx answer from the node.
type Error struct {
	StatusCode int
	Code       string // the API's stable error code; empty if the body was not an api.Error
	Message    string
}

// Error renders "HTTP 404 not_found: message".
func (e *Error) Error() string {
	code := e.Code
	if code == "" {
		code = strings.ReplaceAll(strings.ToLower(http.StatusText(e.StatusCode)), " ", "_")
	}
	if e.Message == "" {
		return fmt.Sprintf("HTTP %d %s", e.StatusCode, code)
	}
	return fmt.Sprintf("HTTP %d %s: %s", e.StatusCode, code, e.Message)
}

// Is lets errors.Is match the sentinel errors by status code.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrUnavailable:
		return e.StatusCode == http.StatusServiceUnavailable
	case ErrInsufficientStorage:
		return e.StatusCode == http.StatusInsufficientStorage
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden
	}
	return false
}

// Client talks to one node. It is safe for concurrent use.
type Client struct {
	base  *url.URL
	hc    *http.Client
	token string
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient replaces the default HTTP client (DefaultTimeout, dial and
// TLS handshake timeouts).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithToken sends "Authorization: Bearer token" on requests that need it.
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// New returns a client for the node at baseURL, e.g. "http://127.0.0.1:8080".
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("node URL %q: %w", baseURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("node URL %q: want http:// or https:// followed by a host, without query", baseURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	c := &Client{base: u, hc: defaultHTTPClient()}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

func defaultHTTPClient() *http.Client {
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: DefaultTimeout,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{Timeout: DefaultTimeout, Transport: t}
}

// URL returns the node's base URL.
func (c *Client) URL() string { return c.base.String() }

// Submit preserves one signed Submission (canonical bytes).
func (c *Client) Submit(ctx context.Context, submission []byte) (*api.SubmitResponse, error) {
	var out api.SubmitResponse
	err := c.postJSON(ctx, "/v1/submissions", api.SubmitRequest{Submission: submission}, &out, MaxResponseBytes)
	if err != nil {
		return nil, fmt.Errorf("submit: %w", err)
	}
	return &out, nil
}

// SubmitBatch preserves up to api.MaxBatchSize submissions at once.
func (c *Client) SubmitBatch(ctx context.Context, submissions [][]byte) (*api.BatchResponse, error) {
	if len(submissions) > api.MaxBatchSize {
		return nil, fmt.Errorf("submit batch: %d submissions, limit %d", len(submissions), api.MaxBatchSize)
	}
	var out api.BatchResponse
	err := c.postJSON(ctx, "/v1/submissions/batch", api.BatchRequest{Submissions: submissions}, &out, MaxBatchResponseBytes)
	if err != nil {
		return nil, fmt.Errorf("submit batch: %w", err)
	}
	if len(out.Results) != len(submissions) {
		return nil, fmt.Errorf("submit batch: node answered %d results for %d submissions", len(out.Results), len(submissions))
	}
	return &out, nil
}

// Governance submits a signed governance entry (canonical bytes).
func (c *Client) Governance(ctx context.Context, entry []byte) (*api.GovernanceResponse, error) {
	var out api.GovernanceResponse
	if err := c.postJSON(ctx, "/v1/governance", api.GovernanceRequest{Entry: entry}, &out, MaxResponseBytes); err != nil {
		return nil, fmt.Errorf("governance: %w", err)
	}
	return &out, nil
}

// Lookup asks whether a SHA-256 evidence digest is preserved. An unknown
// digest is an error matching ErrNotFound.
func (c *Client) Lookup(ctx context.Context, sha256Digest []byte) (*api.LookupResponse, error) {
	if len(sha256Digest) != evidence.SHA256.Size() {
		return nil, fmt.Errorf("lookup: digest is %d bytes, want 32 (sha256)", len(sha256Digest))
	}
	hexd := hex.EncodeToString(sha256Digest)
	var out api.LookupResponse
	if err := c.getJSON(ctx, "/v1/lookup/"+hexd, &out); err != nil {
		return nil, fmt.Errorf("lookup %s: %w", hexd, err)
	}
	return &out, nil
}

// Receipt fetches the receipt file of the record at index. The node requires
// a bearer token (WithToken).
func (c *Client) Receipt(ctx context.Context, index uint64) ([]byte, error) {
	b, err := c.getRaw(ctx, "/v1/receipts/"+strconv.FormatUint(index, 10), evidence.MaxReceiptSize, true)
	if err != nil {
		return nil, fmt.Errorf("receipt %d: %w", index, err)
	}
	return b, nil
}

// Consistency fetches a proof that the tree of size newSize extends the tree
// of size oldSize.
func (c *Client) Consistency(ctx context.Context, oldSize, newSize uint64) (*api.ConsistencyResponse, error) {
	q := url.Values{"old": {strconv.FormatUint(oldSize, 10)}, "new": {strconv.FormatUint(newSize, 10)}}
	var out api.ConsistencyResponse
	if err := c.getJSON(ctx, "/v1/consistency?"+q.Encode(), &out); err != nil {
		return nil, fmt.Errorf("consistency %d→%d: %w", oldSize, newSize, err)
	}
	return &out, nil
}

// Timestamps fetches the latest final checkpoint and the RFC 3161 tokens
// over it (the first, then any re-stamps); an empty list when the time
// service has not stamped it yet or the network has none.
func (c *Client) Timestamps(ctx context.Context) (*api.TimestampsResponse, error) {
	var out api.TimestampsResponse
	if err := c.getJSON(ctx, "/v1/timestamps", &out); err != nil {
		return nil, fmt.Errorf("timestamps: %w", err)
	}
	return &out, nil
}

// Status describes the node.
func (c *Client) Status(ctx context.Context) (*api.StatusResponse, error) {
	var out api.StatusResponse
	if err := c.getJSON(ctx, "/v1/status", &out); err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	return &out, nil
}

// Manifest fetches the genesis manifest file (JSON) as raw bytes; parse it
// with evidence.ParseManifestFile and compare its fingerprint with a pinned
// one before trusting it.
func (c *Client) Manifest(ctx context.Context) ([]byte, error) {
	b, err := c.getRaw(ctx, "/v1/manifest", MaxManifestFileBytes, false)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	return b, nil
}

// ManifestChain fetches the manifest chain file (evidence.ChainFile) as
// raw bytes; check it with evidence.ParseChainFile against a pinned
// genesis fingerprint before trusting it.
func (c *Client) ManifestChain(ctx context.Context) ([]byte, error) {
	b, err := c.getRaw(ctx, "/v1/manifests", MaxManifestFileBytes, false)
	if err != nil {
		return nil, fmt.Errorf("manifest chain: %w", err)
	}
	return b, nil
}

// Checkpoint fetches the latest final checkpoint (a signed note).
func (c *Client) Checkpoint(ctx context.Context) ([]byte, error) {
	b, err := c.getRaw(ctx, "/checkpoint", MaxCheckpointBytes, false)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	return b, nil
}

func (c *Client) endpoint(pathAndQuery string) string {
	return c.base.String() + pathAndQuery
}

func (c *Client) postJSON(ctx context.Context, path string, in, out any, limit int64) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint(path), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	b, err := c.do(req, limit)
	if err != nil {
		return err
	}
	return decodeJSON(b, out)
}

func (c *Client) getJSON(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.endpoint(path), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	b, err := c.do(req, MaxResponseBytes)
	if err != nil {
		return err
	}
	return decodeJSON(b, out)
}

func (c *Client) getRaw(ctx context.Context, path string, limit int64, auth bool) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.endpoint(path), nil)
	if err != nil {
		return nil, err
	}
	if auth && c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return c.do(req, limit)
}

// do sends req and returns the body of a 2xx answer, read up to limit bytes.
func (c *Client) do(req *http.Request, limit int64) ([]byte, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, errorFromResponse(resp)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("response larger than the %d-byte limit", limit)
	}
	return b, nil
}

func errorFromResponse(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, MaxErrorBodyBytes))
	e := &Error{StatusCode: resp.StatusCode}
	var ae api.Error
	if json.Unmarshal(b, &ae) == nil && ae.Err.Code != "" {
		e.Code, e.Message = ae.Err.Code, ae.Err.Message
		return e
	}
	// Not an api.Error (a proxy's page, say): keep a short, one-line excerpt.
	msg := strings.Join(strings.Fields(string(b)), " ")
	if r := []rune(msg); len(r) > 200 {
		msg = string(r[:200]) + "…"
	}
	e.Message = msg
	return e
}

func decodeJSON(b []byte, out any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("decode response: %w", err)
	}
	if dec.More() {
		return errors.New("decode response: trailing data after the JSON value")
	}
	return nil
}
