package ledger_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/cunzheng/cunzheng/chain/store"
	"github.com/cunzheng/cunzheng/evidence"
	"github.com/cunzheng/cunzheng/evidence/ledger"
)

// TestRestoreBySync brings an empty replica up to another's snapshot by
// block sync, checking every block, and then both serve identical receipts.
func TestRestoreBySync(t *testing.T) {
	in := newInstitution(t, "court.example", 1)
	m := &evidence.Manifest{Origin: "court.example/log", Sequence: 1, Threshold: 1, CreatedAt: 1, Members: []evidence.Member{in.member}}
	genesis, _ := m.Marshal()
	fp, _ := m.Fingerprint()
	open := func(fetch ledger.BlockFetcher) (*ledger.Ledger, *store.Store) {
		st, err := store.Open(filepath.Join(t.TempDir(), "db"), fp, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		l, err := ledger.Open(ledger.Config{Store: st, Genesis: genesis, Signer: in.signer, FetchBlocks: fetch})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close(); st.Close() })
		return l, st
	}
	src, srcStore := open(nil)
	pub, alice, _ := ed25519.GenerateKey(rand.Reader)
	g := &evidence.Governance{Action: evidence.ActionRegisterSubmitter, IssuedMS: 1,
		Subject: evidence.PublicKey{Alg: evidence.Ed25519, Key: pub}, Admin: evidence.Ed25519Signer{Key: in.admin}.Public()}
	g.Sign(m.Origin, evidence.Ed25519Signer{Key: in.admin})
	enc, _ := g.Marshal()
	if _, _, err := src.SubmitGovernance(context.Background(), enc); err != nil {
		t.Fatal(err)
	}
	var idxs []uint64
	for i := 0; i < 30; i++ {
		d := sha256.Sum256(fmt.Appendf(nil, "sync %d", i))
		s := &evidence.Submission{Digests: []evidence.Digest{{Alg: evidence.SHA256, Value: d[:]}}, Kind: evidence.KindFile, Size: 1,
			Submitter: evidence.Ed25519Signer{Key: alice}.Public()}
		s.Sign(m.Origin, evidence.Ed25519Signer{Key: alice})
		sb, _ := s.Marshal()
		idx, _, err := src.Submit(context.Background(), sb)
		if err != nil {
			t.Fatal(err)
		}
		idxs = append(idxs, idx)
	}
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	fetch := func(ctx context.Context, from uint64, fn func(uint64, []byte) error) error {
		h, _ := srcStore.Head()
		for height := from; height <= h.Height; height++ {
			item, err := src.SyncItem(height)
			if err != nil {
				return err
			}
			if err := fn(height, item); err != nil {
				return err
			}
		}
		return nil
	}
	dst, dstStore := open(fetch)
	if err := dst.Restore(context.Background(), snap); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if dstStore.TreeSize() != srcStore.TreeSize() || dst.Syncing() {
		t.Fatalf("after restore: size %d vs %d, syncing %v", dstStore.TreeSize(), srcStore.TreeSize(), dst.Syncing())
	}
	for _, idx := range idxs {
		a, err := src.Receipt(idx)
		if err != nil {
			t.Fatal(err)
		}
		b, err := dst.Receipt(idx)
		if err != nil {
			t.Fatalf("receipt %d on the synced replica: %v", idx, err)
		}
		if string(a.Marshal()) != string(b.Marshal()) {
			t.Fatalf("receipt %d differs between replicas", idx)
		}
	}
}
