package verify_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/cunzheng/cunzheng/chain/checkpoint"
	"github.com/cunzheng/cunzheng/evidence"
	"github.com/cunzheng/cunzheng/evidence/tsa"
	"github.com/cunzheng/cunzheng/evidence/verify"
)

const origin = "evidence.court.example/v1"

// network is an in-memory log of evidence records under a one-member
// genesis manifest.
type network struct {
	manifest    []byte
	fp          evidence.Fingerprint
	signer      note.Signer
	signers     []note.Signer // every voting member's, signer first
	files       [][]byte
	subs        [][]byte
	openings    [][]byte
	leaves      [][]byte
	hashes      map[int64]tlog.Hash
	size        int64
	root        tlog.Hash
	signedCheck []byte
	m           *evidence.Manifest
	admin       ed25519.PrivateKey
}

func newNetwork(t testing.TB, name string, n int) *network {
	t.Helper()
	return newNetworkWith(t, name, n, nil)
}

// newNetworkWith is newNetwork with the time service ta (when not nil) as a
// second, non-voting member.
func newNetworkWith(t testing.TB, name string, n int, ta *tsa.Authority) *network {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "court-a."+name)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	admin, adminKey, _ := ed25519.GenerateKey(rand.Reader)
	m := &evidence.Manifest{
		Origin:   "evidence." + name + "/v1",
		Sequence: 1,
		Members: []evidence.Member{{
			Name: "court-a." + name, Role: evidence.RoleCourt, RaftID: 1,
			NoteKey: vkey, AdminKey: admin,
		}},
		Threshold: 1,
		CreatedAt: 1767225600000,
	}
	signers := []note.Signer{signer}
	if ta != nil {
		tskey, tvkey, _ := note.GenerateKey(rand.Reader, "tsc."+name)
		tsigner, _ := note.NewSigner(tskey)
		signers = append(signers, tsigner)
		tadmin, _, _ := ed25519.GenerateKey(rand.Reader)
		m.Members = append(m.Members, evidence.Member{Name: "tsc." + name, Role: evidence.RoleTimeService, RaftID: 2,
			NoteKey: tvkey, AdminKey: tadmin, TSACerts: ta.CertChain()})
		m.Threshold = 2
	}
	nw := &network{signer: signer, signers: signers, hashes: map[int64]tlog.Hash{}, m: m, admin: adminKey}
	if nw.manifest, err = m.Marshal(); err != nil {
		t.Fatal(err)
	}
	nw.fp = sha256.Sum256(nw.manifest)
	_, submitterKey, _ := ed25519.GenerateKey(rand.Reader)
	submitter := evidence.Ed25519Signer{Key: submitterKey}
	for i := 0; i < n; i++ {
		file := []byte(fmt.Sprintf("evidence file %d of %s", i, name))
		op := &evidence.Opening{CaseRef: fmt.Sprintf("(2026)京0491民初%d号", i), Title: "scan", FileName: fmt.Sprintf("f%d.pdf", i)}
		if err := op.DeriveSalt(submitterKey.Seed(), evidence.SHA256Digest(file).Value); err != nil {
			t.Fatal(err)
		}
		com, _ := op.Commitment()
		sub := &evidence.Submission{
			Digests: []evidence.Digest{evidence.SHA256Digest(file)}, Kind: evidence.KindFile,
			Size: uint64(len(file)), Submitter: submitter.Public(), Commitment: com,
		}
		if err := sub.Sign(m.Origin, submitter); err != nil {
			t.Fatal(err)
		}
		subEnc, err := sub.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		opEnc, _ := op.Marshal()
		leaf, err := evidence.EvidenceLeaf(sub, subEnc, 1767225600000+uint64(i), uint64(i/4+1)).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		nw.files, nw.subs, nw.openings, nw.leaves = append(nw.files, file), append(nw.subs, subEnc), append(nw.openings, opEnc), append(nw.leaves, leaf)
		hs, err := tlog.StoredHashes(int64(i), leaf, nw.reader())
		if err != nil {
			t.Fatal(err)
		}
		for j, h := range hs {
			nw.hashes[tlog.StoredHashIndex(0, int64(i))+int64(j)] = h
		}
	}
	nw.size = int64(n)
	if nw.root, err = tlog.TreeHash(nw.size, nw.reader()); err != nil {
		t.Fatal(err)
	}
	nw.signedCheck, err = checkpoint.Sign(checkpoint.Checkpoint{Origin: m.Origin, Size: nw.size, Root: nw.root}, signers...)
	if err != nil {
		t.Fatal(err)
	}
	return nw
}

