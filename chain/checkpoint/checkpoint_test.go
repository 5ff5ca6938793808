package checkpoint_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/cunzheng/cunzheng/chain/checkpoint"
)

const origin = "evidence.court.example/v1"

type member struct {
	name   string
	signer note.Signer
	vkey   string
}

func newMember(t testing.TB, name string) member {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return member{name, s, vkey}
}

func verifiers(t testing.TB, ms ...member) note.Verifiers {
	t.Helper()
	var vs []note.Verifier
	for _, m := range ms {
		v, err := note.NewVerifier(m.vkey)
		if err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	return note.VerifierList(vs...)
}

func testCheckpoint() checkpoint.Checkpoint {
	return checkpoint.Checkpoint{Origin: origin, Size: 20, Root: tlog.Hash(sha256.Sum256([]byte("root")))}
}

func TestBodyRoundTrip(t *testing.T) {
	for _, c := range []checkpoint.Checkpoint{
		testCheckpoint(),
		{Origin: origin, Size: 0},
		{Origin: "a", Size: 1<<63 - 1, Root: tlog.Hash{0xff}},
	} {
		body := c.Body()
		got, err := checkpoint.ParseBody(string(body))
		if err != nil {
			t.Fatalf("ParseBody(%q): %v", body, err)
		}
		if got != c {
			t.Errorf("ParseBody(%q) = %+v, want %+v", body, got, c)
		}
		if !bytes.Equal(got.Body(), body) {
			t.Errorf("Body round trip differs")
		}
	}
	c := testCheckpoint()
	want := origin + "\n20\n" + base64.StdEncoding.EncodeToString(c.Root[:]) + "\n"
	if string(c.Body()) != want {
		t.Errorf("Body = %q, want %q", c.Body(), want)
	}
}

func TestParseBodyRejects(t *testing.T) {
	root := testCheckpoint().Root
	r64 := base64.StdEncoding.EncodeToString(root[:])
	// Same 32 bytes with non-zero padding bits in the last character: lenient
	// base64 decoders accept it.
	last := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", r64[42])
	nonCanonical := r64[:42] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[last|1]) + "="
	if last&1 != 0 {
		t.Fatal("test root already has a padding bit set")
	}
	if b, err := base64.StdEncoding.DecodeString(nonCanonical); err != nil || !bytes.Equal(b, root[:]) {
		t.Fatalf("test vector is wrong: %v", err)
	}
	tests := []struct{ name, text string }{
		{"extension line", origin + "\n20\n" + r64 + "\nextension\n"},
		{"two lines", origin + "\n20\n"},
		{"missing final newline", origin + "\n20\n" + r64},
		{"blank line at end", origin + "\n20\n" + r64 + "\n\n"},
		{"leading zero size", origin + "\n020\n" + r64 + "\n"},
		{"plus in size", origin + "\n+20\n" + r64 + "\n"},
		{"negative size", origin + "\n-1\n" + r64 + "\n"},
		{"size with space", origin + "\n 20\n" + r64 + "\n"},
		{"size overflow", origin + "\n9223372036854775808\n" + r64 + "\n"},
		{"hex size", origin + "\n0x14\n" + r64 + "\n"},
		{"empty size", origin + "\n\n" + r64 + "\n"},
		{"non-canonical base64 root", origin + "\n20\n" + nonCanonical + "\n"},
		{"unpadded root", origin + "\n20\n" + strings.TrimRight(r64, "=") + "\n"},
		{"URL-safe root", origin + "\n20\n" + strings.NewReplacer("+", "-", "/", "_").Replace(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xfb, 0xff}, 16))) + "\n"},
		{"short root", origin + "\n20\n" + base64.StdEncoding.EncodeToString(root[:31]) + "\n"},
		{"long root", origin + "\n20\n" + base64.StdEncoding.EncodeToString(append(root[:], 0)) + "\n"},
		{"empty origin", "\n20\n" + r64 + "\n"},
		{"origin with space", "evidence court\n20\n" + r64 + "\n"},
		{"origin with plus", "evidence+court\n20\n" + r64 + "\n"},
		{"CRLF", origin + "\r\n20\r\n" + r64 + "\r\n"},
		{"empty", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := checkpoint.ParseBody(tt.text); !errors.Is(err, checkpoint.ErrMalformed) {
				t.Errorf("ParseBody(%q) = %v, want ErrMalformed", tt.text, err)
			}
		})
	}
}

