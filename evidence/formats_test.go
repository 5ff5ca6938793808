package evidence_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/crypto/cryptobyte"

	"github.com/cunzheng/cunzheng/evidence"
)

// isDecodeError reports whether err is one of the sentinels a decoder may
// return for bad input.
func isDecodeError(err error) bool {
	return errors.Is(err, evidence.ErrMalformed) || errors.Is(err, evidence.ErrUnsupported) || errors.Is(err, evidence.ErrTooLarge)
}

// checkTruncations checks that every proper prefix of a canonical encoding
// is rejected with a decode error.
func checkTruncations(t *testing.T, enc []byte, parse func([]byte) error) {
	t.Helper()
	for n := 0; n < len(enc); n++ {
		err := parse(enc[:n])
		if err == nil {
			t.Fatalf("prefix of %d/%d bytes parsed", n, len(enc))
		}
		if !isDecodeError(err) {
			t.Fatalf("prefix of %d bytes: error %v is not ErrMalformed/ErrUnsupported/ErrTooLarge", n, err)
		}
	}
}

func TestSubmissionRoundTrip(t *testing.T) {
	sub, _ := testSubmission(t, "file contents")
	enc := mustMarshal(t, sub.Marshal)
	got, err := evidence.ParseSubmission(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, sub) {
		t.Errorf("parsed %+v, want %+v", got, sub)
	}
	again := mustMarshal(t, got.Marshal)
	if !bytes.Equal(again, enc) {
		t.Errorf("re-marshal differs:\n%x\n%x", again, enc)
	}
	if err := got.Verify(testOrigin); err != nil {
		t.Errorf("parsed submission does not verify: %v", err)
	}
}

// TestSubmissionLayout pins the permanent byte layout, written out by hand
// rather than through the encoder under test.
func TestSubmissionLayout(t *testing.T) {
	sub, _ := testSubmission(t, "file contents")
	var want []byte
	want = append(want, 1)          // version
	want = append(want, 2*(1+1+32)) // digests list length
	for _, d := range sub.Digests {
		want = append(want, byte(d.Alg), 32)
		want = append(want, d.Value...)
	}
	want = append(want, byte(evidence.KindDocument))
	want = binary.BigEndian.AppendUint64(want, uint64(len("file contents")))
	want = append(want, 1, 32) // ed25519, key length
	want = append(want, sub.Submitter.Key...)
	want = append(want, sub.Commitment[:]...)
	want = append(want, 64)
	want = append(want, sub.Signature...)
	if got := mustMarshal(t, sub.Marshal); !bytes.Equal(got, want) {
		t.Errorf("encoding:\n got %x\nwant %x", got, want)
	}
	msg, err := sub.SignedMessage(testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	wantMsg := append([]byte("cunzheng submission v1\n"+testOrigin+"\n"), want[:len(want)-65]...)
	if !bytes.Equal(msg, wantMsg) {
		t.Errorf("signed message:\n got %q\nwant %q", msg, wantMsg)
	}
}

type rawDigest struct {
	alg   byte
	value []byte
}

type rawSub struct {
	version byte
	digests []rawDigest
	kind    byte
	size    uint64
	keyAlg  byte
	key     []byte
	com     []byte
	sig     []byte
}

func (r rawSub) encode() []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddUint8(r.version)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, d := range r.digests {
			b.AddUint8(d.alg)
			b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(d.value) })
		}
	})
	b.AddUint8(r.kind)
	b.AddUint64(r.size)
	b.AddUint8(r.keyAlg)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(r.key) })
	b.AddBytes(r.com)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(r.sig) })
	return b.BytesOrPanic()
}

func validRawSub(t *testing.T) rawSub {
	sub, _ := testSubmission(t, "file contents")
	r := rawSub{version: 1, kind: byte(sub.Kind), size: sub.Size, keyAlg: 1, key: sub.Submitter.Key, com: sub.Commitment[:], sig: sub.Signature}
	for _, d := range sub.Digests {
		r.digests = append(r.digests, rawDigest{byte(d.Alg), d.Value})
	}
	if !bytes.Equal(r.encode(), mustMarshal(t, sub.Marshal)) {
		t.Fatal("test encoder disagrees with Marshal")
	}
	return r
}