func (nw *network) reader() tlog.HashReader {
	return tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			h, ok := nw.hashes[x]
			if !ok {
				return nil, fmt.Errorf("no stored hash %d", x)
			}
			out[i] = h
		}
		return out, nil
	})
}

func (nw *network) proof(t testing.TB, i int64) *checkpoint.Proof {
	t.Helper()
	p, err := tlog.ProveRecord(nw.size, i, nw.reader())
	if err != nil {
		t.Fatal(err)
	}
	return &checkpoint.Proof{Index: i, Hashes: p, Checkpoint: nw.signedCheck}
}

func (nw *network) receipt(t testing.TB, i int64) *evidence.Receipt {
	t.Helper()
	return &evidence.Receipt{
		Network:    nw.fp,
		Manifests:  [][]byte{nw.manifest},
		Submission: nw.subs[i],
		Opening:    nw.openings[i],
		Leaf:       nw.leaves[i],
		Proof:      nw.proof(t, i).Format(),
	}
}

func sha(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

func check(t *testing.T, res *verify.Result, name string) verify.Check {
	t.Helper()
	for _, c := range res.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no %q check in %+v", name, res.Checks)
	return verify.Check{}
}

func wantVerdict(t *testing.T, res *verify.Result, v verify.Verdict, failing string) {
	t.Helper()
	if res.Verdict != v {
		t.Fatalf("verdict %s, want %s (reason %q)", res.Verdict, v, res.Reason)
	}
	if failing != "" {
		if c := check(t, res, failing); c.OK {
			t.Errorf("check %q passed, want it to fail; checks %+v", failing, res.Checks)
		}
	}
}

var allChecks = []string{verify.CheckFormat, verify.CheckManifest, verify.CheckSignature, verify.CheckOpening,
	verify.CheckLeaf, verify.CheckDigest, verify.CheckInclusion, verify.CheckCheckpoint, verify.CheckTimestamp, verify.CheckExtension}

func TestReceiptVerified(t *testing.T) {
	nw := newNetwork(t, "court.example", 20)
	rc := nw.receipt(t, 7).Marshal()
	res := verify.Receipt(rc, sha(nw.files[7]), nw.fp)
	wantVerdict(t, res, verify.Verified, "")
	for _, name := range allChecks {
		if c := check(t, res, name); !c.OK {
			t.Errorf("check %q failed: %s", name, c.Detail)
		}
	}
	if len(res.Checks) != len(allChecks) {
		t.Errorf("%d checks, want %d", len(res.Checks), len(allChecks))
	}
	if res.Index != 7 || res.TreeSize != 20 || res.Height != 2 || res.Origin != "evidence.court.example/v1" ||
		res.RecordID != evidence.RecordID(nw.fp, 7) || len(res.Signers) != 1 || res.Opening == nil ||
		res.Opening.FileName != "f7.pdf" || res.Kind != "file" || res.Digest != "sha256:"+fmt.Sprintf("%x", sha(nw.files[7])) {
		t.Errorf("result fields: %+v", res)
	}
	if res.LeaderTime.UnixMilli() != 1767225600007 {
		t.Errorf("leader time %v", res.LeaderTime)
	}
}

// TestReceiptProofIndependently checks the receipt's inclusion proof with
// transparency-dev/merkle rather than x/mod/sumdb/tlog.
func TestReceiptProofIndependently(t *testing.T) {
	nw := newNetwork(t, "court.example", 20)
	h := rfc6962.DefaultHasher
	for i := int64(0); i < nw.size; i++ {
		rc, err := evidence.ParseReceipt(nw.receipt(t, i).Marshal())
		if err != nil {
			t.Fatal(err)
		}
		p, err := checkpoint.ParseProof(rc.Proof)
		if err != nil {
			t.Fatal(err)
		}
		body, _, _ := bytes.Cut(p.Checkpoint, []byte("\n\n"))
		cp, err := checkpoint.ParseBody(string(body) + "\n")
		if err != nil {
			t.Fatal(err)
		}
		var hashes [][]byte
		for _, x := range p.Hashes {
			hashes = append(hashes, bytes.Clone(x[:]))
		}
		if err := proof.VerifyInclusion(h, uint64(p.Index), uint64(cp.Size), h.HashLeaf(rc.Leaf), hashes, cp.Root[:]); err != nil {
			t.Errorf("index %d: merkle/proof.VerifyInclusion: %v", i, err)
		}
		if err := proof.VerifyInclusion(h, uint64(p.Index), uint64(cp.Size), h.HashLeaf(nw.leaves[(i+1)%nw.size]), hashes, cp.Root[:]); err == nil {
			t.Errorf("index %d: another leaf verifies", i)
		}
	}
}

func TestReceiptMismatchAndInvalid(t *testing.T) {
	nw := newNetwork(t, "court.example", 20)
	other := newNetwork(t, "other.example", 3)
	good := nw.receipt(t, 7)
	rc := good.Marshal()

	t.Run("tampered file", func(t *testing.T) {
		file := bytes.Clone(nw.files[7])
		file[0] ^= 1
		wantVerdict(t, verify.Receipt(rc, sha(file), nw.fp), verify.Mismatch, verify.CheckDigest)
	})
	t.Run("another receipt's file", func(t *testing.T) {
		res := verify.Receipt(rc, sha(nw.files[12]), nw.fp)
		wantVerdict(t, res, verify.Mismatch, verify.CheckDigest)
		if c := check(t, res, verify.CheckInclusion); !c.OK {
			t.Errorf("inclusion should still pass: %s", c.Detail)
		}
	})
	t.Run("digest of wrong length", func(t *testing.T) {
		wantVerdict(t, verify.Receipt(rc, sha(nw.files[7])[:31], nw.fp), verify.Mismatch, verify.CheckDigest)
	})
	t.Run("another network pinned", func(t *testing.T) {
		wantVerdict(t, verify.Receipt(rc, sha(nw.files[7]), other.fp), verify.Invalid, verify.CheckManifest)
	})
	t.Run("another network's manifest", func(t *testing.T) {
		r := *good
		r.Manifests = [][]byte{other.manifest}
		wantVerdict(t, verify.Receipt(r.Marshal(), sha(nw.files[7]), nw.fp), verify.Invalid, verify.CheckManifest)
	})
	t.Run("genesis repeated as an update", func(t *testing.T) {
		r := *good
		r.Manifests = [][]byte{nw.manifest, nw.manifest}
		wantVerdict(t, verify.Receipt(r.Marshal(), sha(nw.files[7]), nw.fp), verify.Invalid, verify.CheckManifest)
	})
	t.Run("opening stripped", func(t *testing.T) {
		r := *good
		r.Opening = nil
		res := verify.Receipt(r.Marshal(), sha(nw.files[7]), nw.fp)
		wantVerdict(t, res, verify.Verified, "")
		if c := check(t, res, verify.CheckOpening); !c.OK || res.Opening != nil {
			t.Errorf("opening check %+v, opening %+v", c, res.Opening)
		}
	})
	t.Run("opening of another submission", func(t *testing.T) {
		r := *good
		r.Opening = nw.openings[12]
		wantVerdict(t, verify.Receipt(r.Marshal(), sha(nw.files[7]), nw.fp), verify.Invalid, verify.CheckOpening)
	})
	t.Run("another submission", func(t *testing.T) {
		r := *good
		r.Submission, r.Opening = nw.subs[12], nil
		wantVerdict(t, verify.Receipt(r.Marshal(), sha(nw.files[12]), nw.fp), verify.Invalid, verify.CheckLeaf)
	})
	t.Run("submission signed for another network", func(t *testing.T) {
		r := *good
		r.Submission, r.Leaf, r.Opening = other.subs[0], other.leaves[0], nil
		wantVerdict(t, verify.Receipt(r.Marshal(), sha(other.files[0]), nw.fp), verify.Invalid, verify.CheckSignature)
	})
	t.Run("proof for another index", func(t *testing.T) {
		r := *good
		r.Proof = nw.proof(t, 8).Format()
		wantVerdict(t, verify.Receipt(r.Marshal(), sha(nw.files[7]), nw.fp), verify.Invalid, verify.CheckInclusion)
	})
	t.Run("index outside tree", func(t *testing.T) {
		r := *good
		p := nw.proof(t, 7)
		p.Index = 20
		r.Proof = p.Format()
		wantVerdict(t, verify.Receipt(r.Marshal(), sha(nw.files[7]), nw.fp), verify.Invalid, verify.CheckInclusion)
	})
	t.Run("checkpoint of another network", func(t *testing.T) {
		r := *good
		p := nw.proof(t, 7)
		p.Checkpoint = other.signedCheck
		r.Proof = p.Format()
		wantVerdict(t, verify.Receipt(r.Marshal(), sha(nw.files[7]), nw.fp), verify.Invalid, verify.CheckCheckpoint)
	})
	t.Run("checkpoint signed by a stranger", func(t *testing.T) {
		r := *good
		p := nw.proof(t, 7)
		var err error
		p.Checkpoint, err = checkpoint.Sign(checkpoint.Checkpoint{Origin: origin, Size: nw.size, Root: nw.root}, other.signer)
		if err != nil {
			t.Fatal(err)
		}
		r.Proof = p.Format()
		res := verify.Receipt(r.Marshal(), sha(nw.files[7]), nw.fp)
		wantVerdict(t, res, verify.Invalid, verify.CheckCheckpoint)
		if c := check(t, res, verify.CheckInclusion); !c.OK {
			t.Errorf("inclusion is checked against the unsigned body and should pass: %s", c.Detail)
		}
	})
	t.Run("not a receipt", func(t *testing.T) {
		res := verify.Receipt([]byte("hello"), sha(nw.files[7]), nw.fp)
		wantVerdict(t, res, verify.Invalid, verify.CheckFormat)
		if len(res.Checks) != len(allChecks) {
			t.Errorf("%d checks reported, want every check named", len(res.Checks))
		}
	})
}

// TestReceiptEveryBitFlipped: a flipped bit anywhere in the receipt is never
// verified.
func TestReceiptEveryBitFlipped(t *testing.T) {
	nw := newNetwork(t, "court.example", 20)
	// The receipt with an opening holds every kind of line; stripping the
	// opening changes no other byte.
	everyBitFlipped(t, nw.receipt(t, 7).Marshal(), nw.files[7], nw.fp)
}

// everyBitFlipped checks that rc verifies and that no single flipped bit
// of it does.
func everyBitFlipped(t *testing.T, rc, file []byte, pinned evidence.Fingerprint) {
	t.Helper()
	if res := verify.Receipt(rc, sha(file), pinned); !res.OK() {
		t.Fatalf("unflipped receipt: %s", res.Reason)
	}
	bits := 8 * len(rc)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		bad  []string
		next = make(chan int)
	)
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, len(rc))
			for bit := range next {
				copy(buf, rc)
				buf[bit/8] ^= 1 << (bit % 8)
				if res := verify.Receipt(buf, sha(file), pinned); res.Verdict == verify.Verified {
					mu.Lock()
					bad = append(bad, fmt.Sprintf("bit %d (byte %d %q→%q, line %q)", bit, bit/8, rc[bit/8], buf[bit/8], lineAt(rc, bit/8)))
					mu.Unlock()
				}
			}
		}()
	}
	for bit := 0; bit < bits; bit++ {
		next <- bit
	}
	close(next)
	wg.Wait()
	if len(bad) > 0 {
		t.Errorf("%d of %d flipped bits still verify, e.g. %s", len(bad), bits, strings.Join(bad[:min(len(bad), 5)], "; "))
	}
}