func TestSignOpenPolicy(t *testing.T) {
	a, b, c := newMember(t, "court-a.example"), newMember(t, "court-b.example"), newMember(t, "notary.example")
	witness := newMember(t, "witness.example")
	policy := checkpoint.Policy{Origin: origin, Verifiers: verifiers(t, a, b, c), Threshold: 2}
	cp := testCheckpoint()

	signed, err := checkpoint.Sign(cp, a.signer, c.signer)
	if err != nil {
		t.Fatal(err)
	}
	fin, err := checkpoint.Open(signed, policy)
	if err != nil {
		t.Fatalf("two of three signers: %v", err)
	}
	if fin.Checkpoint != cp || strings.Join(fin.Signers, ",") != "court-a.example,notary.example" {
		t.Errorf("Open = %+v, signers %v", fin.Checkpoint, fin.Signers)
	}

	// x/mod/sumdb/note opens it independently.
	n, err := note.Open(signed, verifiers(t, a, b, c))
	if err != nil || n.Text != string(cp.Body()) || len(n.Sigs) != 2 {
		t.Errorf("note.Open: %v, %+v", err, n)
	}

	t.Run("all three", func(t *testing.T) {
		s, _ := checkpoint.Sign(cp, a.signer, b.signer, c.signer)
		if fin, err := checkpoint.Open(s, policy); err != nil || len(fin.Signers) != 3 {
			t.Errorf("Open = %v, %v", fin, err)
		}
	})
	t.Run("one signer", func(t *testing.T) {
		s, _ := checkpoint.Sign(cp, b.signer)
		if _, err := checkpoint.Open(s, policy); !errors.Is(err, checkpoint.ErrPolicy) {
			t.Errorf("Open = %v, want ErrPolicy", err)
		}
	})
	t.Run("one signer and a witness", func(t *testing.T) {
		s, _ := checkpoint.Sign(cp, b.signer, witness.signer)
		if _, err := checkpoint.Open(s, policy); !errors.Is(err, checkpoint.ErrPolicy) {
			t.Errorf("Open = %v, want ErrPolicy", err)
		}
	})
	t.Run("two signers and a witness", func(t *testing.T) {
		s, _ := checkpoint.Sign(cp, a.signer, witness.signer, b.signer)
		if fin, err := checkpoint.Open(s, policy); err != nil || len(fin.Signers) != 2 {
			t.Errorf("Open = %v, %v", fin, err)
		}
	})
	t.Run("only a witness", func(t *testing.T) {
		s, _ := checkpoint.Sign(cp, witness.signer)
		if _, err := checkpoint.Open(s, policy); !errors.Is(err, checkpoint.ErrPolicy) {
			t.Errorf("Open = %v, want ErrPolicy", err)
		}
	})
	t.Run("wrong origin", func(t *testing.T) {
		other := cp
		other.Origin = "evidence.other.example/v1"
		s, _ := checkpoint.Sign(other, a.signer, b.signer)
		if _, err := checkpoint.Open(s, policy); !errors.Is(err, checkpoint.ErrWrongOrigin) {
			t.Errorf("Open = %v, want ErrWrongOrigin", err)
		}
	})
	t.Run("extension line", func(t *testing.T) {
		s, _ := note.Sign(&note.Note{Text: string(cp.Body()) + "ext\n"}, a.signer, b.signer)
		if _, err := checkpoint.Open(s, policy); !errors.Is(err, checkpoint.ErrMalformed) {
			t.Errorf("Open = %v, want ErrMalformed", err)
		}
	})

	// A signature line by a known key over another body.
	other := cp
	other.Size++
	forgedSigned, _ := checkpoint.Sign(other, b.signer)
	forgedLine := forgedSigned[bytes.LastIndex(forgedSigned, []byte("\n\n"))+2:]
	t.Run("forged signature by a known key", func(t *testing.T) {
		s := append(bytes.Clone(signed), forgedLine...)
		if _, err := checkpoint.Open(s, policy); err == nil {
			t.Error("Open accepted a checkpoint carrying a forged signature")
		}
	})
	t.Run("forged repeat of a verified key", func(t *testing.T) {
		// note.Open skips a second signature by a key it has already
		// verified; the checkpoint must still refuse it.
		s1, _ := checkpoint.Sign(cp, a.signer, b.signer)
		s2, _ := checkpoint.Sign(other, a.signer)
		s := append(bytes.Clone(s1), s2[bytes.LastIndex(s2, []byte("\n\n"))+2:]...)
		if _, err := checkpoint.Open(s, policy); err == nil {
			t.Error("Open accepted a checkpoint carrying a forged signature")
		}
	})
	t.Run("same signature twice", func(t *testing.T) {
		s1, _ := checkpoint.Sign(cp, a.signer, b.signer)
		line, _, _ := bytes.Cut(s1[bytes.LastIndex(s1, []byte("\n\n"))+2:], []byte("\n"))
		line = append(line, '\n')
		s := append(bytes.Clone(s1), line...)
		if _, err := checkpoint.Open(s, policy); err == nil {
			t.Error("one institution's signature counted twice or accepted twice")
		}
	})
	t.Run("every bit flipped", func(t *testing.T) {
		for bit := 0; bit < 8*len(signed); bit++ {
			s := bytes.Clone(signed)
			s[bit/8] ^= 1 << (bit % 8)
			if fin, err := checkpoint.Open(s, policy); err == nil {
				t.Fatalf("bit %d flipped (byte %q→%q): still opens as %+v", bit, signed[bit/8], s[bit/8], fin.Checkpoint)
			}
		}
	})
}

// TestBase64Canonical: text that Go's decoder would accept but that is not
// the canonical encoding — line breaks inside, padding bits set — is
// refused wherever a signed or proved value is read.
func TestBase64Canonical(t *testing.T) {
	root := "0000000000000000000000000000000000000000000="
	for _, bad := range []string{"0\r" + root[1:], "0\n" + root[1:], root[:42] + "1="} {
		if _, err := checkpoint.ParseBody("o.example/log\n1\n" + bad + "\n"); err == nil {
			t.Errorf("root %q accepted", bad)
		}
	}
	if _, err := checkpoint.ParseBody("o.example/log\n1\n" + root + "\n"); err != nil {
		t.Fatal(err)
	}
}