func TestParseSubmissionRejects(t *testing.T) {
	sha := make([]byte, 32)
	sm3 := bytes.Repeat([]byte{2}, 32)
	tests := []struct {
		name   string
		mutate func(*rawSub) []byte
		want   error
	}{
		{"trailing byte", func(r *rawSub) []byte { return append(r.encode(), 0) }, evidence.ErrMalformed},
		{"version 0", func(r *rawSub) []byte { r.version = 0; return r.encode() }, evidence.ErrUnsupported},
		{"version 2", func(r *rawSub) []byte { r.version = 2; return r.encode() }, evidence.ErrUnsupported},
		{"no digests", func(r *rawSub) []byte { r.digests = nil; return r.encode() }, evidence.ErrMalformed},
		{"short sha256", func(r *rawSub) []byte { r.digests = []rawDigest{{1, sha[:31]}}; return r.encode() }, evidence.ErrMalformed},
		{"long sha256", func(r *rawSub) []byte { r.digests = []rawDigest{{1, append(sha, 0)}}; return r.encode() }, evidence.ErrMalformed},
		{"short sm3", func(r *rawSub) []byte { r.digests = []rawDigest{{1, sha}, {2, sm3[:16]}}; return r.encode() }, evidence.ErrMalformed},
		{"unknown algorithm", func(r *rawSub) []byte { r.digests = []rawDigest{{1, sha}, {3, sm3}}; return r.encode() }, evidence.ErrUnsupported},
		{"algorithm 0", func(r *rawSub) []byte { r.digests = []rawDigest{{1, sha}, {0, sm3}}; return r.encode() }, evidence.ErrUnsupported},
		{"sm3 first", func(r *rawSub) []byte { r.digests = []rawDigest{{2, sm3}, {1, sha}}; return r.encode() }, evidence.ErrMalformed},
		{"sm3 only", func(r *rawSub) []byte { r.digests = []rawDigest{{2, sm3}}; return r.encode() }, evidence.ErrMalformed},
		{"duplicate sha256", func(r *rawSub) []byte { r.digests = []rawDigest{{1, sha}, {1, sha}}; return r.encode() }, evidence.ErrMalformed},
		{"duplicate sm3", func(r *rawSub) []byte { r.digests = []rawDigest{{1, sha}, {2, sm3}, {2, sm3}}; return r.encode() }, evidence.ErrMalformed},
		{"five digests", func(r *rawSub) []byte {
			r.digests = []rawDigest{{1, sha}, {2, sm3}, {2, sm3}, {2, sm3}, {2, sm3}}
			return r.encode()
		}, evidence.ErrMalformed},
		{"digest list cut inside entry", func(r *rawSub) []byte {
			enc := r.encode()
			enc[1] = 33 // list length ends one byte before the first value does
			return enc
		}, evidence.ErrMalformed},
		{"kind 0", func(r *rawSub) []byte { r.kind = 0; return r.encode() }, evidence.ErrUnsupported},
		{"kind 9", func(r *rawSub) []byte { r.kind = 9; return r.encode() }, evidence.ErrUnsupported},
		{"key algorithm 0", func(r *rawSub) []byte { r.keyAlg = 0; return r.encode() }, evidence.ErrUnsupported},
		{"key algorithm 2", func(r *rawSub) []byte { r.keyAlg = 2; return r.encode() }, evidence.ErrUnsupported},
		{"short key", func(r *rawSub) []byte { r.key = r.key[:31]; return r.encode() }, evidence.ErrMalformed},
		{"long key", func(r *rawSub) []byte { r.key = append(append([]byte(nil), r.key...), 0); return r.encode() }, evidence.ErrMalformed},
		{"short commitment", func(r *rawSub) []byte { r.com = r.com[:31]; r.sig = nil; return r.encode() }, evidence.ErrMalformed},
		{"no signature", func(r *rawSub) []byte { r.sig = nil; return r.encode() }, evidence.ErrMalformed},
		{"short signature", func(r *rawSub) []byte { r.sig = r.sig[:63]; return r.encode() }, evidence.ErrMalformed},
		{"long signature", func(r *rawSub) []byte { r.sig = append(append([]byte(nil), r.sig...), 0); return r.encode() }, evidence.ErrMalformed},
		{"over size limit", func(r *rawSub) []byte {
			return append(r.encode(), make([]byte, evidence.MaxSubmissionSize)...)
		}, evidence.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := validRawSub(t)
			_, err := evidence.ParseSubmission(tt.mutate(&r))
			if !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("truncated", func(t *testing.T) {
		checkTruncations(t, validRawSub(t).encode(), func(b []byte) error { _, err := evidence.ParseSubmission(b); return err })
	})
}

func TestSubmissionMarshalRejects(t *testing.T) {
	sub, _ := testSubmission(t, "x")
	bad := *sub
	bad.Digests = []evidence.Digest{{Alg: evidence.SM3, Value: make([]byte, 32)}}
	if _, err := bad.Marshal(); !errors.Is(err, evidence.ErrMalformed) {
		t.Errorf("marshal with sm3 first: %v", err)
	}
	bad = *sub
	bad.Kind = 0
	if _, err := bad.Marshal(); !errors.Is(err, evidence.ErrUnsupported) {
		t.Errorf("marshal with kind 0: %v", err)
	}
	bad = *sub
	bad.Signature = make([]byte, 255)
	bad.Digests = append(bad.Digests, evidence.Digest{Alg: evidence.SHA256, Value: make([]byte, 32)})
	if _, err := bad.Marshal(); err == nil {
		t.Error("marshal with two sha256 digests succeeded")
	}
}

func TestSubmissionSignature(t *testing.T) {
	sub, _ := testSubmission(t, "file contents")
	if err := sub.Verify(testOrigin); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if err := sub.Verify("evidence.other.example/v1"); !errors.Is(err, evidence.ErrBadSignature) {
		t.Errorf("Verify for another origin: %v, want ErrBadSignature", err)
	}
	other := *sub
	if err := other.Sign(testOrigin, testSigner(2)); err == nil {
		t.Error("Sign with a key other than the submitter's succeeded")
	}

	enc := mustMarshal(t, sub.Marshal)
	sigStart := len(enc) - 64
	for bit := 0; bit < 8*len(enc); bit++ {
		flipped := bytes.Clone(enc)
		flipped[bit/8] ^= 1 << (bit % 8)
		p, err := evidence.ParseSubmission(flipped)
		if err != nil {
			if !isDecodeError(err) {
				t.Fatalf("bit %d: parse error %v has no sentinel", bit, err)
			}
			continue
		}
		err = p.Verify(testOrigin)
		if !errors.Is(err, evidence.ErrBadSignature) {
			where := "body"
			if bit/8 >= sigStart {
				where = "signature"
			}
			t.Fatalf("flipped %s bit %d: Verify = %v, want ErrBadSignature", where, bit, err)
		}
	}
}

func TestOpeningRoundTrip(t *testing.T) {
	_, op := testSubmission(t, "x")
	for _, o := range []*evidence.Opening{op, {}} {
		enc := mustMarshal(t, o.Marshal)
		got, err := evidence.ParseOpening(enc)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, o) {
			t.Errorf("parsed %+v, want %+v", got, o)
		}
		if again := mustMarshal(t, got.Marshal); !bytes.Equal(again, enc) {
			t.Errorf("re-marshal differs")
		}
		c1, _ := o.Commitment()
		c2, _ := got.Commitment()
		if c1 != c2 {
			t.Error("commitment changed across a round trip")
		}
	}
}

func TestOpeningSaltAndCommitment(t *testing.T) {
	_, a := testSubmission(t, "x")
	_, b := testSubmission(t, "x")
	if a.Salt != b.Salt {
		t.Error("DeriveSalt is not deterministic")
	}
	c := *a
	if err := c.DeriveSalt([]byte("another secret"), evidence.SHA256Digest([]byte("x")).Value); err != nil {
		t.Fatal(err)
	}
	if c.Salt == a.Salt {
		t.Error("salt does not depend on the secret")
	}
	ca, _ := a.Commitment()
	cc, _ := c.Commitment()
	if ca == cc {
		t.Error("commitment does not depend on the salt")
	}
	d := *a
	d.Title = "another title"
	cd, _ := d.Commitment()
	if cd == ca {
		t.Error("commitment does not depend on the title")
	}
}

func TestParseOpeningRejects(t *testing.T) {
	enc := func(version byte, texts []string, prov []byte) []byte {
		b := cryptobyte.NewBuilder(nil)
		b.AddUint8(version)
		b.AddBytes(make([]byte, 32))
		for _, s := range texts {
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(s)) })
		}
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(prov) })
		return b.BytesOrPanic()
	}
	five := func(s string) []string { return []string{"case", s, "url", "device", "file"} }
	if _, err := evidence.ParseOpening(enc(1, five("title"), nil)); err != nil {
		t.Fatalf("valid opening: %v", err)
	}
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"version 2", enc(2, five("title"), nil), evidence.ErrUnsupported},
		{"trailing byte", append(enc(1, five("title"), nil), 0), evidence.ErrMalformed},
		{"provenance 31 bytes", enc(1, five("title"), make([]byte, 31)), evidence.ErrMalformed},
		{"provenance 33 bytes", enc(1, five("title"), make([]byte, 33)), evidence.ErrMalformed},
		{"control character", enc(1, five("a\nb"), nil), evidence.ErrMalformed},
		{"DEL character", enc(1, five("a\x7fb"), nil), evidence.ErrMalformed},
		{"C1 control character", enc(1, five("a\u0085b"), nil), evidence.ErrMalformed},
		{"invalid UTF-8", enc(1, five("a\xffb"), nil), evidence.ErrMalformed},
		{"title too long", enc(1, five(strings.Repeat("t", evidence.MaxTextLen+1)), nil), evidence.ErrTooLarge},
		{"four text fields", enc(1, []string{"a", "b", "c", "d"}, nil), evidence.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := evidence.ParseOpening(tt.data); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("truncated", func(t *testing.T) {
		_, op := testSubmission(t, "x")
		checkTruncations(t, mustMarshal(t, op.Marshal), func(b []byte) error { _, err := evidence.ParseOpening(b); return err })
	})
	t.Run("marshal rejects", func(t *testing.T) {
		o := &evidence.Opening{Title: "a\tb"}
		if _, err := o.Marshal(); !errors.Is(err, evidence.ErrMalformed) {
			t.Errorf("marshal with tab: %v", err)
		}
		o = &evidence.Opening{Provenance: []byte{1}}
		if _, err := o.Marshal(); !errors.Is(err, evidence.ErrMalformed) {
			t.Errorf("marshal with 1-byte provenance: %v", err)
		}
	})
}

