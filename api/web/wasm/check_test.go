package main

import (
	"encoding/json"
	"strings"
	"testing"
)

const zeroFP = "0000000000000000000000000000000000000000000000000000000000000000"

func TestVerifyReceiptRejectsBadInput(t *testing.T) {
	cases := []struct{ name, receipt, digest, pinned, want string }{
		{"short digest", "x", "abcd", zeroFP, `"error"`},
		{"bad pinned", "x", zeroFP, "zz", `"error"`},
		{"not a receipt", "hello", zeroFP, zeroFP, `"verdict":"invalid"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := VerifyReceipt([]byte(c.receipt), c.digest, c.pinned)
			if !strings.Contains(got, c.want) || !json.Valid([]byte(got)) {
				t.Fatalf("got %s, want it to contain %s", got, c.want)
			}
		})
	}
}

func TestVerifyLookupRejectsBadAnswers(t *testing.T) {
	for _, body := range []string{"", "null", `{"records":[]}`, `{"records":[{"leaf":"AA==","proof":"x"}],"manifests":["AA=="]}`} {
		got := VerifyLookup([]byte(body), zeroFP, zeroFP)
		if strings.Contains(got, `"verified"`) || !json.Valid([]byte(got)) {
			t.Errorf("answer %q: got %s", body, got)
		}
	}
}

// FuzzLookupAnswer feeds arbitrary node answers to the page's verifier: it
// must answer JSON and never say verified for material it cannot check.
func FuzzLookupAnswer(f *testing.F) {
	f.Add([]byte(`{"records":[{"leaf":"AQ==","proof":"c2lnbg=="}],"manifests":["AQ=="]}`))
	f.Add([]byte(`{"records":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		got := VerifyLookup(body, zeroFP, zeroFP)
		if !json.Valid([]byte(got)) {
			t.Fatalf("not JSON: %s", got)
		}
		if strings.Contains(got, `"verdict":"verified"`) {
			t.Fatalf("verified a fuzzed answer: %s", body)
		}
	})
}
