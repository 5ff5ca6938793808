// Package verify is the offline verifier of cunzheng receipts and lookups.
// It is pure — no I/O, no clock, no network — and builds for GOOS=js
// GOARCH=wasm, so the CLI, the node and the browser page run this same code
// and accept exactly the same proofs.
//
// Trust starts at a pinned genesis fingerprint supplied by the caller, never
// at whatever manifest a receipt or a server offers: the manifest chain in
// the input must start at that fingerprint.
package verify

import (
	"bytes"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/cunzheng/cunzheng/chain/checkpoint"
	"github.com/cunzheng/cunzheng/evidence"
)

// Check names, shared by the CLI, the API and the web page.
const (
	CheckFormat     = "receipt format"
	CheckManifest   = "manifest"
	CheckDigest     = "digest matches"
	CheckSignature  = "submission signature"
	CheckOpening    = "metadata opening"
	CheckLeaf       = "leaf"
	CheckInclusion  = "inclusion proof"
	CheckCheckpoint = "checkpoint signatures vs policy"
	CheckTimestamp  = "timestamp token"
	CheckExtension  = "consistency to newer checkpoint"
)

// Check is one named step of a verification.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Verdict says what the verification found.
type Verdict string

// Verdicts. Mismatch means the proof material is sound for some evidence but
// not for the file given; Invalid means the proof material itself is bad.
const (
	Verified Verdict = "verified"
	Mismatch Verdict = "mismatch"
	Invalid  Verdict = "invalid"
	// Committed means a committed receipt whose every present part checks
	// out, but which has no final checkpoint yet: not proof on its own
	// until `cunzheng receipt refresh` makes it final.
	Committed Verdict = "committed"
)

// Result is the structured outcome. Fields other than Verdict and Checks
// are filled as far as verification got and must not be trusted unless
// Verdict is Verified.
type Result struct {
	Verdict    Verdict   `json:"verdict"`
	Reason     string    `json:"reason,omitempty"`
	Checks     []Check   `json:"checks"`
	Network    string    `json:"network"`
	Origin     string    `json:"origin,omitempty"`
	RecordID   string    `json:"record_id,omitempty"`
	Index      int64     `json:"index"`
	Height     uint64    `json:"block_height"`
	LeaderTime time.Time `json:"leader_time"`
	TreeSize   int64     `json:"tree_size"`
	Signers    []string  `json:"signers,omitempty"`
	Witnesses  []string  `json:"witnesses,omitempty"` // external witnesses that cosigned the checkpoint
	Digest     string    `json:"digest,omitempty"`
	Kind       string    `json:"kind,omitempty"`
	Size       uint64    `json:"size,omitempty"`
	Checkpoint string    `json:"checkpoint,omitempty"` // body text
	// Timestamp is what the earliest RFC 3161 token says (nil when the
	// receipt has none): the evidence existed, unchanged, no later than
	// Timestamp.Time.
	Timestamp *evidence.Token `json:"timestamp,omitempty"`
	// Extended describes the newer final checkpoint an extended receipt
	// was upgraded to; nil when the receipt is not extended.
	Extended   *Extension           `json:"extended,omitempty"`
	Opening    *evidence.Opening    `json:"-"`
	Submission *evidence.Submission `json:"-"`
	// Manifest is the version in force: the last of the receipt's chain.
	Manifest *evidence.Manifest `json:"-"`
	// CheckpointManifest is the version whose policy Checkpoint met and
	// whose time services Timestamp was checked against: Manifest, except
	// in an extended receipt whose checkpoint was signed under an earlier
	// version.
	CheckpointManifest *evidence.Manifest `json:"-"`
}

// Extension is what an extended receipt adds: a newer final checkpoint
// whose tree extends the tree of the receipt's own checkpoint.
type Extension struct {
	TreeSize   int64    `json:"tree_size"`
	Checkpoint string   `json:"checkpoint"` // body text
	Signers    []string `json:"signers,omitempty"`
	Witnesses  []string `json:"witnesses,omitempty"`
	// Timestamp is the earliest token over Checkpoint, if any. It is not
	// the receipt's time claim: Result.Timestamp, over the older
	// checkpoint, is earlier.
	Timestamp *evidence.Token `json:"timestamp,omitempty"`
}

// OK reports whether the verdict is Verified.
func (r *Result) OK() bool { return r.Verdict == Verified }

type run struct {
	res *Result
}