func testLeaves(t *testing.T) map[string]*evidence.Leaf {
	sub, _ := testSubmission(t, "file contents")
	ev := evidence.EvidenceLeaf(sub, mustMarshal(t, sub.Marshal), 1767225600123, 42)
	gov := &evidence.Leaf{Type: evidence.EntryGovernance, TimeMS: 1767225600456, Height: 43, Entry: mustMarshal(t, testGovernance(t).Marshal)}
	return map[string]*evidence.Leaf{"evidence": ev, "governance": gov}
}

func TestLeafRoundTrip(t *testing.T) {
	for name, l := range testLeaves(t) {
		t.Run(name, func(t *testing.T) {
			enc := mustMarshal(t, l.Marshal)
			got, err := evidence.ParseLeaf(enc)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, l) {
				t.Errorf("parsed %+v, want %+v", got, l)
			}
			if again := mustMarshal(t, got.Marshal); !bytes.Equal(again, enc) {
				t.Error("re-marshal differs")
			}
			if got.Time().UnixMilli() != int64(l.TimeMS) || got.Time().Location().String() != "UTC" {
				t.Errorf("Time() = %v", got.Time())
			}
			checkTruncations(t, enc, func(b []byte) error { _, err := evidence.ParseLeaf(b); return err })
		})
	}
}

