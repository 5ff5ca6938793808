package ledger_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/cunzheng/cunzheng/chain"
	"github.com/cunzheng/cunzheng/chain/checkpoint"
	"github.com/cunzheng/cunzheng/chain/store"
	"github.com/cunzheng/cunzheng/consensus"
	"github.com/cunzheng/cunzheng/evidence"
	"github.com/cunzheng/cunzheng/evidence/ledger"
)

type institution struct {
	signer note.Signer
	admin  ed25519.PrivateKey
	member evidence.Member
}

func newInstitution(t *testing.T, name string, id uint64) institution {
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := note.NewSigner(skey)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	return institution{s, priv, evidence.Member{Name: name, Role: evidence.RoleCourt, RaftID: id, NoteKey: vkey, AdminKey: pub}}
}

// network of three institutions (threshold 2); the ledger under test is
// institution 0's, collecting signatures itself.
func threeInstitutions(t *testing.T) ([]institution, *ledger.Ledger, *store.Store, *evidence.Manifest) {
	var ins []institution
	m := &evidence.Manifest{Origin: "court.example/log", Sequence: 1, Threshold: 2, CreatedAt: 1}
	for i, n := range []string{"court-a.example", "court-b.example", "notary.example"} {
		in := newInstitution(t, n, uint64(i+1))
		ins = append(ins, in)
		m.Members = append(m.Members, in.member)
	}
	genesis, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	fp, _ := m.Fingerprint()
	st, err := store.Open(filepath.Join(t.TempDir(), "db"), fp, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(ledger.Config{Store: st, Genesis: genesis, Signer: ins[0].signer})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(); st.Close() })
	return ins, l, st, m
}

func register(t *testing.T, l *ledger.Ledger, origin string, admin ed25519.PrivateKey) (ed25519.PrivateKey, uint64) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	g := &evidence.Governance{Action: evidence.ActionRegisterSubmitter, IssuedMS: 1,
		Subject: evidence.PublicKey{Alg: evidence.Ed25519, Key: pub}, Admin: evidence.Ed25519Signer{Key: admin}.Public()}
	g.Sign(origin, evidence.Ed25519Signer{Key: admin})
	enc, _ := g.Marshal()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	idx, _, err := l.SubmitGovernance(ctx, enc)
	if err != nil {
		t.Fatalf("submit answers once the entry is durable, final or not: %v", err)
	}
	if _, err := l.Record(idx); !errors.Is(err, ledger.ErrNotFinal) {
		t.Fatalf("with one of two required signatures, want ErrNotFinal, got %v", err)
	}
	return priv, idx
}

