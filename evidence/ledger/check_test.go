package ledger_test

import (
	"context"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/cunzheng/cunzheng/chain"
	"github.com/cunzheng/cunzheng/chain/checkpoint"
	"github.com/cunzheng/cunzheng/evidence"
	"github.com/cunzheng/cunzheng/evidence/ledger"
)

// TestCheckRefusesForgedProposals: a follower checks a proposed block
// before acknowledging it; a forged one (wrong root, time backwards or off
// the follower's clock, a repeated record, a leaf not matching its
// submission, another network) is refused, and an honest one passes.
func TestCheckRefusesForgedProposals(t *testing.T) {
	o := newOneInstitution(t)
	l, st := o.open(t, ledger.Config{})
	alice := o.registerSubmitter(t, l)
	m, in := o.m, o.in
	sub := func(data string) []byte { return o.submission(t, alice, data) }
	first := sub("first")
	if _, _, err := l.Submit(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	head, _ := st.Head()
	now := uint64(time.Now().UnixMilli())
	block := func(subs [][]byte, mut func(b *chain.Block)) []byte {
		var leaves [][]byte
		for _, s := range subs {
			ps, _ := evidence.ParseSubmission(s)
			leaf, _ := evidence.EvidenceLeaf(ps, s, now, head.Height+1).Marshal()
			leaves = append(leaves, leaf)
		}
		root, _ := st.ComputeRoot(leaves)
		b := &chain.Block{Header: chain.BlockHeader{Origin: m.Origin, Height: head.Height + 1, Prev: head.Hash(),
			FirstIndex: head.TreeSize, Count: uint32(len(leaves)), TreeSize: head.TreeSize + uint64(len(leaves)), Root: root, TimeMS: now},
			Leaves: leaves, Sidecars: subs}
		if mut != nil {
			mut(b)
		}
		enc, err := b.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return append([]byte{1}, enc...)
	}
	fresh := sub("fresh")
	if err := l.Check(block([][]byte{fresh}, nil)); err != nil {
		t.Fatalf("an honest block is refused: %v", err)
	}
	for _, tc := range []struct {
		name, want string
		entry      []byte
	}{
		{"wrong root", "root", block([][]byte{fresh}, func(b *chain.Block) { b.Header.Root[3] ^= 1 })},
		{"time backwards", "extend", block([][]byte{fresh}, func(b *chain.Block) { b.Header.TimeMS = head.TimeMS - 1 })},
		{"time off the clock", "clock", block([][]byte{fresh}, func(b *chain.Block) { b.Header.TimeMS = now + 3600_000 })},
		{"repeated record", "duplicate", block([][]byte{first}, nil)},
		{"record twice in one block", "duplicate", block([][]byte{fresh, fresh}, nil)},
		{"leaf not its submission", "submission", block([][]byte{fresh}, func(b *chain.Block) { b.Sidecars[0] = sub("other") })},
		{"another network", "origin", block([][]byte{fresh}, func(b *chain.Block) { b.Header.Origin = "other.example/log" })},
		{"wrong prev", "extend", block([][]byte{fresh}, func(b *chain.Block) { b.Header.Prev[0] ^= 1 })},
		{"garbage", "", []byte{1, 0, 1}},
		{"unknown kind", "kind", []byte{9, 1, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := l.Check(tc.entry)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check = %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
	// A finalize entry for a tree this replica holds with another root.
	size := st.TreeSize()
	bad, _ := checkpoint.Sign(checkpoint.Checkpoint{Origin: m.Origin, Size: int64(size), Root: sha256.Sum256([]byte("x"))}, in.signer)
	if err := l.Check(append([]byte{2}, bad...)); err == nil {
		t.Fatal("a finalize entry for another root passed Check")
	}
	if st.TreeSize() != size {
		t.Fatal("Check changed the log")
	}
}
