package checkpoint_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/cunzheng/cunzheng/chain/checkpoint"
)

func testProof(t testing.TB) *checkpoint.Proof {
	t.Helper()
	m := newMember(t, "court-a.example")
	signed, err := checkpoint.Sign(testCheckpoint(), m.signer)
	if err != nil {
		t.Fatal(err)
	}
	return &checkpoint.Proof{
		Index:      5,
		Hashes:     tlog.RecordProof{tlog.Hash(sha256.Sum256([]byte("h1"))), tlog.Hash(sha256.Sum256([]byte("h2")))},
		Checkpoint: signed,
	}
}

func TestProofFormat(t *testing.T) {
	p := testProof(t)
	h1, h2 := base64.StdEncoding.EncodeToString(p.Hashes[0][:]), base64.StdEncoding.EncodeToString(p.Hashes[1][:])
	// The form of the example in https://c2sp.org/tlog-proof.
	want := "c2sp.org/tlog-proof@v1\nindex 5\n" + h1 + "\n" + h2 + "\n\n" + string(p.Checkpoint)
	if got := string(p.Format()); got != want {
		t.Errorf("Format =\n%s\nwant\n%s", got, want)
	}
	withExtra := *p
	withExtra.Extra = []byte("extra data")
	wantExtra := "c2sp.org/tlog-proof@v1\nextra " + base64.StdEncoding.EncodeToString([]byte("extra data")) + "\nindex 5\n" + h1 + "\n" + h2 + "\n\n" + string(p.Checkpoint)
	if got := string(withExtra.Format()); got != wantExtra {
		t.Errorf("Format with extra =\n%s\nwant\n%s", got, wantExtra)
	}
	noHashes := *p
	noHashes.Index, noHashes.Hashes = 0, nil
	for _, q := range []*checkpoint.Proof{p, &withExtra, &noHashes} {
		text := q.Format()
		got, err := checkpoint.ParseProof(text)
		if err != nil {
			t.Fatalf("ParseProof(%q): %v", text, err)
		}
		if !reflect.DeepEqual(got, q) {
			t.Errorf("ParseProof = %+v, want %+v", got, q)
		}
		if !bytes.Equal(got.Format(), text) {
			t.Error("Format round trip differs")
		}
	}
}

func TestParseProofRejects(t *testing.T) {
	p := testProof(t)
	cp := string(p.Checkpoint)
	h := base64.StdEncoding.EncodeToString(p.Hashes[0][:])
	nonCanonical := []byte(h)
	nonCanonical[42] ^= 1 // the last data character before "=" carries 2 padding bits
	if _, err := base64.StdEncoding.DecodeString(string(nonCanonical)); err != nil {
		t.Fatalf("test vector: %v", err)
	}
	many := strings.Repeat(h+"\n", checkpoint.MaxProofHashes+1)
	tests := []struct{ name, text string }{
		{"missing header", "index 5\n" + h + "\n\n" + cp},
		{"other version", "c2sp.org/tlog-proof@v2\nindex 5\n" + h + "\n\n" + cp},
		{"header with trailing space", "c2sp.org/tlog-proof@v1 \nindex 5\n\n" + cp},
		{"missing index", "c2sp.org/tlog-proof@v1\n" + h + "\n\n" + cp},
		{"negative index", "c2sp.org/tlog-proof@v1\nindex -1\n\n" + cp},
		{"leading zero index", "c2sp.org/tlog-proof@v1\nindex 05\n\n" + cp},
		{"plus index", "c2sp.org/tlog-proof@v1\nindex +5\n\n" + cp},
		{"empty index", "c2sp.org/tlog-proof@v1\nindex \n\n" + cp},
		{"index overflow", "c2sp.org/tlog-proof@v1\nindex 9223372036854775808\n\n" + cp},
		{"two spaces", "c2sp.org/tlog-proof@v1\nindex  5\n\n" + cp},
		{"extra after index", "c2sp.org/tlog-proof@v1\nindex 5\nextra AAAA\n\n" + cp},
		{"non-canonical extra", "c2sp.org/tlog-proof@v1\nextra AB==\nindex 5\n\n" + cp},
		{"non-canonical hash", "c2sp.org/tlog-proof@v1\nindex 5\n" + string(nonCanonical) + "\n\n" + cp},
		{"unpadded hash", "c2sp.org/tlog-proof@v1\nindex 5\n" + strings.TrimRight(h, "=") + "\n\n" + cp},
		{"short hash", "c2sp.org/tlog-proof@v1\nindex 5\n" + base64.StdEncoding.EncodeToString(p.Hashes[0][:31]) + "\n\n" + cp},
		{"hash with space", "c2sp.org/tlog-proof@v1\nindex 5\n " + h + "\n\n" + cp},
		{"64 hashes", "c2sp.org/tlog-proof@v1\nindex 5\n" + many + "\n" + cp},
		{"no blank line", "c2sp.org/tlog-proof@v1\nindex 5\n" + h + "\n" + cp},
		{"no checkpoint", "c2sp.org/tlog-proof@v1\nindex 5\n" + h + "\n\n"},
		{"empty", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := checkpoint.ParseProof([]byte(tt.text)); !errors.Is(err, checkpoint.ErrMalformed) {
				t.Errorf("ParseProof = %v, want ErrMalformed", err)
			}
		})
	}
	t.Run("63 hashes", func(t *testing.T) {
		text := "c2sp.org/tlog-proof@v1\nindex 5\n" + strings.Repeat(h+"\n", checkpoint.MaxProofHashes) + "\n" + cp
		if got, err := checkpoint.ParseProof([]byte(text)); err != nil || len(got.Hashes) != checkpoint.MaxProofHashes {
			t.Errorf("ParseProof: %v", err)
		}
	})
}