func cosign(t *testing.T, in institution, origin string, st *store.Store) []byte {
	size := st.TreeSize()
	root, _ := st.TreeHash(size)
	signed, err := checkpoint.Sign(checkpoint.Checkpoint{Origin: origin, Size: int64(size), Root: root}, in.signer)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

func waitFinal(t *testing.T, l *ledger.Ledger, index uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.WaitFinal(ctx, index); err != nil {
		t.Fatalf("record %d not final: %v", index, err)
	}
}

func TestFinalityNeedsQuorumOfInstitutions(t *testing.T) {
	ins, l, st, m := threeInstitutions(t)
	_, idx := register(t, l, m.Origin, ins[0].admin)
	if _, _, err := st.LatestCheckpoint(); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a checkpoint became final with one signature: %v", err)
	}
	// Bad co-signatures change nothing.
	stranger := newInstitution(t, "stranger.example", 9)
	forged := cosign(t, ins[1], m.Origin, st)
	forged[len(forged)-5] ^= 1
	wrongRoot := func() []byte {
		s, _ := checkpoint.Sign(checkpoint.Checkpoint{Origin: m.Origin, Size: int64(st.TreeSize()), Root: sha256.Sum256([]byte("x"))}, ins[1].signer)
		return s
	}()
	beyond, _ := checkpoint.Sign(checkpoint.Checkpoint{Origin: m.Origin, Size: 99, Root: sha256.Sum256([]byte("x"))}, ins[1].signer)
	for name, c := range map[string][]byte{
		"stranger's key":   cosign(t, stranger, m.Origin, st),
		"forged signature": forged,
		"another root":     wrongRoot,
		"beyond the tree":  beyond,
		"garbage":          []byte("not a note"),
	} {
		if err := l.AddCosignature(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, _, err := st.LatestCheckpoint(); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("bad co-signatures made a checkpoint final")
	}
	if len(l.Alarms()) == 0 || !strings.Contains(strings.Join(l.Alarms(), ";"), "different root") {
		t.Fatalf("a signature over another root raised no alarm: %v", l.Alarms())
	}
	// A second institution's signature completes the quorum.
	if err := l.AddCosignature(cosign(t, ins[1], m.Origin, st)); err != nil {
		t.Fatal(err)
	}
	waitFinal(t, l, idx)
	_, signed, err := st.LatestCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	vs, _ := m.Verifiers()
	fin, err := checkpoint.Open(signed, checkpoint.Policy{Origin: m.Origin, Verifiers: vs, Threshold: 2})
	if err != nil || len(fin.Signers) != 2 {
		t.Fatalf("final checkpoint: %v %v", fin, err)
	}
	// golang.org/x/mod/sumdb/note opens it with the institutions' keys.
	if n, err := note.Open(signed, vs); err != nil || len(n.Sigs) != 2 {
		t.Fatalf("note.Open: %v", err)
	}
}

// fakeOrderer applies whatever it is given, to test Apply with blocks a
// faulty proposer made.
type direct struct {
	fsm  consensus.FSM
	next uint64
}

func (d *direct) Propose(ctx context.Context, data []byte) error {
	d.next++
	return d.fsm.Apply(ctx, consensus.Entry{Index: d.next + 1000, Data: data})
}
func (d *direct) Close() error { return nil }

func TestCommittedForgedBlocksAreSkipped(t *testing.T) {
	o := newOneInstitution(t)
	var orderer *direct
	l, st := o.open(t, ledger.Config{
		NewOrderer: func(f consensus.FSM) (consensus.Orderer, error) { orderer = &direct{fsm: f}; return orderer, nil }})
	alice := o.registerSubmitter(t, l)
	m := o.m
	sub := func(data string) []byte { return o.submission(t, alice, data) }
	first := sub("first")
	if _, _, err := l.Submit(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	head, _ := st.Head()
	before := st.TreeSize()
	mk := func(mut func(b *chain.Block)) []byte {
		s := sub(fmt.Sprint(time.Now().UnixNano()))
		ps, _ := evidence.ParseSubmission(s)
		leaf, _ := evidence.EvidenceLeaf(ps, s, head.TimeMS+1, head.Height+1).Marshal()
		root, _ := st.ComputeRoot([][]byte{leaf})
		b := &chain.Block{Header: chain.BlockHeader{Origin: m.Origin, Height: head.Height + 1, Prev: head.Hash(),
			FirstIndex: before, Count: 1, TreeSize: before + 1, Root: root, TimeMS: head.TimeMS + 1},
			Leaves: [][]byte{leaf}, Sidecars: [][]byte{s}}
		mut(b)
		enc, _ := b.Marshal()
		return append([]byte{1}, enc...)
	}
	for name, entry := range map[string][]byte{
		"wrong root":     mk(func(b *chain.Block) { b.Header.Root[0] ^= 1 }),
		"backwards time": mk(func(b *chain.Block) { b.Header.TimeMS = head.TimeMS - 1 }),
		"wrong prev":     mk(func(b *chain.Block) { b.Header.Prev[0] ^= 1 }),
		"bad signature": mk(func(b *chain.Block) {
			s := append([]byte(nil), b.Sidecars[0]...)
			s[len(s)-1] ^= 1
			b.Sidecars[0] = s
		}),
		"duplicate record": func() []byte {
			ps, _ := evidence.ParseSubmission(first)
			leaf, _ := evidence.EvidenceLeaf(ps, first, head.TimeMS+1, head.Height+1).Marshal()
			root, _ := st.ComputeRoot([][]byte{leaf})
			b := &chain.Block{Header: chain.BlockHeader{Origin: m.Origin, Height: head.Height + 1, Prev: head.Hash(),
				FirstIndex: before, Count: 1, TreeSize: before + 1, Root: root, TimeMS: head.TimeMS + 1},
				Leaves: [][]byte{leaf}, Sidecars: [][]byte{first}}
			enc, _ := b.Marshal()
			return append([]byte{1}, enc...)
		}(),
		"garbage": []byte{1, 2, 3},
	} {
		alarms := len(l.Alarms())
		if err := orderer.Propose(context.Background(), entry); err != nil {
			t.Fatalf("%s: Apply returned %v; a committed bad block must be skipped, not stop the replica", name, err)
		}
		if st.TreeSize() != before {
			t.Fatalf("%s: the forged block was applied", name)
		}
		if len(l.Alarms()) == alarms {
			t.Fatalf("%s: no alarm", name)
		}
	}
	// The replica keeps working.
	if _, _, err := l.Submit(context.Background(), sub("after")); err != nil {
		t.Fatal(err)
	}
}
