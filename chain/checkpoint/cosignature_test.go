package checkpoint_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"

	"github.com/cunzheng/cunzheng/chain/checkpoint"
)

// The cosignature tests cross-check chain/checkpoint against an independent
// C2SP tlog-cosignature implementation, filippo.io/torchwood v0.6.1 (a
// test-only dependency), in both directions.

const witnessName = "witness.example/w1"

func newWitness(t testing.TB, now func() time.Time) (*checkpoint.CosignatureSigner, ed25519.PrivateKey) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := checkpoint.NewCosignatureSigner(witnessName, priv, now)
	if err != nil {
		t.Fatal(err)
	}
	return s, priv
}

func TestCosignatureMatchesTorchwood(t *testing.T) {
	ours, priv := newWitness(t, nil)
	theirs, err := torchwood.NewCosignatureSigner(witnessName, priv)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ours.Verifier().String(), theirs.Verifier().String(); got != want {
		t.Fatalf("verifier key %q, torchwood %q", got, want)
	}
	if ours.KeyHash() != theirs.KeyHash() {
		t.Fatalf("key hash %08x, torchwood %08x", ours.KeyHash(), theirs.KeyHash())
	}
	inst := newMember(t, "court.example")
	body := testCheckpoint().Body()

	t.Run("torchwood verifies ours", func(t *testing.T) {
		signed, err := note.Sign(&note.Note{Text: string(body)}, inst.signer, ours)
		if err != nil {
			t.Fatal(err)
		}
		n, err := note.Open(signed, note.VerifierList(theirs.Verifier()))
		if err != nil {
			t.Fatalf("torchwood's verifier refuses our cosignature: %v", err)
		}
		ts, err := torchwood.CosignatureTimestamp(n.Sigs[0])
		if err != nil || time.Since(time.Unix(ts, 0)).Abs() > time.Minute {
			t.Errorf("torchwood reads time %d (%v), want about now", ts, err)
		}
	})
	t.Run("ours verifies torchwood's", func(t *testing.T) {
		signed, err := note.Sign(&note.Note{Text: string(body)}, theirs, inst.signer)
		if err != nil {
			t.Fatal(err)
		}
		v, err := checkpoint.NewCosignatureVerifier(theirs.Verifier().String())
		if err != nil {
			t.Fatal(err)
		}
		n, err := note.Open(signed, note.VerifierList(v))
		if err != nil {
			t.Fatalf("our verifier refuses torchwood's cosignature: %v", err)
		}
		sig, _ := base64.StdEncoding.DecodeString(n.Sigs[0].Base64)
		when, err := checkpoint.CosignatureTime(sig[4:])
		if err != nil || time.Since(when).Abs() > time.Minute {
			t.Errorf("CosignatureTime = %v, %v, want about now", when, err)
		}
	})
}

func TestCosignatureTimeIsSigned(t *testing.T) {
	at := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	s, _ := newWitness(t, func() time.Time { return at })
	signed, err := note.Sign(&note.Note{Text: string(testCheckpoint().Body())}, s)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(signed, note.VerifierList(s.Verifier()))
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := base64.StdEncoding.DecodeString(n.Sigs[0].Base64)
	if got, err := checkpoint.CosignatureTime(sig[4:]); err != nil || !got.Equal(at) {
		t.Errorf("CosignatureTime = %v, %v, want %v", got, err, at)
	}
	// Moving the time by one second breaks the signature.
	sig[4+7]++
	if s.Verifier().Verify(testCheckpoint().Body(), sig[4:]) {
		t.Error("cosignature still verifies with another time")
	}
	if _, err := checkpoint.CosignatureTime(sig[4:20]); !errors.Is(err, checkpoint.ErrMalformed) {
		t.Errorf("CosignatureTime of a short signature = %v, want ErrMalformed", err)
	}
}

func TestCosignatureSignsOnlyCheckpoints(t *testing.T) {
	s, _ := newWitness(t, nil)
	for _, msg := range []string{"", "hello\n", string(testCheckpoint().Body()) + "extension\n"} {
		if _, err := s.Sign([]byte(msg)); err == nil {
			t.Errorf("Sign(%q) succeeded; a witness cosigns checkpoint bodies only", msg)
		}
	}
	if _, err := checkpoint.NewCosignatureSigner("has space", make(ed25519.PrivateKey, ed25519.PrivateKeySize), nil); err == nil {
		t.Error("NewCosignatureSigner accepted a name with a space")
	}
	if _, err := checkpoint.NewCosignatureSigner(witnessName, make([]byte, 12), nil); err == nil {
		t.Error("NewCosignatureSigner accepted a short key")
	}
	g, err := checkpoint.GenerateCosignatureKey(witnessName, rand.Reader)
	if err != nil || g.Name() != witnessName {
		t.Errorf("GenerateCosignatureKey = %v, %v", g, err)
	}
}