// step records a check; it returns err == nil.
func (r *run) step(name string, err error, okDetail string) bool {
	c := Check{Name: name, OK: err == nil, Detail: okDetail}
	if err != nil {
		c.Detail = err.Error()
		if r.res.Reason == "" {
			r.res.Reason = name + ": " + err.Error()
		}
	}
	r.res.Checks = append(r.res.Checks, c)
	return err == nil
}

// skip records checks that could not run because an earlier one failed.
func (r *run) skip(names ...string) {
	for _, n := range names {
		r.res.Checks = append(r.res.Checks, Check{Name: n, Detail: "not checked: an earlier check failed"})
	}
}

func (r *run) fail(v Verdict, rest ...string) *Result {
	r.skip(rest...)
	r.res.Verdict = v
	return r.res
}

// errMismatch marks a failure caused by the file given, not the proof.
var errMismatch = errors.New("mismatch")

// Receipt verifies a receipt file against the SHA-256 digest of the
// evidence file and the pinned genesis fingerprint.
func Receipt(receipt []byte, fileSHA256 []byte, pinned evidence.Fingerprint) *Result {
	r := &run{res: &Result{Network: pinned.String()}}
	all := []string{CheckManifest, CheckSignature, CheckOpening, CheckLeaf, CheckDigest, CheckInclusion, CheckCheckpoint, CheckTimestamp, CheckExtension}
	rc, err := evidence.ParseReceipt(receipt)
	if !r.step(CheckFormat, err, evidence.ReceiptHeader) {
		return r.fail(Invalid, all...)
	}
	versions, err := manifestChain(rc.Network, rc.Manifests, pinned)
	var m *evidence.Manifest
	if err == nil {
		m = versions[len(versions)-1]
	}
	if !r.step(CheckManifest, err, manifestDetail(m, pinned)) {
		return r.fail(Invalid, all[1:]...)
	}
	r.res.Manifest, r.res.Origin = m, m.Origin
	sub, err := evidence.ParseSubmission(rc.Submission)
	if err == nil {
		err = sub.Verify(m.Origin)
	}
	if !r.step(CheckSignature, err, "signed by submitter key "+keyHint(sub)) {
		return r.fail(Invalid, all[2:]...)
	}
	r.res.Submission, r.res.Digest, r.res.Kind, r.res.Size = sub, sub.Digests[0].String(), sub.Kind.String(), sub.Size
	if rc.Opening == nil {
		r.step(CheckOpening, nil, "withheld by the holder (metadata not disclosed)")
	} else {
		op, err := openingMatches(rc.Opening, sub)
		if !r.step(CheckOpening, err, "case, title, URL and file name match the signed commitment") {
			return r.fail(Invalid, all[3:]...)
		}
		r.res.Opening = op
	}
	leaf, err := evidenceLeaf(rc.Leaf, rc.Submission, sub)
	if !r.step(CheckLeaf, err, "leaf carries this submission's digests and hash") {
		return r.fail(Invalid, all[4:]...)
	}
	r.res.Height, r.res.LeaderTime = leaf.Height, leaf.Time()
	var derr error
	if len(fileSHA256) != 32 || subtle.ConstantTimeCompare(fileSHA256, sub.Primary()) != 1 {
		derr = fmt.Errorf("%w: file sha256 %x, receipt preserves %x", errMismatch, fileSHA256, sub.Primary())
	}
	digestOK := r.step(CheckDigest, derr, "file sha256 "+hex.EncodeToString(sub.Primary()))
	if rc.Committed != nil {
		// A committed receipt: everything present checked out, but there
		// is nothing yet that binds the record to a final tree.
		r.res.Index, r.res.RecordID = int64(*rc.Committed), evidence.RecordID(pinned, int64(*rc.Committed))
		pending := fmt.Sprintf("committed at index %d, not yet final: run `cunzheng receipt refresh` for the final receipt", *rc.Committed)
		r.res.Checks = append(r.res.Checks,
			Check{Name: CheckInclusion, Detail: pending}, Check{Name: CheckCheckpoint, Detail: pending}, Check{Name: CheckTimestamp, Detail: pending},
			Check{Name: CheckExtension, OK: true, Detail: "none"})
		r.res.Verdict = Committed
		if !digestOK {
			r.res.Verdict = Mismatch
		}
		return r.res
	}
	// Only the version in force may have signed the checkpoint of a
	// receipt that is not extended. An extended receipt's checkpoint may
	// have been signed under any version of its chain: the chain has moved
	// on since it was issued. That is sound because the consistency proof
	// binds the older checkpoint's root to the newer checkpoint's tree, and
	// the newer checkpoint must meet the policy of the version in force:
	// the record's inclusion then holds in a tree the current institutions
	// signed, whoever signed the older one, and the older one's tokens
	// still date a tree that the current one extends.
	candidates := []*evidence.Manifest{m}
	if rc.Extension != nil {
		candidates = slices.Clone(versions)
		slices.Reverse(candidates)
	}
	c1, met := proofChecks(r, rc.Leaf, rc.Proof, candidates, pinned)
	if c1 == nil {
		r.skip(CheckTimestamp, CheckExtension)
		return r.res
	}
	r.res.CheckpointManifest = met
	if !r.step(CheckTimestamp, timestampChecks(r.res, rc.Timestamps, met), timestampDetail(r.res.Timestamp, met)) {
		r.res.Verdict = Invalid
		r.skip(CheckExtension)
		return r.res
	}
	if rc.Extension == nil {
		r.step(CheckExtension, nil, "none")
	} else if !r.step(CheckExtension, extensionChecks(r.res, rc.Extension, c1.Checkpoint, m), extensionDetail(r.res.Extended, m)) {
		r.res.Verdict = Invalid
		return r.res
	}
	if !digestOK {
		r.res.Verdict = Mismatch
		return r.res
	}
	r.res.Verdict = Verified
	return r.res
}

