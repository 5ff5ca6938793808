package evidence_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/cunzheng/cunzheng/evidence"
)

func descMember(t testing.TB, name string, role evidence.Role, id uint64) evidence.Member {
	_, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	return evidence.Member{Name: name, Role: role, RaftID: id, PeerID: "12D3Koo" + name,
		Addrs: []string{"/ip4/127.0.0.1/tcp/4001"}, NoteKey: vkey, AdminKey: pub}
}

func TestDescriptorRoundTrip(t *testing.T) {
	m := descMember(t, "notary.example", evidence.RoleObserver, 7)
	enc, err := evidence.MarshalDescriptor(&m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := evidence.ParseDescriptor(enc)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := evidence.MarshalDescriptor(got)
	if string(again) != string(enc) {
		t.Fatalf("round trip changed the descriptor:\n%s\n%s", enc, again)
	}
}

func TestDescriptorRejects(t *testing.T) {
	good := descMember(t, "court.example", evidence.RoleCourt, 1)
	enc, _ := evidence.MarshalDescriptor(&good)
	for _, tc := range []struct{ name, text string }{
		{"unknown field", strings.Replace(string(enc), `"name"`, `"colour": 1, "name"`, 1)},
		{"bad role", strings.Replace(string(enc), `"court"`, `"judge"`, 1)},
		{"zero raft id", strings.Replace(string(enc), `"raft_id": 1`, `"raft_id": 0`, 1)},
		{"name with space", strings.Replace(string(enc), `"name": "court.example"`, `"name": "court example"`, 1)},
		{"note key of another name", strings.Replace(string(enc), `"name": "court.example"`, `"name": "court2.example"`, 1)},
		{"trailing", string(enc) + "{}"},
		{"not json", "court"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := evidence.ParseDescriptor([]byte(tc.text))
			if !errors.Is(err, evidence.ErrMalformed) && !errors.Is(err, evidence.ErrUnsupported) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func FuzzParseDescriptor(f *testing.F) {
	m := descMember(f, "court.example", evidence.RoleCourt, 1)
	enc, _ := evidence.MarshalDescriptor(&m)
	f.Add(enc)
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := evidence.ParseDescriptor(data)
		if err != nil {
			return
		}
		if _, err := evidence.MarshalDescriptor(d); err != nil {
			t.Fatal(err)
		}
	})
}
