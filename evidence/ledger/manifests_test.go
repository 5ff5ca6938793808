package ledger_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/cunzheng/cunzheng/evidence"
	"github.com/cunzheng/cunzheng/evidence/ledger"
	"github.com/cunzheng/cunzheng/evidence/verify"
)

// manifestUpdate builds a manifest update from prev to next, approved by
// the admins given.
func manifestUpdate(t *testing.T, prev, next *evidence.Manifest, admins ...institution) []byte {
	t.Helper()
	fp, _ := prev.Fingerprint()
	next.Sequence, next.Previous, next.Threshold = prev.Sequence+1, fp[:], evidence.DefaultThreshold(next.Members)
	enc, err := next.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	g := &evidence.Governance{Action: evidence.ActionManifestUpdate, Manifest: enc}
	for _, a := range admins {
		if err := g.Approve(prev.Origin, fp, evidence.Ed25519Signer{Key: a.admin}); err != nil {
			t.Fatal(err)
		}
	}
	entry, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return entry
}

// TestManifestUpdate: removing a member takes force for the trees after
// the update (the removed member's signature no longer counts, the
// remaining policy finalizes them), receipts carry the chain up to the
// version in force at their checkpoint and verify against the genesis pin,
// a restart reloads the chain, and a removed member's raft ID cannot come
// back.
func TestManifestUpdate(t *testing.T) {
	ins, l, st, m := threeInstitutions(t)
	fp, _ := m.Fingerprint()
	finalize := func(idx uint64, signers ...institution) {
		t.Helper()
		for _, in := range signers {
			if err := l.AddCosignature(cosign(t, in, m.Origin, st)); err != nil {
				t.Fatalf("cosignature of %s: %v", in.member.Name, err)
			}
		}
		waitFinal(t, l, idx)
	}
	alice, idx := register(t, l, m.Origin, ins[0].admin)
	finalize(idx, ins[1])
	submit := func(data string) ([]byte, uint64) {
		d := sha256.Sum256([]byte(data))
		s := &evidence.Submission{Digests: []evidence.Digest{{Alg: evidence.SHA256, Value: d[:]}}, Kind: evidence.KindFile, Size: 1,
			Submitter: evidence.Ed25519Signer{Key: alice}.Public()}
		s.Sign(m.Origin, evidence.Ed25519Signer{Key: alice})
		enc, _ := s.Marshal()
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		idx, _, err := l.Submit(ctx, enc)
		if err != nil {
			t.Fatalf("submit %s: %v", data, err)
		}
		if _, err := l.Record(idx); !errors.Is(err, ledger.ErrNotFinal) {
			t.Fatalf("submit %s: want not final yet, got %v", data, err)
		}
		return d[:], idx
	}
	before, beforeIdx := submit("before the change")
	finalize(beforeIdx, ins[2])

	// Remove the notary, approved by both courts (threshold 2 of 3).
	v2 := *m
	v2.Members = m.Members[:2]
	update := manifestUpdate(t, m, &v2, ins[0], ins[1])
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	updIdx, _, err := l.SubmitGovernance(ctx, update)
	cancel()
	if err != nil {
		t.Fatalf("manifest update: %v", err)
	}
	if _, err := l.Record(updIdx); !errors.Is(err, ledger.ErrNotFinal) {
		t.Fatalf("manifest update: want not final yet, got %v", err)
	}
	if got := l.Manifest(); got.Sequence != 2 || len(got.Members) != 2 {
		t.Fatalf("manifest in force: sequence %d, %d members", got.Sequence, len(got.Members))
	}
	// The tree holding the update is signed under version 2: the removed
	// notary's signature is refused.
	if err := l.AddCosignature(cosign(t, ins[2], m.Origin, st)); !errors.Is(err, ledger.ErrInvalid) {
		t.Fatalf("removed member's cosignature: %v", err)
	}
	finalize(updIdx, ins[1])
	after, afterIdx := submit("after the change")
	finalize(afterIdx, ins[1])

	for _, tc := range []struct {
		name     string
		idx      uint64
		digest   []byte
		versions int
	}{{"before", beforeIdx, before, 1}, {"after", afterIdx, after, 2}} {
		rc, err := l.Receipt(tc.idx)
		if err != nil {
			t.Fatal(err)
		}
		if len(rc.Manifests) != tc.versions {
			t.Errorf("receipt %s the change carries %d manifest versions, want %d", tc.name, len(rc.Manifests), tc.versions)
		}
		if res := verify.Receipt(rc.Marshal(), tc.digest, fp); !res.OK() {
			t.Errorf("receipt %s the change: %s", tc.name, res.Reason)
		}
	}

	// The notary's raft ID cannot return, even under a new name and keys.
	back := newInstitution(t, "notary2.example", ins[2].member.RaftID)
	v3 := v2
	v3.Members = append(v2.Members[:2:2], back.member)
	if _, _, err := l.SubmitGovernance(context.Background(), manifestUpdate(t, &v2, &v3, ins[0], ins[1])); !errors.Is(err, ledger.ErrConflict) {
		t.Fatalf("re-adding raft ID %d: %v", back.member.RaftID, err)
	}
	// An approval by the removed notary does not count.
	fresh := newInstitution(t, "notary2.example", 7)
	v3.Members = append(v2.Members[:2:2], fresh.member)
	if _, _, err := l.SubmitGovernance(context.Background(), manifestUpdate(t, &v2, &v3, ins[0], ins[2])); !errors.Is(err, ledger.ErrUnauthorized) {
		t.Fatalf("approval by a removed member: %v", err)
	}
	// Updating the version that is no longer in force is refused.
	if _, _, err := l.SubmitGovernance(context.Background(), manifestUpdate(t, m, &v3, ins[0], ins[1])); !errors.Is(err, ledger.ErrInvalid) {
		t.Fatalf("update of version 1 again: %v", err)
	}

	// A restart reloads the chain from the log.
	genesis, _ := m.Marshal()
	l.Close()
	l2, err := ledger.Open(ledger.Config{Store: st, Genesis: genesis, Signer: ins[0].signer})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if got := l2.Manifests(); len(got) != 2 || string(got[1]) != string(update) {
		t.Fatalf("after restart: %d manifest versions", len(got))
	}
	rc, err := l2.Receipt(afterIdx)
	if err != nil || len(rc.Manifests) != 2 {
		t.Fatalf("receipt after restart: %v", err)
	}
}
