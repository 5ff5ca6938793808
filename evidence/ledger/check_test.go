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
		{"first index rewound", "extend", block([][]byte{fresh}, func(b *chain.Block) { b.Header.FirstIndex--; b.Header.TreeSize-- })},
		{"committed height rewritten", "differs from the committed block", block([][]byte{fresh}, func(b *chain.Block) {
			b.Header.Height, b.Header.Prev, b.Header.FirstIndex, b.Header.TreeSize = head.Height, head.Prev, head.FirstIndex, head.FirstIndex+1
		})},
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
	// Raft resends entries a replica already holds: the committed head
	// block itself passes.
	committed, err := st.Block(head.Height)
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := committed.Marshal()
	if err := l.Check(append([]byte{1}, enc...)); err != nil {
		t.Fatalf("the committed block, resent, is refused: %v", err)
	}

	// Finalize entries for a tree this replica holds: each refused with
	// its reason and an alarm.
	size := st.TreeSize()
	root, _ := st.TreeHash(size)
	sign := func(c checkpoint.Checkpoint) []byte {
		s, err := checkpoint.Sign(c, in.signer)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	honest := sign(checkpoint.Checkpoint{Origin: m.Origin, Size: int64(size), Root: root})
	if err := l.Check(append([]byte{2}, honest...)); err != nil {
		t.Fatalf("an honest finalize entry is refused: %v", err)
	}
	forgedSig := append([]byte(nil), honest...)
	forgedSig[len(forgedSig)-5] ^= 1
	for _, tc := range []struct {
		name, want, alarm string
		note              []byte
	}{
		{"another root", "another tree", "root this replica does not have",
			sign(checkpoint.Checkpoint{Origin: m.Origin, Size: int64(size), Root: sha256.Sum256([]byte("x"))})},
		{"forged signature", "finalize entry", "does not meet the policy", forgedSig},
		{"another network", "finalize entry", "does not meet the policy",
			sign(checkpoint.Checkpoint{Origin: "other.example/log", Size: int64(size), Root: root})},
	} {
		t.Run("final/"+tc.name, func(t *testing.T) {
			alarms := strings.Join(l.Alarms(), "\n")
			err := l.Check(append([]byte{2}, tc.note...))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check = %v, want an error mentioning %q", err, tc.want)
			}
			if got := l.Alarms(); strings.Join(got, "\n") == alarms || !strings.Contains(got[len(got)-1], tc.alarm) {
				t.Fatalf("alarms %q, want a new one mentioning %q", got, tc.alarm)
			}
		})
	}

	// A leader that keeps re-proposing one refused entry raises the same
	// alarm again and again: it counts up instead of pushing the other
	// alarms out of the bounded list.
	other := sign(checkpoint.Checkpoint{Origin: m.Origin, Size: int64(size), Root: sha256.Sum256([]byte("y"))})
	for range 500 {
		l.Check(append([]byte{2}, other...))
	}
	got := strings.Join(l.Alarms(), "\n")
	if !strings.Contains(got, "proposed block root does not match its leaves") || !strings.Contains(got, "times)") {
		t.Fatalf("after 500 repeats of one alarm, the list is %q", got)
	}
	if st.TreeSize() != size {
		t.Fatal("Check changed the log")
	}
	if got, _, _ := st.LatestCheckpoint(); got != size {
		t.Fatalf("latest final checkpoint is of size %d, want %d", got, size)
	}
}
