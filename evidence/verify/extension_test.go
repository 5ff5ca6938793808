package verify_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/cunzheng/cunzheng/chain/checkpoint"
	"github.com/cunzheng/cunzheng/evidence"
	"github.com/cunzheng/cunzheng/evidence/tsa"
	"github.com/cunzheng/cunzheng/evidence/verify"
)

// treeAt returns the checkpoint of nw's first size records.
func (nw *network) treeAt(t testing.TB, size int64) checkpoint.Checkpoint {
	t.Helper()
	root, err := tlog.TreeHash(size, nw.reader())
	if err != nil {
		t.Fatal(err)
	}
	return checkpoint.Checkpoint{Origin: nw.m.Origin, Size: size, Root: root}
}

func sign(t testing.TB, c checkpoint.Checkpoint, signers ...note.Signer) []byte {
	t.Helper()
	signed, err := checkpoint.Sign(c, signers...)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// receiptAt is nw's receipt of record i against the signed checkpoint of
// its first size records.
func (nw *network) receiptAt(t testing.TB, i, size int64, signed []byte) *evidence.Receipt {
	t.Helper()
	p, err := tlog.ProveRecord(size, i, nw.reader())
	if err != nil {
		t.Fatal(err)
	}
	r := nw.receipt(t, i)
	r.Proof = (&checkpoint.Proof{Index: i, Hashes: p, Checkpoint: signed}).Format()
	return r
}

// consistency proves the tree of oldSize records a prefix of newSize's.
func (nw *network) consistency(t testing.TB, oldSize, newSize int64) []tlog.Hash {
	t.Helper()
	p, err := tlog.ProveTree(newSize, oldSize, nw.reader())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func extend(t testing.TB, r *evidence.Receipt, e *evidence.Extension) *evidence.Receipt {
	t.Helper()
	enc, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	out := *r
	out.Extension = enc
	return &out
}

// newAuthorities returns two time services with the same certificate and
// key, whose clocks read at and an hour later.
func newAuthorities(t testing.TB, at time.Time) (*tsa.Authority, *tsa.Authority) {
	t.Helper()
	cert, key, err := tsa.SelfSigned("tsc.example", rand.Reader, at, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var out [2]*tsa.Authority
	for i, now := range []time.Time{at, at.Add(time.Hour)} {
		if out[i], err = tsa.New(tsa.Config{Certs: []*x509.Certificate{cert}, Key: key, Now: func() time.Time { return now }}); err != nil {
			t.Fatal(err)
		}
	}
	return out[0], out[1]
}

func stamp(t testing.TB, ta *tsa.Authority, c checkpoint.Checkpoint) []byte {
	t.Helper()
	tok, err := ta.Stamp(context.Background(), c.Body())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// stampedFixture is a 20-record network with a time service: record 7's
// receipt against the checkpoint of 12 records, stamped at t1, and an
// extension to the checkpoint of all 20, stamped an hour later.
type stampedFixture struct {
	nw         *network
	c1, c2     checkpoint.Checkpoint
	s1, s2     []byte // signed notes
	tok1, tok2 []byte
	base       *evidence.Receipt // not extended
	ext        *evidence.Extension
	t1         time.Time
}

func newStampedFixture(t testing.TB) *stampedFixture {
	t.Helper()
	// The token's CMS signing time is the real clock's: the certificate must be
	// valid now.
	t1 := time.Now().UTC().Truncate(time.Second)
	ta1, ta2 := newAuthorities(t, t1)
	f := &stampedFixture{t1: t1}
	f.nw = newNetworkWith(t, "court.example", 20, ta1)
	f.c1, f.c2 = f.nw.treeAt(t, 12), f.nw.treeAt(t, 20)
	f.s1, f.s2 = sign(t, f.c1, f.nw.signers...), sign(t, f.c2, f.nw.signers...)
	f.tok1, f.tok2 = stamp(t, ta1, f.c1), stamp(t, ta2, f.c2)
	f.base = f.nw.receiptAt(t, 7, 12, f.s1)
	f.base.Timestamps = [][]byte{f.tok1}
	f.ext = &evidence.Extension{Checkpoint: f.s2, Consistency: f.nw.consistency(t, 12, 20), Timestamps: [][]byte{f.tok2}}
	return f
}

func TestReceiptExtended(t *testing.T) {
	f := newStampedFixture(t)
	rc := extend(t, f.base, f.ext).Marshal()
	res := verify.Receipt(rc, sha(f.nw.files[7]), f.nw.fp)
	wantVerdict(t, res, verify.Verified, "")
	for _, name := range allChecks {
		if c := check(t, res, name); !c.OK {
			t.Errorf("check %q failed: %s", name, c.Detail)
		}
	}
	if len(res.Checks) != len(allChecks) {
		t.Errorf("%d checks, want %d", len(res.Checks), len(allChecks))
	}
	if res.TreeSize != 12 || res.Checkpoint != string(f.c1.Body()) || res.Index != 7 {
		t.Errorf("proof's tree: size %d, checkpoint %q", res.TreeSize, res.Checkpoint)
	}
	x := res.Extended
	if x == nil || x.TreeSize != 20 || x.Checkpoint != string(f.c2.Body()) || len(x.Signers) != 2 {
		t.Fatalf("extended %+v", x)
	}
	if res.Timestamp == nil || !res.Timestamp.Time.Equal(f.t1) {
		t.Errorf("time claim %+v, want the original token's %s", res.Timestamp, f.t1)
	}
	if x.Timestamp == nil || !x.Timestamp.Time.Equal(f.t1.Add(time.Hour)) {
		t.Errorf("newer checkpoint's token %+v", x.Timestamp)
	}
	if d := check(t, res, verify.CheckExtension).Detail; !strings.Contains(d, "size 20") {
		t.Errorf("extension detail %q", d)
	}

	plain := verify.Receipt(f.base.Marshal(), sha(f.nw.files[7]), f.nw.fp)
	wantVerdict(t, plain, verify.Verified, "")
	if c := check(t, plain, verify.CheckExtension); !c.OK || c.Detail != "none" || plain.Extended != nil {
		t.Errorf("receipt without extension: check %+v, extended %+v", c, plain.Extended)
	}

	file := bytes.Clone(f.nw.files[7])
	file[0] ^= 1
	wantVerdict(t, verify.Receipt(rc, sha(file), f.nw.fp), verify.Mismatch, verify.CheckDigest)
}

// TestReceiptExtensionInvalid: each way an extension can be wrong makes the
// receipt Invalid, with the extension check failing and saying why.
func TestReceiptExtensionInvalid(t *testing.T) {
	f := newStampedFixture(t)
	other := newNetwork(t, "other.example", 20)
	stranger, _, _ := note.GenerateKey(rand.Reader, "court-a.court.example") // same name, another key
	strangerSigner, _ := note.NewSigner(stranger)
	full := f.nw.receiptAt(t, 7, 20, f.s2)
	full.Timestamps = nil
	tests := []struct {
		name   string
		r      *evidence.Receipt
		reason string
		check  string // the failing check, CheckExtension when empty
	}{
		{"bogus consistency hash", extend(t, f.base, func() *evidence.Extension {
			e := *f.ext
			e.Consistency = append([]tlog.Hash(nil), e.Consistency...)
			e.Consistency[0][5] ^= 1
			return &e
		}()), "does not extend", ""},
		{"consistency proof one hash short", extend(t, f.base, &evidence.Extension{Checkpoint: f.s2, Consistency: f.ext.Consistency[1:]}), "does not extend", ""},
		{"newer checkpoint of another network", extend(t, f.base, &evidence.Extension{Checkpoint: other.signedCheck, Consistency: f.ext.Consistency}), "newer checkpoint", ""},
		{"newer checkpoint with another origin", extend(t, f.base, &evidence.Extension{
			Checkpoint: sign(t, checkpoint.Checkpoint{Origin: "evidence.elsewhere/v1", Size: 20, Root: f.c2.Root}, f.nw.signers...), Consistency: f.ext.Consistency}), "origin", ""},
		{"newer checkpoint signed by a stranger", extend(t, f.base, &evidence.Extension{
			Checkpoint: sign(t, f.c2, strangerSigner), Consistency: f.ext.Consistency}), "newer checkpoint", ""},
		{"newer checkpoint signed by a stranger too", extend(t, f.base, &evidence.Extension{
			Checkpoint: sign(t, f.c2, append(f.nw.signers, mustSigner(t, "tsc.other"))...), Consistency: f.ext.Consistency}), "not in the manifest", ""},
		{"same checkpoint", extend(t, f.base, &evidence.Extension{Checkpoint: f.s1}), "not larger", ""},
		{"smaller checkpoint", extend(t, full, &evidence.Extension{Checkpoint: f.s1, Consistency: f.ext.Consistency}), "not larger", ""},
		{"token over the older checkpoint", extend(t, f.base, &evidence.Extension{Checkpoint: f.s2, Consistency: f.ext.Consistency,
			Timestamps: [][]byte{f.tok1}}), "token 1", ""},
		{"token over the newer checkpoint as the original", func() *evidence.Receipt {
			r := *f.base
			r.Timestamps = [][]byte{f.tok2}
			return extend(t, &r, f.ext)
		}(), "token 1", verify.CheckTimestamp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := verify.Receipt(tt.r.Marshal(), sha(f.nw.files[7]), f.nw.fp)
			failing := tt.check
			if failing == "" {
				failing = verify.CheckExtension
			}
			wantVerdict(t, res, verify.Invalid, failing)
			if !strings.Contains(res.Reason, tt.reason) {
				t.Errorf("reason %q lacks %q", res.Reason, tt.reason)
			}
			if len(res.Checks) != len(allChecks) {
				t.Errorf("%d checks, want %d", len(res.Checks), len(allChecks))
			}
		})
	}

	t.Run("extension on a committed receipt", func(t *testing.T) {
		idx := uint64(7)
		r := f.nw.receipt(t, 7)
		r.Proof, r.Committed = nil, &idx
		r = extend(t, r, f.ext)
		res := verify.Receipt(r.Marshal(), sha(f.nw.files[7]), f.nw.fp)
		wantVerdict(t, res, verify.Invalid, verify.CheckFormat)
		if !strings.Contains(res.Reason, "extension") {
			t.Errorf("reason %q", res.Reason)
		}
	})
}

func mustSigner(t testing.TB, name string) note.Signer {
	t.Helper()
	skey, _, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestReceiptExtendedAcrossManifestUpdate: a receipt whose checkpoint was
// signed under the genesis manifest alone verifies under the chain with a
// later update only when extended to a checkpoint that meets the update's
// policy; extended to one that does not, it is Invalid.
func TestReceiptExtendedAcrossManifestUpdate(t *testing.T) {
	nw := newNetwork(t, "court.example", 20)
	update, _, signerB := nw.addMember(t)
	c1, c2 := nw.treeAt(t, 12), nw.treeAt(t, 20)
	r := nw.receiptAt(t, 7, 12, sign(t, c1, nw.signer))
	r.Manifests = [][]byte{nw.manifest, update}
	wantVerdict(t, verify.Receipt(r.Marshal(), sha(nw.files[7]), nw.fp), verify.Invalid, verify.CheckCheckpoint)

	good := extend(t, r, &evidence.Extension{Checkpoint: sign(t, c2, nw.signer, signerB), Consistency: nw.consistency(t, 12, 20)})
	res := verify.Receipt(good.Marshal(), sha(nw.files[7]), nw.fp)
	wantVerdict(t, res, verify.Verified, "")
	if res.Manifest.Sequence != 2 || res.CheckpointManifest.Sequence != 1 || len(res.Extended.Signers) != 2 {
		t.Errorf("in force %d, checkpoint under %d, newer signers %v", res.Manifest.Sequence, res.CheckpointManifest.Sequence, res.Extended.Signers)
	}
	if d := check(t, res, verify.CheckCheckpoint).Detail; !strings.Contains(d, "manifest version 1") {
		t.Errorf("checkpoint detail %q does not say which version it met", d)
	}

	old := extend(t, r, &evidence.Extension{Checkpoint: sign(t, c2, nw.signer), Consistency: nw.consistency(t, 12, 20)})
	wantVerdict(t, verify.Receipt(old.Marshal(), sha(nw.files[7]), nw.fp), verify.Invalid, verify.CheckExtension)

	t.Run("every bit flipped", func(t *testing.T) {
		everyBitFlipped(t, good.Marshal(), nw.files[7], nw.fp)
	})
}

// TestReceiptExtendedEveryBitFlipped: no single flipped bit of an extended,
// stamped receipt verifies.
func TestReceiptExtendedEveryBitFlipped(t *testing.T) {
	if testing.Short() {
		t.Skip("checks a timestamp token per flipped bit")
	}
	f := newStampedFixture(t)
	// Tokens are parsed one at a time (evidence.VerifyToken), so the
	// original token, whose form predates extensions, is left out to halve
	// the time; the newer checkpoint's token stays.
	r := *f.base
	r.Timestamps = nil
	everyBitFlipped(t, extend(t, &r, f.ext).Marshal(), f.nw.files[7], f.nw.fp)
}

// TestConsistencyProofIndependently checks the extension's consistency
// proofs with transparency-dev/merkle rather than x/mod/sumdb/tlog.
func TestConsistencyProofIndependently(t *testing.T) {
	nw := newNetwork(t, "court.example", 20)
	h := rfc6962.DefaultHasher
	for oldSize := int64(1); oldSize < nw.size; oldSize++ {
		for newSize := oldSize + 1; newSize <= nw.size; newSize++ {
			c1, c2 := nw.treeAt(t, oldSize), nw.treeAt(t, newSize)
			e, err := evidence.ParseExtension(mustMarshal(t, (&evidence.Extension{
				Checkpoint: sign(t, c2, nw.signer), Consistency: nw.consistency(t, oldSize, newSize)}).Marshal))
			if err != nil {
				t.Fatal(err)
			}
			var hashes [][]byte
			for _, x := range e.Consistency {
				hashes = append(hashes, bytes.Clone(x[:]))
			}
			if err := proof.VerifyConsistency(h, uint64(oldSize), uint64(newSize), hashes, c1.Root[:], c2.Root[:]); err != nil {
				t.Errorf("%d→%d: merkle/proof.VerifyConsistency: %v", oldSize, newSize, err)
			}
			if len(hashes) > 0 {
				hashes[0][0] ^= 1
				if err := proof.VerifyConsistency(h, uint64(oldSize), uint64(newSize), hashes, c1.Root[:], c2.Root[:]); err == nil {
					t.Errorf("%d→%d: a corrupted proof verifies", oldSize, newSize)
				}
			}
		}
	}
}

func mustMarshal(t testing.TB, f func() ([]byte, error)) []byte {
	t.Helper()
	b, err := f()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
