package evidence_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"

	"github.com/cunzheng/cunzheng/evidence"
)

// updateTo builds and approves a manifest update from prev to next with
// the admin keys of the given raft IDs (testMember derives admin keys from
// raft IDs).
func updateTo(t testing.TB, prev, next *evidence.Manifest, approvers ...uint64) []byte {
	t.Helper()
	fp, err := prev.Fingerprint()
	if err != nil {
		t.Fatal(err)
	}
	next.Sequence, next.Previous = prev.Sequence+1, fp[:]
	g := &evidence.Governance{Action: evidence.ActionManifestUpdate, Manifest: mustMarshal(t, next.Marshal)}
	for _, id := range approvers {
		if err := g.Approve(prev.Origin, fp, testSigner(byte(id))); err != nil {
			t.Fatal(err)
		}
	}
	return mustMarshal(t, g.Marshal)
}

func withMembers(m *evidence.Manifest, members ...evidence.Member) *evidence.Manifest {
	c := *m
	c.Members = members
	c.Threshold = evidence.DefaultThreshold(members)
	return &c
}

func TestManifestUpdateRoundTrip(t *testing.T) {
	prev := testManifest(t)
	next := withMembers(prev, append(prev.Members, testMember(t, "appraisal.example", 4))...)
	enc := updateTo(t, prev, next, 1, 2)
	g, err := evidence.ParseGovernance(enc)
	if err != nil {
		t.Fatal(err)
	}
	if g.Action != evidence.ActionManifestUpdate || len(g.Approvals) != 2 {
		t.Fatalf("parsed %v with %d approvals", g.Action, len(g.Approvals))
	}
	if again := mustMarshal(t, g.Marshal); !bytes.Equal(again, enc) {
		t.Error("re-marshal differs")
	}
	checkTruncations(t, enc, func(b []byte) error { _, err := evidence.ParseGovernance(b); return err })
	if _, err := g.SignedMessage(testOrigin); err == nil {
		t.Error("SignedMessage of a manifest update: want an error")
	}
	// Actions 1 and 2 keep their encoding: the register entry of the
	// helpers still round-trips byte for byte.
	reg := mustMarshal(t, testGovernance(t).Marshal)
	if reg[1] != byte(evidence.ActionRegisterSubmitter) {
		t.Fatalf("register entry action byte %d", reg[1])
	}
	if g2, err := evidence.ParseGovernance(reg); err != nil || !bytes.Equal(mustMarshal(t, g2.Marshal), reg) {
		t.Fatalf("register entry: %v", err)
	}
}

func TestManifestUpdateRejectsNonCanonical(t *testing.T) {
	prev := testManifest(t)
	next := withMembers(prev, prev.Members[:2]...)
	g, _ := evidence.ParseGovernance(updateTo(t, prev, next, 1, 2))
	unsorted := *g
	unsorted.Approvals = []evidence.Approval{g.Approvals[1], g.Approvals[0]}
	if _, err := unsorted.Marshal(); !errors.Is(err, evidence.ErrMalformed) {
		t.Errorf("unsorted approvals: %v", err)
	}
	twice := *g
	twice.Approvals = []evidence.Approval{g.Approvals[0], g.Approvals[0]}
	if _, err := twice.Marshal(); !errors.Is(err, evidence.ErrMalformed) {
		t.Errorf("repeated approval: %v", err)
	}
	mixed := *g
	mixed.Label = "x"
	if _, err := mixed.Marshal(); !errors.Is(err, evidence.ErrMalformed) {
		t.Errorf("update with a label: %v", err)
	}
	if err := g.Approve(testOrigin, evidence.Fingerprint{}, testSigner(1)); err == nil {
		t.Error("second approval by the same key: want an error")
	}
}