// timestampChecks verifies every token over the proof's checkpoint body
// and keeps the earliest: the receipt claims the evidence existed no later
// than that time.
func timestampChecks(res *Result, tokens [][]byte, m *evidence.Manifest) error {
	tok, err := earliestToken(tokens, []byte(res.Checkpoint), m)
	if err != nil {
		return err
	}
	res.Timestamp = tok
	return nil
}

// earliestToken verifies every token over body under m and returns the
// earliest (nil when there are none).
func earliestToken(tokens [][]byte, body []byte, m *evidence.Manifest) (*evidence.Token, error) {
	var first *evidence.Token
	for i, t := range tokens {
		tok, err := evidence.VerifyToken(t, body, m)
		if err != nil {
			return nil, fmt.Errorf("token %d: %w", i+1, err)
		}
		if first == nil || tok.Time.Before(first.Time) {
			first = tok
		}
	}
	return first, nil
}

func timestampDetail(tok *evidence.Token, m *evidence.Manifest) string {
	if tok != nil {
		return fmt.Sprintf("existed no later than %s (UTC), RFC 3161 token serial %s by %s",
			tok.Time.Format("2006-01-02 15:04:05"), tok.Serial, tok.Authority)
	}
	if len(m.TimeServices()) > 0 {
		return "no token yet (the time service had not stamped this checkpoint); `cunzheng receipt refresh` adds it — until then the time is the leader's"
	}
	return "none: this network has no time service; the time is the leader's"
}

// Lookup verifies a node's answer to "is this digest preserved?": the leaf
// and tlog-proof it returned, against the manifest chain it returned, pinned
// at genesis. Nothing about the submitter is involved.
func Lookup(leafBytes, proof []byte, manifests [][]byte, fileSHA256 []byte, pinned evidence.Fingerprint) *Result {
	r := &run{res: &Result{Network: pinned.String()}}
	versions, err := manifestChain(pinned, manifests, pinned)
	var m *evidence.Manifest
	if err == nil {
		m = versions[len(versions)-1]
	}
	if !r.step(CheckManifest, err, manifestDetail(m, pinned)) {
		return r.fail(Invalid, CheckLeaf, CheckDigest, CheckInclusion, CheckCheckpoint)
	}
	r.res.Manifest, r.res.Origin = m, m.Origin
	leaf, err := evidence.ParseLeaf(leafBytes)
	if err == nil && leaf.Type != evidence.EntryEvidence {
		err = fmt.Errorf("leaf is a %d entry, not evidence", leaf.Type)
	}
	if !r.step(CheckLeaf, err, "evidence leaf") {
		return r.fail(Invalid, CheckDigest, CheckInclusion, CheckCheckpoint)
	}
	r.res.Height, r.res.LeaderTime, r.res.Digest = leaf.Height, leaf.Time(), leaf.Digests[0].String()
	var derr error
	if len(fileSHA256) != 32 || !bytes.Equal(fileSHA256, leaf.Digests[0].Value) {
		derr = fmt.Errorf("%w: file sha256 %x, leaf preserves %x", errMismatch, fileSHA256, leaf.Digests[0].Value)
	}
	digestOK := r.step(CheckDigest, derr, "file sha256 "+hex.EncodeToString(leaf.Digests[0].Value))
	if fin, _ := proofChecks(r, leafBytes, proof, []*evidence.Manifest{m}, pinned); fin == nil {
		return r.res
	}
	if !digestOK {
		r.res.Verdict = Mismatch
		return r.res
	}
	r.res.Verdict = Verified
	return r.res
}

