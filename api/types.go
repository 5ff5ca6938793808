package api

// JSON bodies of the HTTP API. Binary fields are standard base64 (Go's
// []byte JSON encoding); digests are lowercase hex. The OpenAPI description
// in api/openapi.yaml documents the same shapes.

// Limits on requests.
const (
	MaxBodyBytes   = 64 << 10 // one submission or governance entry request
	MaxBatchBytes  = 8 << 20  // a batch request
	MaxBatchSize   = 1000     // submissions per batch
	MaxLookupHits  = 100      // records returned by one digest lookup
	RequestTimeout = 30       // seconds a submit waits for finality before answering 503
)

// SubmitRequest preserves one signed Submission (canonical bytes).
type SubmitRequest struct {
	Submission []byte `json:"submission"`
}

// SubmitResponse answers a submission: where it is and its receipt (without
// the opening, which only the submitter holds).
type SubmitResponse struct {
	Index    uint64 `json:"index"`
	RecordID string `json:"record_id"`
	Existing bool   `json:"existing"` // true when this (submitter, digest) was already preserved
	// Final is false for a committed receipt: durable and committed, but
	// no final checkpoint within the deadline; `cunzheng receipt refresh`
	// fetches the final one later. Timestamped says the receipt carries
	// the time service's token.
	Final       bool   `json:"final"`
	Timestamped bool   `json:"timestamped"`
	Receipt     string `json:"receipt"` // receipt file text
}

// BatchRequest preserves up to MaxBatchSize submissions. The batch is checked
// whole first: if any submission is malformed, badly signed or from a key
// that may not submit, nothing is submitted and the error names it.
type BatchRequest struct {
	Submissions [][]byte `json:"submissions"`
}

// BatchResponse lists results in request order.
type BatchResponse struct {
	Results []SubmitResponse `json:"results"`
}

// GovernanceRequest carries a signed governance entry (canonical bytes).
type GovernanceRequest struct {
	Entry []byte `json:"entry"`
}

// GovernanceResponse says where the entry is.
type GovernanceResponse struct {
	Index    uint64 `json:"index"`
	Existing bool   `json:"existing"`
	Action   string `json:"action"`
}

// LookupResponse answers "is this digest preserved?" with only what leaves
// reveal: never who submitted it or why.
type LookupResponse struct {
	Digest    string         `json:"digest"`
	Preserved bool           `json:"preserved"`
	Records   []LookupRecord `json:"records"`
	Manifests [][]byte       `json:"manifests"` // manifest chain from genesis: canonical genesis, then update entries
	Network   string         `json:"network"`   // genesis fingerprint
}

// LookupRecord is one preserved record of a digest with its proof.
type LookupRecord struct {
	Index       uint64 `json:"index"`
	RecordID    string `json:"record_id"`
	Time        string `json:"time"` // leader's received time, RFC 3339 UTC
	BlockHeight uint64 `json:"block_height"`
	Leaf        []byte `json:"leaf"`
	Proof       string `json:"proof"` // C2SP tlog-proof@v1
	// ManifestVersions is how many versions of the response's manifest
	// chain lead to the one in force at this proof's checkpoint: verify
	// against Manifests[:ManifestVersions] (0, from older nodes: all).
	ManifestVersions int `json:"manifest_versions,omitempty"`
}

// ConsistencyResponse proves the tree of size New extends the tree of size Old.
type ConsistencyResponse struct {
	Old   uint64   `json:"old"`
	New   uint64   `json:"new"`
	Proof [][]byte `json:"proof"` // RFC 6962 consistency proof hashes
}

// StatusResponse describes the node.
type StatusResponse struct {
	Origin          string `json:"origin"`
	Network         string `json:"network"` // genesis fingerprint
	Node            string `json:"node"`    // this institution's key name
	Role            string `json:"role"`
	TreeSize        uint64 `json:"tree_size"`
	BlockHeight     uint64 `json:"block_height"`
	FinalSize       uint64 `json:"final_size"`
	Checkpoint      string `json:"checkpoint"` // latest final signed note
	DiskFreeBytes   uint64 `json:"disk_free_bytes"`
	DiskLowHeadroom bool   `json:"disk_low"` // true while submissions are refused with 507
	Version         string `json:"version"`
	// Replication (networks of several institutions).
	Leader   uint64   `json:"leader,omitempty"` // raft ID of the leader, 0 if unknown
	IsLeader bool     `json:"is_leader"`
	Term     uint64   `json:"term,omitempty"`
	Syncing  bool     `json:"syncing"` // catching up by block sync: neither signs nor serves reads
	Alarms   []string `json:"alarms,omitempty"`
}

// Error is the body of every non-2xx answer.
type Error struct {
	Err ErrorBody `json:"error"`
}

// ErrorBody names the problem: Code is stable for scripts, Message is for people.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// TimestampsResponse is the latest final checkpoint and every RFC 3161
// token (DER) over SHA-256 of its body, in commit order.
type TimestampsResponse struct {
	TreeSize   uint64   `json:"tree_size"`
	Checkpoint string   `json:"checkpoint"` // signed note
	Tokens     [][]byte `json:"tokens"`
}