// TestLeafLayout pins the permanent evidence-leaf layout.
func TestLeafLayout(t *testing.T) {
	sub, _ := testSubmission(t, "file contents")
	subEnc := mustMarshal(t, sub.Marshal)
	l := evidence.EvidenceLeaf(sub, subEnc, 0x0102030405060708, 9)
	want := []byte{1, 1, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0, 9, 68}
	for _, d := range sub.Digests {
		want = append(want, byte(d.Alg), 32)
		want = append(want, d.Value...)
	}
	h := evidence.SubmissionHash(subEnc)
	want = append(want, h[:]...)
	if got := mustMarshal(t, l.Marshal); !bytes.Equal(got, want) {
		t.Errorf("leaf:\n got %x\nwant %x", got, want)
	}
}

func TestParseLeafRejects(t *testing.T) {
	leaves := testLeaves(t)
	ev := mustMarshal(t, leaves["evidence"].Marshal)
	gov := mustMarshal(t, leaves["governance"].Marshal)
	with := func(b []byte, i int, v byte) []byte { b = bytes.Clone(b); b[i] = v; return b }
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"trailing byte", append(bytes.Clone(ev), 0), evidence.ErrMalformed},
		{"governance trailing byte", append(bytes.Clone(gov), 0), evidence.ErrMalformed},
		{"version 0", with(ev, 0, 0), evidence.ErrUnsupported},
		{"version 2", with(ev, 0, 2), evidence.ErrUnsupported},
		{"type 0", with(ev, 1, 0), evidence.ErrUnsupported},
		{"type 3", with(ev, 1, 3), evidence.ErrUnsupported},
		{"sm3 digest first", with(with(ev, 19, 2), 53, 1), evidence.ErrMalformed},
		{"unknown digest algorithm", with(ev, 53, 7), evidence.ErrUnsupported},
		{"digest length 31", with(ev, 20, 31), evidence.ErrMalformed},
		{"duplicate digest", with(ev, 53, 1), evidence.ErrMalformed},
		{"empty governance entry", []byte{1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, evidence.ErrMalformed},
		{"over size limit", make([]byte, evidence.MaxLeafSize+1), evidence.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := evidence.ParseLeaf(tt.data); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("marshal rejects", func(t *testing.T) {
		if _, err := (&evidence.Leaf{Type: 3}).Marshal(); !errors.Is(err, evidence.ErrUnsupported) {
			t.Errorf("type 3: %v", err)
		}
		if _, err := (&evidence.Leaf{Type: evidence.EntryGovernance}).Marshal(); !errors.Is(err, evidence.ErrMalformed) {
			t.Errorf("empty governance: %v", err)
		}
		if _, err := (&evidence.Leaf{Type: evidence.EntryEvidence}).Marshal(); !errors.Is(err, evidence.ErrMalformed) {
			t.Errorf("no digests: %v", err)
		}
		big := &evidence.Leaf{Type: evidence.EntryGovernance, Entry: make([]byte, evidence.MaxLeafSize-19)}
		if _, err := big.Marshal(); !errors.Is(err, evidence.ErrTooLarge) {
			t.Errorf("leaf of MaxLeafSize+1 bytes: %v", err)
		}
		big.Entry = big.Entry[:len(big.Entry)-1]
		if enc, err := big.Marshal(); err != nil || len(enc) != evidence.MaxLeafSize {
			t.Errorf("leaf of MaxLeafSize bytes: %d bytes, %v", len(enc), err)
		}
	})
}

func TestGovernanceRoundTrip(t *testing.T) {
	g := testGovernance(t)
	enc := mustMarshal(t, g.Marshal)
	got, err := evidence.ParseGovernance(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, g) {
		t.Errorf("parsed %+v, want %+v", got, g)
	}
	if again := mustMarshal(t, got.Marshal); !bytes.Equal(again, enc) {
		t.Error("re-marshal differs")
	}
	checkTruncations(t, enc, func(b []byte) error { _, err := evidence.ParseGovernance(b); return err })
}

type rawGov struct {
	version, action byte
	subjAlg         byte
	subj            []byte
	label           string
	adminAlg        byte
	admin           []byte
	sig             []byte
}

func (r rawGov) encode() []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddUint8(r.version)
	b.AddUint8(r.action)
	b.AddUint64(1767225600000)
	b.AddUint8(r.subjAlg)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(r.subj) })
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(r.label)) })
	b.AddUint8(r.adminAlg)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(r.admin) })
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(r.sig) })
	return b.BytesOrPanic()
}