// proofChecks runs the inclusion and checkpoint checks, setting an Invalid
// verdict on failure. The checkpoint must meet the policy of one of the
// candidate manifest versions, tried in order; it returns the checkpoint
// and the version it met, or nil on failure.
func proofChecks(r *run, leafBytes, proofText []byte, candidates []*evidence.Manifest, pinned evidence.Fingerprint) (*checkpoint.Final, *evidence.Manifest) {
	p, err := checkpoint.ParseProof(proofText)
	if err == nil && p.Extra != nil {
		err = errors.New("proof carries unauthenticated extra data")
	}
	if err != nil {
		r.step(CheckInclusion, err, "")
		r.fail(Invalid, CheckCheckpoint)
		return nil, nil
	}
	fin, m, err := openCheckpoint(p.Checkpoint, candidates)
	// The inclusion proof is checked against the checkpoint's tree, so the
	// checkpoint must parse first; its signatures are reported second.
	var body checkpoint.Checkpoint
	if fin != nil {
		body = fin.Checkpoint
	} else if n, perr := parseUnsignedBody(p.Checkpoint); perr == nil {
		body = n
	}
	ierr := errors.New("checkpoint unreadable")
	if body.Size > 0 {
		ierr = nil
		if p.Index >= body.Size {
			ierr = fmt.Errorf("index %d is outside the tree of size %d", p.Index, body.Size)
		} else if e := tlog.CheckRecord(p.Hashes, body.Size, body.Root, p.Index, tlog.RecordHash(leafBytes)); e != nil {
			ierr = fmt.Errorf("leaf is not at index %d of the tree of size %d: %v", p.Index, body.Size, e)
		}
	}
	inclOK := r.step(CheckInclusion, ierr, fmt.Sprintf("index %d in tree of size %d", p.Index, body.Size))
	r.res.Index, r.res.TreeSize = p.Index, body.Size
	r.res.RecordID = evidence.RecordID(pinned, p.Index)
	detail := ""
	if fin != nil {
		detail = signersDetail(fin.Signers, fin.Witnesses, m)
		if m != candidates[0] {
			detail += fmt.Sprintf(" (under manifest version %d, in force when it was signed)", m.Sequence)
		}
		r.res.Signers, r.res.Witnesses = fin.Signers, fin.Witnesses
		r.res.Checkpoint = string(fin.Checkpoint.Body())
	}
	cpOK := r.step(CheckCheckpoint, err, detail)
	if !inclOK || !cpOK {
		r.res.Verdict = Invalid
		return nil, nil
	}
	return fin, m
}

func signersDetail(signers, witnesses []string, m *evidence.Manifest) string {
	d := fmt.Sprintf("%d of %d required institutions signed: %v", len(signers), m.Threshold, signers)
	if len(witnesses) > 0 {
		d += fmt.Sprintf("; witnesses cosigned: %v", witnesses)
	}
	return d
}

// openCheckpoint opens a signed checkpoint under the policy of the first
// candidate manifest version it meets. Signatures by keys outside that
// version are refused: they prove nothing and would let bytes of the proof
// change unnoticed.
func openCheckpoint(signed []byte, candidates []*evidence.Manifest) (*checkpoint.Final, *evidence.Manifest, error) {
	var first error
	for _, m := range candidates {
		policy, err := m.Policy()
		var fin *checkpoint.Final
		if err == nil {
			fin, err = checkpoint.Open(signed, policy)
		}
		if err == nil && len(fin.Note.UnverifiedSigs) > 0 {
			err = fmt.Errorf("checkpoint carries %d signature(s) by keys not in the manifest", len(fin.Note.UnverifiedSigs))
		}
		if err == nil {
			return fin, m, nil
		}
		if first == nil {
			first = err
		}
	}
	if len(candidates) > 1 {
		return nil, nil, fmt.Errorf("%w (nor under any earlier manifest version)", first)
	}
	return nil, nil, first
}

