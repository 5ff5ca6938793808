package evidence_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/cunzheng/cunzheng/evidence"
)

func TestManifestRoundTrip(t *testing.T) {
	m := testManifest(t)
	enc := mustMarshal(t, m.Marshal)
	got, err := evidence.ParseManifest(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Errorf("parsed %+v\nwant %+v", got, m)
	}
	if again := mustMarshal(t, got.Marshal); !bytes.Equal(again, enc) {
		t.Error("re-marshal differs")
	}
	fp, err := m.Fingerprint()
	if err != nil || fp != sha256.Sum256(enc) {
		t.Errorf("Fingerprint = %s, %v; want SHA-256 of the encoding", fp, err)
	}
	pf, err := evidence.ParseFingerprint(fp.String())
	if err != nil || pf != fp {
		t.Errorf("ParseFingerprint(String()) = %s, %v", pf, err)
	}
	checkTruncations(t, enc, func(b []byte) error { _, err := evidence.ParseManifest(b); return err })

	next := testManifest(t)
	next.Sequence, next.Previous = 2, fp[:]
	enc2 := mustMarshal(t, next.Marshal)
	got2, err := evidence.ParseManifest(enc2)
	if err != nil || !bytes.Equal(got2.Previous, fp[:]) {
		t.Errorf("second version: %v", err)
	}
}

func TestParseManifestRejects(t *testing.T) {
	enc := mustMarshal(t, testManifest(t).Marshal)
	with := func(i int, v byte) []byte { b := bytes.Clone(enc); b[i] = v; return b }
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"trailing byte", append(bytes.Clone(enc), 0), evidence.ErrMalformed},
		{"version 0", with(0, 0), evidence.ErrUnsupported},
		{"version 2", with(0, 2), evidence.ErrUnsupported},
		{"over size limit", make([]byte, evidence.MaxManifestSize+1), evidence.ErrTooLarge},
		{"empty", nil, evidence.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := evidence.ParseManifest(tt.data); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestManifestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*evidence.Manifest)
	}{
		{"duplicate name", func(m *evidence.Manifest) {
			dup := testMember(t, m.Members[0].Name, 9)
			m.Members[2] = dup
		}},
		{"duplicate raft id", func(m *evidence.Manifest) { m.Members[1].RaftID = m.Members[0].RaftID }},
		{"zero raft id", func(m *evidence.Manifest) { m.Members[1].RaftID = 0 }},
		{"duplicate admin key", func(m *evidence.Manifest) { m.Members[2].AdminKey = m.Members[0].AdminKey }},
		{"duplicate peer id", func(m *evidence.Manifest) { m.Members[2].PeerID = m.Members[1].PeerID }},
		{"missing role", func(m *evidence.Manifest) { m.Members[1].Role = 0 }},
		{"unknown role", func(m *evidence.Manifest) { m.Members[1].Role = 6 }},
		{"malformed note key", func(m *evidence.Manifest) { m.Members[0].NoteKey = "court-a.example+00000000+AQ" }},
		{"note key of another name", func(m *evidence.Manifest) { m.Members[0].NoteKey = m.Members[1].NoteKey }},
		{"admin key 31 bytes", func(m *evidence.Manifest) { m.Members[0].AdminKey = m.Members[0].AdminKey[:31] }},
		{"key name with space", func(m *evidence.Manifest) { m.Members[0] = testMember(t, "court a", 1) }},
		{"key name with plus", func(m *evidence.Manifest) { m.Members[0].Name = "court+a.example" }},
		{"empty key name", func(m *evidence.Manifest) { m.Members[0].Name = "" }},
		{"origin with https://", func(m *evidence.Manifest) { m.Origin = "https://evidence.court.example/v1" }},
		{"origin with space", func(m *evidence.Manifest) { m.Origin = "evidence court" }},
		{"empty origin", func(m *evidence.Manifest) { m.Origin = "" }},
		{"sequence 0", func(m *evidence.Manifest) { m.Sequence = 0 }},
		{"genesis with previous", func(m *evidence.Manifest) { m.Previous = make([]byte, 32) }},
		{"later version without previous", func(m *evidence.Manifest) { m.Sequence = 2 }},
		{"previous 31 bytes", func(m *evidence.Manifest) { m.Sequence, m.Previous = 2, make([]byte, 31) }},
		{"no members", func(m *evidence.Manifest) { m.Members = nil }},
		{"empty address", func(m *evidence.Manifest) { m.Members[0].Addrs = []string{""} }},
		{"address with newline", func(m *evidence.Manifest) { m.Members[0].Addrs = []string{"/ip4/1.2.3.4\n"} }},
		{"threshold 1 of 3 (not a majority)", func(m *evidence.Manifest) { m.Threshold = 1 }},
		{"threshold 0", func(m *evidence.Manifest) { m.Threshold = 0 }},
		{"threshold above voting members", func(m *evidence.Manifest) { m.Threshold = 4 }},
		{"observers do not count toward a majority", func(m *evidence.Manifest) {
			m.Members[1].Role, m.Members[2].Role = evidence.RoleObserver, evidence.RoleObserver
			m.Threshold = 2
		}},
		{"no voting member", func(m *evidence.Manifest) {
			for i := range m.Members {
				m.Members[i].Role = evidence.RoleObserver
			}
			m.Threshold = 0
		}},
		{"threshold 2 of 4 (a tie is not a majority)", func(m *evidence.Manifest) {
			m.Members = append(m.Members, testMember(t, "appraisal.example", 4))
			m.Threshold = 2
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := testManifest(t)
			tt.mutate(m)
			if err := m.Validate(); !errors.Is(err, evidence.ErrMalformed) {
				t.Errorf("Validate = %v, want ErrMalformed", err)
			}
			if _, err := m.Marshal(); err == nil {
				t.Error("Marshal accepted an invalid manifest")
			}
		})
	}

	valid := []struct {
		name   string
		mutate func(*evidence.Manifest)
	}{
		{"threshold 3 of 3", func(m *evidence.Manifest) { m.Threshold = 3 }},
		{"one member", func(m *evidence.Manifest) { m.Members, m.Threshold = m.Members[:1], 1 }},
		{"observer beside 1 voter", func(m *evidence.Manifest) {
			m.Members[1].Role, m.Members[2].Role = evidence.RoleObserver, evidence.RoleObserver
			m.Threshold = 1
		}},
		{"empty peer ids", func(m *evidence.Manifest) {
			for i := range m.Members {
				m.Members[i].PeerID = ""
			}
		}},
	}
	for _, tt := range valid {
		t.Run(tt.name, func(t *testing.T) {
			m := testManifest(t)
			tt.mutate(m)
			if err := m.Validate(); err != nil {
				t.Errorf("Validate = %v", err)
			}
		})
	}
	if got := evidence.DefaultThreshold(testManifest(t).Members); got != 2 {
		t.Errorf("DefaultThreshold of 3 voters = %d, want 2", got)
	}
}

