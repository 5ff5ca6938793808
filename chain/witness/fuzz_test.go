package witness_test

import (
	"bytes"
	"testing"

	"github.com/cunzheng/cunzheng/chain/witness"
)

func FuzzParseRequest(f *testing.F) {
	l := newTestLog(f, "court.other.example")
	l.grow(9)
	f.Add((&witness.Request{OldSize: 5, Proof: l.proof(5, 9), Checkpoint: l.signed(9)}).Format())
	f.Add((&witness.Request{OldSize: 0, Checkpoint: l.signed(3)}).Format())
	f.Add([]byte("old 1\nKgEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\nx\n1\nAA==\n\n— a b\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := witness.ParseRequest(body)
		if err != nil {
			return
		}
		// One byte-exact form: what parses formats back to itself.
		if got := r.Format(); !bytes.Equal(got, body) {
			t.Fatalf("ParseRequest(%q).Format() = %q", body, got)
		}
		if len(r.Proof) > witness.MaxProofLines || (r.OldSize == 0 && len(r.Proof) > 0) {
			t.Fatalf("limits not enforced: %+v", r)
		}
	})
}

func FuzzParseCosignatures(f *testing.F) {
	f.Add([]byte("— witness.example/w1 CMp+6LWBU0anHGH5aNDTJkH/gj79sG+T6+iP2ThYN5krrDJbR1HDnucjL39QsZTSvVjyQLrdk3DXDqI5G2HgLatVs0pWh6Up69HVOw==\n"))
	f.Add([]byte("— a AAAAAAA=\n— b AAAAAAA=\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		lines, err := witness.ParseCosignatures(text)
		if err != nil {
			return
		}
		var joined []byte
		for _, l := range lines {
			joined = append(joined, l...)
		}
		if !bytes.Equal(joined, text) || len(lines) > witness.MaxCosignatureLines {
			t.Fatalf("ParseCosignatures(%q) = %q", text, lines)
		}
	})
}

func FuzzParseLogList(f *testing.F) {
	l := newTestLog(f, "court.other.example")
	f.Add([]byte("# comment\nlog " + origin + " 1\nkey " + l.vkey + "\n"))
	f.Add([]byte("log a.example/log\nkey " + l.vkey + "\n\nlog b.example/log 2\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		logs, err := witness.ParseLogList(data)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, lg := range logs {
			if lg.Origin == "" || seen[lg.Origin] || lg.Threshold < 1 || lg.Verifiers == nil {
				t.Fatalf("ParseLogList(%q) gave %+v", data, lg)
			}
			seen[lg.Origin] = true
		}
	})
}