// extensionChecks checks an extended receipt's upgrade from the tree of
// its checkpoint c1: the newer checkpoint is final under m, the version in
// force; its tree is larger and extends c1's (RFC 6962 consistency proof);
// and every token over it verifies under m.
func extensionChecks(res *Result, enc []byte, c1 checkpoint.Checkpoint, m *evidence.Manifest) error {
	e, err := evidence.ParseExtension(enc)
	if err != nil {
		return err
	}
	fin, _, err := openCheckpoint(e.Checkpoint, []*evidence.Manifest{m})
	if err != nil {
		return fmt.Errorf("newer checkpoint: %w", err)
	}
	if fin.Size <= c1.Size {
		return fmt.Errorf("newer checkpoint's tree of size %d is not larger than the proof's tree of size %d", fin.Size, c1.Size)
	}
	if err := tlog.CheckTree(e.Consistency, fin.Size, fin.Root, c1.Size, c1.Root); err != nil {
		return fmt.Errorf("the tree of size %d does not extend the proof's tree of size %d: %v", fin.Size, c1.Size, err)
	}
	x := &Extension{TreeSize: fin.Size, Checkpoint: string(fin.Checkpoint.Body()), Signers: fin.Signers, Witnesses: fin.Witnesses}
	if x.Timestamp, err = earliestToken(e.Timestamps, fin.Checkpoint.Body(), m); err != nil {
		return fmt.Errorf("newer checkpoint's %w", err)
	}
	res.Extended = x
	return nil
}

func extensionDetail(x *Extension, m *evidence.Manifest) string {
	if x == nil {
		return ""
	}
	d := fmt.Sprintf("extends to the final tree of size %d; %s", x.TreeSize, signersDetail(x.Signers, x.Witnesses, m))
	if x.Timestamp != nil {
		d += fmt.Sprintf("; stamped %s (UTC), token serial %s by %s",
			x.Timestamp.Time.Format("2006-01-02 15:04:05"), x.Timestamp.Serial, x.Timestamp.Authority)
	}
	return d
}

// parseUnsignedBody extracts the body of a signed note without verifying it,
// only so the inclusion check can say something useful when signatures fail.
func parseUnsignedBody(signed []byte) (checkpoint.Checkpoint, error) {
	body, _, ok := bytes.Cut(signed, []byte("\n\n"))
	if !ok {
		return checkpoint.Checkpoint{}, checkpoint.ErrMalformed
	}
	return checkpoint.ParseBody(string(body) + "\n")
}

// manifestChain checks that manifests start at the pinned genesis, that
// each update is valid under the version before it (evidence.
// CheckManifestChain, the rule the ledger applies), and returns every
// version, genesis first; the last is the one in force.
func manifestChain(claimed evidence.Fingerprint, manifests [][]byte, pinned evidence.Fingerprint) ([]*evidence.Manifest, error) {
	if claimed != pinned {
		return nil, fmt.Errorf("receipt is for network %s, not the pinned genesis %s", claimed, pinned)
	}
	if len(manifests) == 0 {
		return nil, errors.New("no manifest supplied")
	}
	chain, err := evidence.CheckManifestChain(pinned, manifests)
	if err != nil {
		return nil, err
	}
	out := make([]*evidence.Manifest, len(chain))
	for i, e := range chain {
		out[i] = e.Manifest
	}
	return out, nil
}

func manifestDetail(m *evidence.Manifest, pinned evidence.Fingerprint) string {
	if m == nil {
		return ""
	}
	if m.Sequence > 1 {
		return fmt.Sprintf("network %s, genesis %s…, manifest version %d", m.Origin, pinned.String()[:16], m.Sequence)
	}
	return fmt.Sprintf("network %s, genesis %s…", m.Origin, pinned.String()[:16])
}

func openingMatches(enc []byte, sub *evidence.Submission) (*evidence.Opening, error) {
	op, err := evidence.ParseOpening(enc)
	if err != nil {
		return nil, err
	}
	c, err := op.Commitment()
	if err != nil {
		return nil, err
	}
	if c != sub.Commitment {
		return nil, errors.New("opening does not match the submission's commitment")
	}
	return op, nil
}

func evidenceLeaf(enc, subBytes []byte, sub *evidence.Submission) (*evidence.Leaf, error) {
	leaf, err := evidence.ParseLeaf(enc)
	if err != nil {
		return nil, err
	}
	if leaf.Type != evidence.EntryEvidence {
		return nil, fmt.Errorf("leaf is not an evidence entry")
	}
	if leaf.SubHash != evidence.SubmissionHash(subBytes) {
		return nil, errors.New("leaf records a different submission")
	}
	if !evidence.DigestsEqual(leaf.Digests, sub.Digests) {
		return nil, errors.New("leaf digests differ from the submission's")
	}
	return leaf, nil
}

func keyHint(sub *evidence.Submission) string {
	if sub == nil || len(sub.Submitter.Key) < 4 {
		return ""
	}
	return hex.EncodeToString(sub.Submitter.Key[:4]) + "…"
}