func TestManifestFile(t *testing.T) {
	m := testManifest(t)
	file, err := evidence.MarshalManifestFile(m)
	if err != nil {
		t.Fatal(err)
	}
	got, fp, err := evidence.ParseManifestFile(file)
	if err != nil {
		t.Fatal(err)
	}
	wantFP, _ := m.Fingerprint()
	if fp != wantFP || !reflect.DeepEqual(got, m) {
		t.Errorf("ParseManifestFile = %+v, %s", got, fp)
	}
	again, err := evidence.MarshalManifestFile(got)
	if err != nil || !bytes.Equal(again, file) {
		t.Errorf("file round trip differs: %v", err)
	}
	if !bytes.Contains(file, []byte(`"role": "court"`)) {
		t.Errorf("roles are not named in the file:\n%s", file)
	}

	edit := func(f func(map[string]any)) []byte {
		var v map[string]any
		if err := json.Unmarshal(file, &v); err != nil {
			t.Fatal(err)
		}
		f(v)
		out, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	readable := func(v map[string]any) map[string]any { return v["manifest"].(map[string]any) }
	member0 := func(v map[string]any) map[string]any {
		return readable(v)["members"].([]any)[0].(map[string]any)
	}
	otherCanonical := mustMarshal(t, testManifest(t).Marshal)
	tests := []struct {
		name string
		data []byte
	}{
		{"origin edited", bytes.Replace(file, []byte(`"origin": "`+testOrigin), []byte(`"origin": "evidence.evil.example/v1`), 1)},
		{"threshold edited", edit(func(v map[string]any) { readable(v)["threshold"] = 3 })},
		{"member name edited", edit(func(v map[string]any) { member0(v)["name"] = "court-z.example" })},
		{"member role edited", edit(func(v map[string]any) { member0(v)["role"] = "notary" })},
		{"member address edited", edit(func(v map[string]any) { member0(v)["addrs"] = []string{"/ip4/10.0.0.1/tcp/1"} })},
		{"fingerprint edited", edit(func(v map[string]any) { v["fingerprint"] = strings.Repeat("0", 64) })},
		{"fingerprint upper case", edit(func(v map[string]any) { v["fingerprint"] = strings.ToUpper(v["fingerprint"].(string)) })},
		{"canonical replaced", edit(func(v map[string]any) { v["canonical"] = otherCanonical })},
		{"canonical truncated", edit(func(v map[string]any) { v["canonical"] = otherCanonical[:10] })},
		{"unknown field", edit(func(v map[string]any) { v["comment"] = "hi" })},
		{"unknown member field", edit(func(v map[string]any) { member0(v)["weight"] = 2 })},
		{"bad role name", edit(func(v map[string]any) { member0(v)["role"] = "judge" })},
		{"trailing data", append(bytes.Clone(file), []byte("{}")...)},
		{"not JSON", []byte("fingerprint: x")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := evidence.ParseManifestFile(tt.data)
			if err == nil {
				t.Fatal("accepted")
			}
			if !isDecodeError(err) {
				t.Errorf("err = %v, want a decode sentinel", err)
			}
		})
	}
}

func TestManifestVerifiersAndAdmins(t *testing.T) {
	m := testManifest(t)
	m.Members[2].Role = evidence.RoleObserver
	vs, err := m.Verifiers()
	if err != nil {
		t.Fatal(err)
	}
	for i, mem := range m.Members {
		_, err := vs.Verifier(mem.Name, keyHash(t, mem.NoteKey))
		if voting := mem.Role.Voting(); voting != (err == nil) {
			t.Errorf("member %d (voting %v): Verifier err = %v", i, voting, err)
		}
		if !m.IsAdmin(evidence.PublicKey{Alg: evidence.Ed25519, Key: mem.AdminKey}) {
			t.Errorf("member %d admin key not recognised", i)
		}
	}
	if m.IsAdmin(testSigner(77).Public()) {
		t.Error("stranger is admin")
	}
	if m.IsAdmin(evidence.PublicKey{Alg: 2, Key: m.Members[0].AdminKey}) {
		t.Error("admin key with another algorithm is admin")
	}
}

func keyHash(t *testing.T, vkey string) uint32 {
	t.Helper()
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return v.KeyHash()
}