// addMember returns a manifest update entry adding a second court to nw's
// genesis, approved by the genesis admin, and the new court's note signer.
func (nw *network) addMember(t testing.TB) ([]byte, *evidence.Manifest, note.Signer) {
	t.Helper()
	skey, vkey, _ := note.GenerateKey(rand.Reader, "court-b.example")
	signer, _ := note.NewSigner(skey)
	adminB, _, _ := ed25519.GenerateKey(rand.Reader)
	next := *nw.m
	next.Members = append(slices.Clone(nw.m.Members), evidence.Member{
		Name: "court-b.example", Role: evidence.RoleCourt, RaftID: 2, NoteKey: vkey, AdminKey: adminB,
	})
	next.Threshold = evidence.DefaultThreshold(next.Members)
	next.Sequence, next.Previous = 2, nw.fp[:]
	enc, err := next.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	g := &evidence.Governance{Action: evidence.ActionManifestUpdate, Manifest: enc}
	if err := g.Approve(nw.m.Origin, nw.fp, evidence.Ed25519Signer{Key: nw.admin}); err != nil {
		t.Fatal(err)
	}
	entry, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return entry, &next, signer
}

// TestReceiptManifestChain: a receipt whose checkpoint was signed under
// the second manifest version verifies against the genesis pin, with the
// chain; without the update, or with the checkpoint signed only under the
// old policy, it does not; and no flipped bit of it verifies.
func TestReceiptManifestChain(t *testing.T) {
	nw := newNetwork(t, "court.example", 20)
	update, _, signerB := nw.addMember(t)
	cp := checkpoint.Checkpoint{Origin: nw.m.Origin, Size: nw.size, Root: nw.root}
	both, err := checkpoint.Sign(cp, nw.signer, signerB)
	if err != nil {
		t.Fatal(err)
	}
	r := nw.receipt(t, 7)
	r.Manifests = [][]byte{nw.manifest, update}
	p := nw.proof(t, 7)
	p.Checkpoint = both
	r.Proof = p.Format()
	res := verify.Receipt(r.Marshal(), sha(nw.files[7]), nw.fp)
	wantVerdict(t, res, verify.Verified, "")
	if res.Manifest.Sequence != 2 || len(res.Signers) != 2 {
		t.Fatalf("verified under manifest %d with signers %v", res.Manifest.Sequence, res.Signers)
	}
	t.Run("old policy's signatures only", func(t *testing.T) {
		r := *r
		r.Proof = nw.proof(t, 7).Format() // signed by court-a alone: 1 of 2
		wantVerdict(t, verify.Receipt(r.Marshal(), sha(nw.files[7]), nw.fp), verify.Invalid, verify.CheckCheckpoint)
	})
	t.Run("update left out", func(t *testing.T) {
		r := *r
		r.Manifests = r.Manifests[:1] // court-b's signature is then by an unknown key
		wantVerdict(t, verify.Receipt(r.Marshal(), sha(nw.files[7]), nw.fp), verify.Invalid, verify.CheckCheckpoint)
	})
	t.Run("update not approved", func(t *testing.T) {
		g, _ := evidence.ParseGovernance(update)
		_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
		g.Approvals = nil
		if err := g.Approve(nw.m.Origin, nw.fp, evidence.Ed25519Signer{Key: otherKey}); err != nil {
			t.Fatal(err)
		}
		forged, _ := g.Marshal()
		r := *r
		r.Manifests = [][]byte{nw.manifest, forged}
		wantVerdict(t, verify.Receipt(r.Marshal(), sha(nw.files[7]), nw.fp), verify.Invalid, verify.CheckManifest)
	})
	t.Run("every bit flipped", func(t *testing.T) {
		everyBitFlipped(t, r.Marshal(), nw.files[7], nw.fp)
	})
}

