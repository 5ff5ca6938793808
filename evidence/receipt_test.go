package evidence_test

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/cunzheng/cunzheng/chain/checkpoint"
	"github.com/cunzheng/cunzheng/evidence"
)

func TestReceiptRoundTrip(t *testing.T) {
	r := testReceipt(t)
	for _, withOpening := range []bool{true, false} {
		if !withOpening {
			r.Opening, r.Timestamps = nil, nil
		}
		enc := r.Marshal()
		got, err := evidence.ParseReceipt(enc)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("parsed %+v\nwant %+v", got, r)
		}
		if !bytes.Equal(got.Marshal(), enc) {
			t.Error("re-marshal differs")
		}
	}
}

func TestParseReceiptRejects(t *testing.T) {
	good := string(testReceipt(t).Marshal())
	lines := strings.SplitAfter(good, "\n")
	// lines: 0 header, 1 network, 2 manifest, 3 submission, 4 opening, 5 leaf, 6 timestamp, 7 blank, proof...
	join := func(ls ...string) string { return strings.Join(ls, "") }
	rest := join(lines[7:]...)
	tests := []struct {
		name, text string
		want       error
	}{
		{"other header", strings.Replace(good, "cunzheng-receipt/v1", "cunzheng-receipt/v2", 1), evidence.ErrMalformed},
		{"upper-case network", join(lines[0], lines[1][:8]+strings.ToUpper(lines[1][8:]), join(lines[2:]...)), evidence.ErrMalformed},
		{"short network", join(lines[0], lines[1][:20]+"\n", join(lines[2:]...)), evidence.ErrMalformed},
		{"no manifest", join(lines[0], lines[1], join(lines[3:]...)), evidence.ErrMalformed},
		{"no submission", join(lines[0:3]...) + join(lines[4:]...), evidence.ErrMalformed},
		{"no leaf", join(lines[0:5]...) + join(lines[6:]...), evidence.ErrMalformed},
		{"fields out of order", join(lines[0], lines[1], lines[2], lines[4], lines[3], join(lines[5:]...)), evidence.ErrMalformed},
		{"unknown line", join(lines[0:6]...) + "comment hi\n" + join(lines[6:]...), evidence.ErrMalformed},
		{"two openings", join(lines[0:5]...) + lines[4] + join(lines[5:]...), evidence.ErrMalformed},
		{"unpadded base64", strings.Replace(good, "timestamp dG9rZW4=", "timestamp dG9rZW4", 1), evidence.ErrMalformed},
		{"non-canonical base64 padding bits", strings.Replace(good, "timestamp dG9rZW4=", "timestamp dG9rZW5=", 1), evidence.ErrMalformed},
		{"empty field", strings.Replace(good, "timestamp dG9rZW4=", "timestamp ", 1), evidence.ErrMalformed},
		{"CRLF", strings.ReplaceAll(join(lines[:7]...), "\n", "\r\n") + rest, evidence.ErrMalformed},
		{"no blank line", join(lines[:7]...), evidence.ErrMalformed},
		{"bad proof", join(lines[:8]...) + "c2sp.org/tlog-proof@v1\nindex x\n\ncp\n", checkpoint.ErrMalformed},
		{"too large", good + strings.Repeat("x", evidence.MaxReceiptSize), evidence.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := evidence.ParseReceipt([]byte(tt.text)); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestRecordID(t *testing.T) {
	fp := evidence.Fingerprint{0xab, 0xcd, 0x01, 0x02, 0xff}
	if got := evidence.RecordID(fp, 42); got != "CZ-ABCD0102-42" {
		t.Errorf("RecordID = %q", got)
	}
}
