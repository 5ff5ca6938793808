package evidence_test

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/cunzheng/cunzheng/evidence"
)

func testExtension() *evidence.Extension {
	return &evidence.Extension{
		Checkpoint:  []byte(testOrigin + "\n9\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n— court-a.example AAAAAQ==\n"),
		Consistency: []tlog.Hash{{1}, {2}, {3}},
		Timestamps:  [][]byte{[]byte("token one"), []byte("token two")},
	}
}

func TestExtensionRoundTrip(t *testing.T) {
	for _, e := range []*evidence.Extension{
		testExtension(),
		{Checkpoint: []byte("x")}, // no hashes, no tokens
	} {
		enc := mustMarshal(t, e.Marshal)
		got, err := evidence.ParseExtension(enc)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, e) {
			t.Errorf("parsed %+v\nwant %+v", got, e)
		}
		checkTruncations(t, enc, func(b []byte) error { _, err := evidence.ParseExtension(b); return err })
	}
}

func TestExtensionRejects(t *testing.T) {
	good := mustMarshal(t, testExtension().Marshal)
	many := func(n int) []byte {
		b := []byte{evidence.ExtensionVersion, 0, 1, 'x', byte(n)}
		return append(b, make([]byte, 32*n+1)...)
	}
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, evidence.ErrMalformed},
		{"version 2", append([]byte{2}, good[1:]...), evidence.ErrUnsupported},
		{"trailing byte", append(bytes.Clone(good), 0), evidence.ErrMalformed},
		{"empty checkpoint", []byte{1, 0, 0, 0, 0}, evidence.ErrMalformed},
		{"empty token", []byte{1, 0, 1, 'x', 0, 1, 0, 0}, evidence.ErrMalformed},
		{"too many hashes", many(evidence.MaxConsistencyHashes + 1), evidence.ErrTooLarge},
		{"too many tokens", append([]byte{1, 0, 1, 'x', 0, evidence.MaxExtensionTimestamps + 1}, bytes.Repeat([]byte{0, 1, 'y'}, evidence.MaxExtensionTimestamps+1)...), evidence.ErrTooLarge},
		{"short hash", []byte{1, 0, 1, 'x', 1, 1, 2, 3, 0}, evidence.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := evidence.ParseExtension(tt.data); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := evidence.ParseExtension(many(evidence.MaxConsistencyHashes)); err != nil {
		t.Errorf("%d hashes (the limit): %v", evidence.MaxConsistencyHashes, err)
	}
	big := &evidence.Extension{Checkpoint: make([]byte, evidence.MaxExtensionCheckpointSize+1)}
	if _, err := big.Marshal(); !errors.Is(err, evidence.ErrMalformed) {
		t.Errorf("marshal of an oversized checkpoint: %v", err)
	}
}

func TestReceiptWithExtension(t *testing.T) {
	r := testReceipt(t)
	r.Extension = mustMarshal(t, testExtension().Marshal)
	enc := r.Marshal()
	if !bytes.Contains(enc, []byte("\nextension ")) {
		t.Fatalf("no extension line:\n%s", enc)
	}
	got, err := evidence.ParseReceipt(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Errorf("parsed %+v\nwant %+v", got, r)
	}

	text := string(enc)
	ext := text[strings.Index(text, "extension "):]
	ext = ext[:strings.IndexByte(ext, '\n')+1]
	idx := uint64(0)
	committed := &evidence.Receipt{Network: r.Network, Manifests: r.Manifests, Submission: r.Submission, Leaf: r.Leaf,
		Committed: &idx, Extension: r.Extension}
	bad := mustMarshal(t, testExtension().Marshal)
	bad[0] = 2
	for _, tc := range []struct{ name, text string }{
		{"extension before timestamp", strings.Replace(strings.Replace(text, ext, "", 1), "timestamp ", ext+"timestamp ", 1)},
		{"two extensions", strings.Replace(text, ext, ext+ext, 1)},
		{"extension on a committed receipt", string(committed.Marshal())},
		{"extension of version 2", string((&evidence.Receipt{Network: r.Network, Manifests: r.Manifests, Submission: r.Submission,
			Leaf: r.Leaf, Proof: r.Proof, Extension: bad}).Marshal())},
	} {
		if _, err := evidence.ParseReceipt([]byte(tc.text)); err == nil {
			t.Errorf("%s: parsed", tc.name)
		}
	}
}

func FuzzParseExtension(f *testing.F) {
	f.Add(mustMarshal(f, testExtension().Marshal))
	f.Add(mustMarshal(f, (&evidence.Extension{Checkpoint: []byte("x")}).Marshal))
	f.Fuzz(func(t *testing.T, data []byte) {
		roundTrip(t, data, evidence.ParseExtension)
	})
}