func lineAt(b []byte, i int) string {
	start := bytes.LastIndexByte(b[:i], '\n') + 1
	end := bytes.IndexByte(b[i:], '\n')
	if end < 0 {
		end = len(b) - i
	}
	s := string(b[start : i+end])
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return s
}

func TestLookup(t *testing.T) {
	nw := newNetwork(t, "court.example", 20)
	proofText := nw.proof(t, 12).Format()
	ms := [][]byte{nw.manifest}
	res := verify.Lookup(nw.leaves[12], proofText, ms, sha(nw.files[12]), nw.fp)
	wantVerdict(t, res, verify.Verified, "")
	if res.Index != 12 || res.TreeSize != 20 || res.Height != 4 {
		t.Errorf("result %+v", res)
	}
	wantVerdict(t, verify.Lookup(nw.leaves[12], proofText, ms, sha(nw.files[11]), nw.fp), verify.Mismatch, verify.CheckDigest)
	wantVerdict(t, verify.Lookup(nw.leaves[11], proofText, ms, sha(nw.files[11]), nw.fp), verify.Invalid, verify.CheckInclusion)
	other := newNetwork(t, "other.example", 2)
	wantVerdict(t, verify.Lookup(nw.leaves[12], proofText, ms, sha(nw.files[12]), other.fp), verify.Invalid, verify.CheckManifest)
	gov := (&evidence.Leaf{Type: evidence.EntryGovernance, Entry: []byte{1}})
	govEnc, _ := gov.Marshal()
	wantVerdict(t, verify.Lookup(govEnc, proofText, ms, sha(nw.files[12]), nw.fp), verify.Invalid, verify.CheckLeaf)
}