func TestNewCosignatureVerifierStrict(t *testing.T) {
	s, _ := newWitness(t, nil)
	good := s.Verifier().String()
	name, rest, _ := strings.Cut(good, "+")
	hash, key, _ := strings.Cut(rest, "+")
	raw, _ := base64.StdEncoding.DecodeString(key)
	ed := raw
	ed = append([]byte{0x01}, ed[1:]...) // an Ed25519 note key, not a cosignature key
	for _, tt := range []struct{ name, vkey string }{
		{"empty", ""},
		{"no hash", name + "+" + key},
		{"upper-case hash", name + "+" + strings.ToUpper(hash) + "+" + key},
		{"short hash", name + "+" + hash[1:] + "+" + key},
		{"wrong hash", name + "+00000000+" + key},
		{"other name", "other.example+" + hash + "+" + key},
		{"note key type", name + "+" + hash + "+" + base64.StdEncoding.EncodeToString(ed)},
		{"short key", name + "+" + hash + "+" + base64.StdEncoding.EncodeToString(raw[:20])},
		{"space in name", "a b+" + hash + "+" + key},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := checkpoint.NewCosignatureVerifier(tt.vkey); !errors.Is(err, checkpoint.ErrMalformed) {
				t.Errorf("NewCosignatureVerifier(%q) = %v, want ErrMalformed", tt.vkey, err)
			}
		})
	}
	v, err := checkpoint.NewCosignatureVerifier(good)
	if err != nil || v.String() != good || v.Name() != witnessName || v.KeyHash() != s.KeyHash() {
		t.Errorf("NewCosignatureVerifier(%q) = %v, %v", good, v, err)
	}
}

func TestOpenWitnessPolicy(t *testing.T) {
	a, b, c := newMember(t, "court-a.example"), newMember(t, "court-b.example"), newMember(t, "notary.example")
	w1, _ := newWitness(t, nil)
	_, priv2, _ := ed25519.GenerateKey(rand.Reader)
	w2, err := checkpoint.NewCosignatureSigner("witness.example/w2", priv2, nil)
	if err != nil {
		t.Fatal(err)
	}
	stranger, _ := checkpoint.GenerateCosignatureKey("stranger.example", rand.Reader)
	base := checkpoint.Policy{Origin: origin, Verifiers: verifiers(t, a, b, c), Threshold: 2,
		Witnesses: note.VerifierList(w1.Verifier(), w2.Verifier())}
	required := base
	required.RequiredWitnesses = []string{w1.Name()}
	cp := testCheckpoint()
	for _, tt := range []struct {
		name      string
		policy    checkpoint.Policy
		signers   []note.Signer
		ok        bool
		witnesses string
	}{
		{"witnesses reported, not counted", base, []note.Signer{a.signer, b.signer, w1, w2}, true, witnessName + ",witness.example/w2"},
		{"one institution and two witnesses", base, []note.Signer{a.signer, w1, w2}, false, ""},
		{"required witness present", required, []note.Signer{a.signer, c.signer, w1}, true, witnessName},
		{"required witness absent", required, []note.Signer{a.signer, b.signer, w2}, false, ""},
		{"no witness policy ignores cosignatures", checkpoint.Policy{Origin: origin, Verifiers: verifiers(t, a, b, c), Threshold: 2}, []note.Signer{a.signer, b.signer, w1}, true, ""},
		{"unknown witness ignored", base, []note.Signer{a.signer, b.signer, stranger}, true, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			signed, err := checkpoint.Sign(cp, tt.signers...)
			if err != nil {
				t.Fatal(err)
			}
			fin, err := checkpoint.Open(signed, tt.policy)
			if !tt.ok {
				if !errors.Is(err, checkpoint.ErrPolicy) {
					t.Fatalf("Open = %v, want ErrPolicy", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if got := strings.Join(fin.Witnesses, ","); got != tt.witnesses {
				t.Errorf("witnesses %q, want %q", got, tt.witnesses)
			}
			if len(fin.Signers) != 2 {
				t.Errorf("signers %v, want two institutions", fin.Signers)
			}
		})
	}
	t.Run("forged cosignature by a known witness", func(t *testing.T) {
		signed, _ := checkpoint.Sign(cp, a.signer, b.signer, w1)
		i := bytes.Index(signed, []byte("— "+witnessName+" "))
		line := signed[i:]
		sig, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(string(line[len("— "+witnessName+" "):])))
		sig[len(sig)-1] ^= 1
		forged := append(bytes.Clone(signed[:i]), []byte("— "+witnessName+" "+base64.StdEncoding.EncodeToString(sig)+"\n")...)
		if _, err := checkpoint.Open(forged, base); err == nil {
			t.Error("Open accepted a forged witness cosignature")
		}
	})
}
