package node

import (
	"bytes"
	"errors"
	"testing"

	"golang.org/x/crypto/cryptobyte"

	"github.com/cunzheng/cunzheng/evidence/ledger"
)

func encodeBatch(items []forwardItem) []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddUint16(uint16(len(items)))
	for _, it := range items {
		b.AddUint8(it.tag)
		b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(it.payload) })
	}
	return b.BytesOrPanic()
}

func TestForwardBatchParsing(t *testing.T) {
	good := encodeBatch([]forwardItem{{'s', []byte("sub")}, {'g', []byte("gov")}})
	items, err := parseForwardBatch(good)
	if err != nil || len(items) != 2 || items[1].tag != 'g' || !bytes.Equal(items[0].payload, []byte("sub")) {
		t.Fatalf("%v %v", items, err)
	}
	for name, bad := range map[string][]byte{
		"empty":        nil,
		"zero entries": {0, 0},
		"unknown kind": encodeBatch([]forwardItem{{'x', []byte("a")}}),
		"trailing":     append(append([]byte(nil), good...), 0),
		"truncated":    good[:len(good)-1],
	} {
		if _, err := parseForwardBatch(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Answers: an index, an existing flag, an error mapped back to its
	// ledger sentinel.
	b := cryptobyte.NewBuilder(nil)
	b.AddUint8(0)
	b.AddUint64(7)
	b.AddUint8(1)
	b.AddUint8(1)
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte("revoked|key revoked")) })
	ans, err := parseForwardAnswers(b.BytesOrPanic(), 2)
	if err != nil || ans[0].idx != 7 || !ans[0].existing || !errors.Is(ans[1].err, ledger.ErrRevoked) {
		t.Fatalf("%+v %v", ans, err)
	}
	if _, err := parseForwardAnswers(b.BytesOrPanic(), 3); err == nil {
		t.Error("a short answer was accepted")
	}
	if _, err := parseForwardAnswers(b.BytesOrPanic(), 1); err == nil {
		t.Error("an answer with trailing entries was accepted")
	}
}

func FuzzParseForwardBatch(f *testing.F) {
	f.Add(encodeBatch([]forwardItem{{'s', []byte("sub")}, {'g', []byte("gov")}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		items, err := parseForwardBatch(data)
		if err != nil {
			return
		}
		if !bytes.Equal(encodeBatch(items), data) {
			t.Fatal("an accepted batch does not re-encode to its bytes")
		}
	})
}

func FuzzParseForwardAnswers(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 7, 1}, 1)
	f.Fuzz(func(t *testing.T, data []byte, n int) {
		if n < 0 || n > forwardBatch {
			return
		}
		parseForwardAnswers(data, n) // must not panic
	})
}