func TestParseGovernanceRejects(t *testing.T) {
	g := testGovernance(t)
	valid := func() rawGov {
		return rawGov{1, byte(g.Action), 1, g.Subject.Key, g.Label, 1, g.Admin.Key, g.Signature}
	}
	if r := valid(); !bytes.Equal(r.encode(), mustMarshal(t, g.Marshal)) {
		t.Fatal("test encoder disagrees with Marshal")
	}
	tests := []struct {
		name   string
		mutate func(*rawGov)
		extra  []byte
		want   error
	}{
		{"trailing byte", func(*rawGov) {}, []byte{0}, evidence.ErrMalformed},
		{"version 2", func(r *rawGov) { r.version = 2 }, nil, evidence.ErrUnsupported},
		{"action 0", func(r *rawGov) { r.action = 0 }, nil, evidence.ErrUnsupported},
		{"action 4", func(r *rawGov) { r.action = 4 }, nil, evidence.ErrUnsupported},
		{"action 3 (manifest update) in the submitter layout", func(r *rawGov) { r.action = 3 }, nil, evidence.ErrMalformed},
		{"subject key algorithm 2", func(r *rawGov) { r.subjAlg = 2 }, nil, evidence.ErrUnsupported},
		{"subject key 31 bytes", func(r *rawGov) { r.subj = r.subj[:31] }, nil, evidence.ErrMalformed},
		{"admin key algorithm 0", func(r *rawGov) { r.adminAlg = 0 }, nil, evidence.ErrUnsupported},
		{"admin key 33 bytes", func(r *rawGov) { r.admin = append(bytes.Clone(r.admin), 0) }, nil, evidence.ErrMalformed},
		{"label with newline", func(r *rawGov) { r.label = "a\nb" }, nil, evidence.ErrMalformed},
		{"label not UTF-8", func(r *rawGov) { r.label = "\xc3" }, nil, evidence.ErrMalformed},
		{"label too long", func(r *rawGov) { r.label = strings.Repeat("x", evidence.MaxTextLen+1) }, nil, evidence.ErrTooLarge},
		{"no signature", func(r *rawGov) { r.sig = nil }, nil, evidence.ErrMalformed},
		{"signature 63 bytes", func(r *rawGov) { r.sig = r.sig[:63] }, nil, evidence.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := valid()
			tt.mutate(&r)
			if _, err := evidence.ParseGovernance(append(r.encode(), tt.extra...)); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestGovernanceSignature(t *testing.T) {
	g := testGovernance(t)
	if err := g.Verify(testOrigin); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if err := g.Verify("evidence.other.example/v1"); !errors.Is(err, evidence.ErrBadSignature) {
		t.Errorf("Verify for another origin: %v", err)
	}
	if err := (&evidence.Governance{Action: 1, Subject: g.Subject, Admin: g.Admin}).Sign(testOrigin, testSigner(1)); err == nil {
		t.Error("Sign by a key other than Admin succeeded")
	}
	enc := mustMarshal(t, g.Marshal)
	for bit := 0; bit < 8*len(enc); bit++ {
		flipped := bytes.Clone(enc)
		flipped[bit/8] ^= 1 << (bit % 8)
		p, err := evidence.ParseGovernance(flipped)
		if err != nil {
			if !isDecodeError(err) {
				t.Fatalf("bit %d: parse error %v has no sentinel", bit, err)
			}
			continue
		}
		if err := p.Verify(testOrigin); !errors.Is(err, evidence.ErrBadSignature) {
			t.Fatalf("flipped bit %d: Verify = %v, want ErrBadSignature", bit, err)
		}
	}
}

func TestKindsAndAlgorithms(t *testing.T) {
	for k := evidence.KindFile; k <= evidence.KindEmail; k++ {
		got, err := evidence.ParseKind(k.String())
		if err != nil || got != k {
			t.Errorf("ParseKind(%q) = %v, %v", k.String(), got, err)
		}
	}
	if _, err := evidence.ParseKind("kind(9)"); !errors.Is(err, evidence.ErrUnsupported) {
		t.Errorf("ParseKind of unknown: %v", err)
	}
	for _, a := range []evidence.DigestAlg{evidence.SHA256, evidence.SM3} {
		got, err := evidence.ParseDigestAlg(a.String())
		if err != nil || got != a {
			t.Errorf("ParseDigestAlg(%q) = %v, %v", a.String(), got, err)
		}
	}
	if _, err := evidence.ParseDigestAlg("md5"); !errors.Is(err, evidence.ErrUnsupported) {
		t.Errorf("ParseDigestAlg(md5): %v", err)
	}
}
