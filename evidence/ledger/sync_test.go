package ledger_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/cunzheng/cunzheng/evidence/ledger"
)

// TestRestoreBySync brings an empty replica up to another's snapshot by
// block sync, checking every block, and then both serve identical receipts.
func TestRestoreBySync(t *testing.T) {
	o := newOneInstitution(t)
	src, srcStore := o.open(t, ledger.Config{})
	alice := o.registerSubmitter(t, src)
	var idxs []uint64
	for i := 0; i < 30; i++ {
		idx, _, err := src.Submit(context.Background(), o.submission(t, alice, fmt.Sprint("sync ", i)))
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
	dst, dstStore := o.open(t, ledger.Config{FetchBlocks: fetch})
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
