// Command wasm is the browser side of the verification page: it exposes
// evidence/verify to JavaScript (GOOS=js GOARCH=wasm), so the page reaches
// its verdict with the same code as the node and the CLI, against the
// genesis fingerprint pinned in the page — never on the server's word.
//
// The JavaScript surface (globalThis.cunzheng) takes and returns JSON text;
// the functions in this file do the work and also build for the host, so
// they are tested and fuzzed without a browser.
package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cunzheng/cunzheng/evidence"
	"github.com/cunzheng/cunzheng/evidence/verify"
)

// MaxLookupJSON bounds the node answer the page hands to Lookup. The node
// returns at most 100 records with their proofs and the manifest chain.
const MaxLookupJSON = 8 << 20

// Disclosed is the part of a receipt's opening shown on the page, present
// only when the holder kept the opening in the receipt.
type Disclosed struct {
	CaseRef  string `json:"case_ref,omitempty"`
	Title    string `json:"title,omitempty"`
	URL      string `json:"url,omitempty"`
	Device   string `json:"device,omitempty"`
	FileName string `json:"file_name,omitempty"`
}

// View is one verification result as the page shows it.
type View struct {
	*verify.Result
	Disclosed *Disclosed `json:"disclosed,omitempty"`
}

// LookupAnswer is the page's reading of a node's lookup answer: only the
// fields the verifier needs, so a node that adds fields does not break old
// pages.
type LookupAnswer struct {
	Records []struct {
		Leaf  []byte `json:"leaf"`
		Proof string `json:"proof"`
	} `json:"records"`
	Manifests [][]byte `json:"manifests"`
}

// Errors returned to the page as {"error": …}.
var (
	errDigest  = errors.New("the file digest must be 64 hex digits")
	errLookup  = errors.New("the node's answer is not a lookup response")
	errTooMany = errors.New("the node's answer is too large")
)

func parseDigest(s string) ([]byte, error) {
	d, err := hex.DecodeString(s)
	if err != nil || len(d) != 32 {
		return nil, errDigest
	}
	return d, nil
}

// receiptView verifies a receipt against a file digest and the pinned
// network.
func receiptView(receipt []byte, fileHex, pinnedHex string) (*View, error) {
	d, err := parseDigest(fileHex)
	if err != nil {
		return nil, err
	}
	pinned, err := evidence.ParseFingerprint(pinnedHex)
	if err != nil {
		return nil, err
	}
	res := verify.Receipt(receipt, d, pinned)
	v := &View{Result: res}
	if op := res.Opening; op != nil && res.OK() {
		v.Disclosed = &Disclosed{CaseRef: op.CaseRef, Title: op.Title, URL: op.URL, Device: op.Device, FileName: op.FileName}
	}
	return v, nil
}

// ParseLookupAnswer reads a node's lookup answer (JSON) with a size bound.
func ParseLookupAnswer(body []byte) (*LookupAnswer, error) {
	if len(body) > MaxLookupJSON {
		return nil, errTooMany
	}
	var a LookupAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return nil, fmt.Errorf("%w: %v", errLookup, err)
	}
	if len(a.Records) == 0 {
		return nil, fmt.Errorf("%w: no records", errLookup)
	}
	return &a, nil
}

// lookupViews verifies every record of a node's lookup answer.
func lookupViews(body []byte, fileHex, pinnedHex string) ([]*View, error) {
	d, err := parseDigest(fileHex)
	if err != nil {
		return nil, err
	}
	pinned, err := evidence.ParseFingerprint(pinnedHex)
	if err != nil {
		return nil, err
	}
	a, err := ParseLookupAnswer(body)
	if err != nil {
		return nil, err
	}
	out := make([]*View, 0, len(a.Records))
	for _, rec := range a.Records {
		out = append(out, &View{Result: verify.Lookup(rec.Leaf, []byte(rec.Proof), a.Manifests, d, pinned)})
	}
	return out, nil
}

// answer renders v, or err, as the JSON text handed back to JavaScript.
func answer(v any, err error) string {
	if err != nil {
		v = map[string]string{"error": err.Error()}
	}
	b, merr := json.Marshal(v)
	if merr != nil {
		return `{"error":"internal: cannot encode the result"}`
	}
	return string(b)
}

// VerifyReceipt is the page's receipt mode.
func VerifyReceipt(receipt []byte, fileHex, pinnedHex string) string {
	return answer(receiptView(receipt, fileHex, pinnedHex))
}

// VerifyLookup is the page's look-up mode: body is the node's JSON answer.
func VerifyLookup(body []byte, fileHex, pinnedHex string) string {
	v, err := lookupViews(body, fileHex, pinnedHex)
	if err != nil {
		return answer(nil, err)
	}
	return answer(map[string]any{"results": v}, nil)
}
