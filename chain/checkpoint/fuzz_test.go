package checkpoint_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/cunzheng/cunzheng/chain/checkpoint"
)

func FuzzParseBody(f *testing.F) {
	f.Add(string(testCheckpoint().Body()))
	f.Add("a\n0\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
	f.Fuzz(func(t *testing.T, text string) {
		c, err := checkpoint.ParseBody(text)
		if err != nil {
			if !errors.Is(err, checkpoint.ErrMalformed) {
				t.Fatalf("error without sentinel: %v", err)
			}
			return
		}
		if got := string(c.Body()); got != text {
			t.Fatalf("Body() = %q, input %q", got, text)
		}
	})
}

func FuzzParseProof(f *testing.F) {
	p := testProof(f)
	f.Add(p.Format())
	p.Extra = []byte{1, 2, 3}
	f.Add(p.Format())
	f.Fuzz(func(t *testing.T, text []byte) {
		p, err := checkpoint.ParseProof(text)
		if err != nil {
			if !errors.Is(err, checkpoint.ErrMalformed) {
				t.Fatalf("error without sentinel: %v", err)
			}
			return
		}
		if got := p.Format(); !bytes.Equal(got, text) {
			t.Fatalf("Format() = %q, input %q", got, text)
		}
	})
}

func FuzzOpen(f *testing.F) {
	a, b, c := newMember(f, "court-a.example"), newMember(f, "court-b.example"), newMember(f, "notary.example")
	policy := checkpoint.Policy{Origin: origin, Verifiers: verifiers(f, a, b, c), Threshold: 2}
	s, err := checkpoint.Sign(testCheckpoint(), a.signer, b.signer)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(s)
	f.Fuzz(func(t *testing.T, signed []byte) {
		fin, err := checkpoint.Open(signed, policy)
		if err != nil {
			return
		}
		if len(fin.Signers) < 2 || fin.Origin != origin {
			t.Fatalf("Open accepted %+v", fin)
		}
	})
}
