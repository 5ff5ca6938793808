package audit

import (
	"testing"

	"github.com/cunzheng/cunzheng/evidence"
)

// FuzzParseState: a state file never panics the parser, and whatever it
// accepts re-encodes to a state it accepts again, unchanged.
func FuzzParseState(f *testing.F) {
	var pinned evidence.Fingerprint
	pinned[0] = 1
	f.Add([]byte(`{"version":1,"network":"` + pinned.String() + `","nodes":{}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseState(data, pinned)
		if err != nil {
			return
		}
		enc, err := st.Marshal()
		if err != nil {
			t.Fatalf("accepted state does not marshal: %v", err)
		}
		again, err := ParseState(enc, pinned)
		if err != nil {
			t.Fatalf("re-encoded state refused: %v", err)
		}
		enc2, _ := again.Marshal()
		if string(enc) != string(enc2) {
			t.Fatalf("state changed on a round trip")
		}
	})
}