func TestCheckManifestUpdate(t *testing.T) {
	prev := testManifest(t) // raft IDs 1, 2, 3; threshold 2
	fresh := testMember(t, "appraisal.example", 4)
	used := func(ms ...*evidence.Manifest) *evidence.UsedIdentities {
		var u evidence.UsedIdentities
		for _, m := range ms {
			u.Add(m)
		}
		return &u
	}
	removed := withMembers(prev, prev.Members[1:]...)
	tests := []struct {
		name string
		enc  func() []byte
		used *evidence.UsedIdentities
		want error // nil = valid
	}{
		{"add one", func() []byte { return updateTo(t, prev, withMembers(prev, append(prev.Members, fresh)...), 1, 3) }, used(prev), nil},
		{"remove one", func() []byte { return updateTo(t, prev, withMembers(prev, prev.Members[1:]...), 2, 3) }, used(prev), nil},
		{"one approval under threshold 2", func() []byte { return updateTo(t, prev, withMembers(prev, append(prev.Members, fresh)...), 1) }, used(prev), evidence.ErrBadSignature},
		{"approval by an outsider", func() []byte { return updateTo(t, prev, withMembers(prev, append(prev.Members, fresh)...), 1, 7) }, used(prev), evidence.ErrBadSignature},
		{"approval by the added member", func() []byte { return updateTo(t, prev, withMembers(prev, append(prev.Members, fresh)...), 1, 4) }, used(prev), evidence.ErrBadSignature},
		{"add two", func() []byte {
			return updateTo(t, prev, withMembers(prev, append(prev.Members, fresh, testMember(t, "x.example", 5))...), 1, 2)
		}, used(prev), evidence.ErrMalformed},
		{"swap one", func() []byte {
			return updateTo(t, prev, withMembers(prev, prev.Members[0], prev.Members[1], fresh), 1, 2)
		}, used(prev), evidence.ErrMalformed},
		{"no change", func() []byte { return updateTo(t, prev, withMembers(prev, prev.Members...), 1, 2) }, used(prev), evidence.ErrMalformed},
		{"member changed", func() []byte {
			ms := append([]evidence.Member(nil), prev.Members...)
			ms[0].Addrs = []string{"/ip4/10.0.0.1/tcp/4001"}
			return updateTo(t, prev, withMembers(prev, append(ms, fresh)...), 1, 2)
		}, used(prev), evidence.ErrMalformed},
		{"origin changed", func() []byte {
			n := withMembers(prev, append(prev.Members, fresh)...)
			n.Origin = "other.example/log"
			return updateTo(t, prev, n, 1, 2)
		}, used(prev), evidence.ErrMalformed},
		{"re-add a removed raft ID", func() []byte {
			back := testMember(t, "court-a2.example", 1)
			back.AdminKey = []byte(testKey(41).Public().(ed25519.PublicKey))
			back.PeerID = "12D3KooWfresh"
			return updateTo(t, removed, withMembers(removed, append(removed.Members, back)...), 2, 3)
		}, used(prev, removed), evidence.ErrReused},
		{"re-add a removed name", func() []byte {
			back := testMember(t, "court-a.example", 9)
			return updateTo(t, removed, withMembers(removed, append(removed.Members, back)...), 2, 3)
		}, used(prev, removed), evidence.ErrReused},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, err := evidence.ParseGovernance(tc.enc())
			if err != nil {
				t.Fatal(err)
			}
			base := prev
			if tc.name == "re-add a removed raft ID" || tc.name == "re-add a removed name" {
				base = removed
			}
			_, err = evidence.CheckManifestUpdate(base, g, tc.used)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("CheckManifestUpdate = %v, want %v", err, tc.want)
			}
		})
	}
	// Wrong predecessor: an update approved against another fingerprint.
	g, _ := evidence.ParseGovernance(updateTo(t, removed, withMembers(removed, append(removed.Members, fresh)...), 2, 3))
	if _, err := evidence.CheckManifestUpdate(prev, g, used(prev)); !errors.Is(err, evidence.ErrMalformed) {
		t.Errorf("update of another version: %v", err)
	}
}

func TestCheckManifestChain(t *testing.T) {
	gen := testManifest(t)
	genEnc := mustMarshal(t, gen.Marshal)
	fp, _ := gen.Fingerprint()
	v2 := withMembers(gen, gen.Members[1:]...)
	u2 := updateTo(t, gen, v2, 1, 2)
	v3 := withMembers(v2, append(v2.Members, testMember(t, "appraisal.example", 4))...)
	u3 := updateTo(t, v2, v3, 2, 3)
	chain, err := evidence.CheckManifestChain(fp, [][]byte{genEnc, u2, u3})
	if err != nil {
		t.Fatal(err)
	}
	if last := chain[len(chain)-1].Manifest; last.Sequence != 3 || len(last.Members) != 3 {
		t.Fatalf("in force: sequence %d, %d members", last.Sequence, len(last.Members))
	}
	for name, bad := range map[string][][]byte{
		"other genesis":   {mustMarshal(t, v2.Marshal), u3},
		"out of order":    {genEnc, u3, u2},
		"skipped version": {genEnc, u3},
		"repeated update": {genEnc, u2, u2},
		"empty":           {},
	} {
		if _, err := evidence.CheckManifestChain(fp, bad); err == nil {
			t.Errorf("%s: chain accepted", name)
		}
	}
	file, err := evidence.MarshalChainFile(fp, [][]byte{genEnc, u2, u3})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := evidence.ParseChainFile(file, fp); err != nil || len(got) != 3 {
		t.Fatalf("ParseChainFile: %d versions, %v", len(got), err)
	}
	if _, err := evidence.ParseChainFile(file, evidence.Fingerprint{1}); err == nil {
		t.Error("chain file for another network accepted")
	}
}

func FuzzParseManifestUpdate(f *testing.F) {
	prev := testManifest(f)
	next := withMembers(prev, append(prev.Members, testMember(f, "appraisal.example", 4))...)
	f.Add(updateTo(f, prev, next, 1, 2))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, ok := roundTrip(t, data, evidence.ParseGovernance)
		if !ok {
			return
		}
		if g.Action == evidence.ActionManifestUpdate {
			_, _ = evidence.CheckManifestUpdate(prev, g, nil)
		}
	})
}
