package evidence_test

import (
	"bytes"
	"testing"

	"github.com/cunzheng/cunzheng/evidence"
)

// Each parser either rejects its input with a sentinel error or accepts
// exactly the canonical encoding of what it returns.

// roundTrip parses data and checks that contract; ok is false when data was
// (rightly) rejected.
func roundTrip[T interface{ Marshal() ([]byte, error) }](t *testing.T, data []byte, parse func([]byte) (T, error)) (v T, ok bool) {
	t.Helper()
	v, err := parse(data)
	if err != nil {
		if !isDecodeError(err) {
			t.Fatalf("error without sentinel: %v", err)
		}
		return v, false
	}
	enc, err := v.Marshal()
	if err != nil || !bytes.Equal(enc, data) {
		t.Fatalf("re-marshal: %v\n got %x\nwant %x", err, enc, data)
	}
	return v, true
}

func FuzzParseSubmission(f *testing.F) {
	sub, _ := testSubmission(f, "seed")
	f.Add(mustMarshal(f, sub.Marshal))
	sub.Digests = sub.Digests[:1]
	f.Add(mustMarshal(f, sub.Marshal))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, ok := roundTrip(t, data, evidence.ParseSubmission)
		if !ok {
			return
		}
		_ = s.Verify(testOrigin)
	})
}

func FuzzParseOpening(f *testing.F) {
	_, op := testSubmission(f, "seed")
	f.Add(mustMarshal(f, op.Marshal))
	f.Add(mustMarshal(f, (&evidence.Opening{}).Marshal))
	f.Fuzz(func(t *testing.T, data []byte) {
		roundTrip(t, data, evidence.ParseOpening)
	})
}

func FuzzParseLeaf(f *testing.F) {
	sub, _ := testSubmission(f, "seed")
	subEnc := mustMarshal(f, sub.Marshal)
	f.Add(mustMarshal(f, evidence.EvidenceLeaf(sub, subEnc, 1767225600000, 1).Marshal))
	gov := mustMarshal(f, testGovernance(f).Marshal)
	f.Add(mustMarshal(f, (&evidence.Leaf{Type: evidence.EntryGovernance, Entry: gov}).Marshal))
	f.Fuzz(func(t *testing.T, data []byte) {
		roundTrip(t, data, evidence.ParseLeaf)
	})
}

func FuzzParseGovernance(f *testing.F) {
	g := testGovernance(f)
	f.Add(mustMarshal(f, g.Marshal))
	g.Action, g.Label = evidence.ActionRevokeSubmitter, ""
	f.Add(mustMarshal(f, g.Marshal))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, ok := roundTrip(t, data, evidence.ParseGovernance)
		if !ok {
			return
		}
		_ = g.Verify(testOrigin)
	})
}

func FuzzParseManifest(f *testing.F) {
	m := testManifest(f)
	f.Add(mustMarshal(f, m.Marshal))
	m.Members, m.Threshold = m.Members[:1], 1
	f.Add(mustMarshal(f, m.Marshal))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, ok := roundTrip(t, data, evidence.ParseManifest)
		if !ok {
			return
		}
		if _, err := m.Verifiers(); err != nil {
			t.Fatalf("valid manifest has unusable note keys: %v", err)
		}
	})
}

func FuzzParseManifestFile(f *testing.F) {
	m := testManifest(f)
	file, err := evidence.MarshalManifestFile(m)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(file)
	f.Add([]byte(`{"fingerprint":"","canonical":"AQ==","manifest":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, fp, err := evidence.ParseManifestFile(data)
		if err != nil {
			if !isDecodeError(err) {
				t.Fatalf("error without sentinel: %v", err)
			}
			return
		}
		if got, err := m.Fingerprint(); err != nil || got != fp {
			t.Fatalf("fingerprint %s, manifest hashes to %s (%v)", fp, got, err)
		}
		again, err := evidence.MarshalManifestFile(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, fp2, err := evidence.ParseManifestFile(again); err != nil || fp2 != fp {
			t.Fatalf("re-marshalled file: %v", err)
		}
	})
}

func testReceipt(t testing.TB) *evidence.Receipt {
	sub, op := testSubmission(t, "seed")
	subEnc := mustMarshal(t, sub.Marshal)
	m := testManifest(t)
	mEnc := mustMarshal(t, m.Marshal)
	fp, _ := m.Fingerprint()
	return &evidence.Receipt{
		Network:    fp,
		Manifests:  [][]byte{mEnc},
		Submission: subEnc,
		Opening:    mustMarshal(t, op.Marshal),
		Leaf:       mustMarshal(t, evidence.EvidenceLeaf(sub, subEnc, 1767225600000, 1).Marshal),
		Timestamps: [][]byte{[]byte("token")},
		Proof:      []byte("c2sp.org/tlog-proof@v1\nindex 0\n\n" + testOrigin + "\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n— court-a.example AAAAAQ==\n"),
	}
}

func FuzzParseReceipt(f *testing.F) {
	r := testReceipt(f)
	f.Add(r.Marshal())
	r.Opening, r.Timestamps = nil, nil
	f.Add(r.Marshal())
	r.Extension = mustMarshal(f, testExtension().Marshal)
	f.Add(r.Marshal())
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := evidence.ParseReceipt(data)
		if err != nil {
			return // errors from the embedded proof carry checkpoint sentinels
		}
		if enc := r.Marshal(); !bytes.Equal(enc, data) {
			t.Fatalf("re-marshal differs:\n got %q\nwant %q", enc, data)
		}
	})
}
