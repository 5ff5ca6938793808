package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/cunzheng/cunzheng/api"
	"github.com/cunzheng/cunzheng/chain/checkpoint"
	"github.com/cunzheng/cunzheng/evidence"
)

const origin = "evidence.audit.example/v1"

// testNet is a three-institution network (threshold 2) whose trees live in
// memory.
type testNet struct {
	fp      evidence.Fingerprint
	chain   []byte
	signers []note.Signer
}

func newTestNet(t *testing.T) *testNet {
	t.Helper()
	m := &evidence.Manifest{Origin: origin, Sequence: 1, Threshold: 2, CreatedAt: 1767225600}
	nw := &testNet{}
	for i := range 3 {
		name := fmt.Sprintf("inst-%d.example", i)
		skey, vkey, err := note.GenerateKey(rand.Reader, name)
		if err != nil {
			t.Fatal(err)
		}
		s, _ := note.NewSigner(skey)
		nw.signers = append(nw.signers, s)
		admin, _, _ := ed25519.GenerateKey(rand.Reader)
		m.Members = append(m.Members, evidence.Member{Name: name, Role: evidence.RoleCourt, RaftID: uint64(i + 1), NoteKey: vkey, AdminKey: admin})
	}
	enc, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	nw.fp, _ = m.Fingerprint()
	nw.chain, _ = evidence.MarshalChainFile(nw.fp, [][]byte{enc})
	return nw
}

// tree is an in-memory log.
type tree struct{ hashes []tlog.Hash }

func (tr *tree) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = tr.hashes[x]
	}
	return out, nil
}

// grow builds a tree of n leaves whose contents depend on tag.
func grow(tag string, n int) *tree {
	tr := &tree{}
	for i := range n {
		hs, err := tlog.StoredHashes(int64(i), fmt.Appendf(nil, "%s leaf %d", tag, i), tr)
		if err != nil {
			panic(err)
		}
		tr.hashes = append(tr.hashes, hs...)
	}
	return tr
}

func (tr *tree) root(n int64) tlog.Hash {
	h, err := tlog.TreeHash(n, tr)
	if err != nil {
		panic(err)
	}
	return h
}

// fakeNode serves a checkpoint of size `size` of its tree.
type fakeNode struct {
	url    string
	nw     *testNet
	tr     *tree
	size   int64
	signed []byte // overrides the checkpoint when set
	down   bool
}

func (f *fakeNode) URL() string { return f.url }
func (f *fakeNode) ManifestChain(context.Context) ([]byte, error) {
	if f.down {
		return nil, fmt.Errorf("connection refused")
	}
	return f.nw.chain, nil
}
func (f *fakeNode) Checkpoint(context.Context) ([]byte, error) {
	if f.signed != nil {
		return f.signed, nil
	}
	return f.nw.sign(f.tr.root(f.size), f.size, f.nw.signers...), nil
}
func (f *fakeNode) Consistency(_ context.Context, o, n uint64) (*api.ConsistencyResponse, error) {
	if n > uint64(f.size) {
		return nil, fmt.Errorf("beyond the log")
	}
	p, err := tlog.ProveTree(int64(n), int64(o), f.tr)
	if err != nil {
		return nil, err
	}
	r := &api.ConsistencyResponse{Old: o, New: n}
	for _, h := range p {
		r.Proof = append(r.Proof, h[:])
	}
	return r, nil
}

func (nw *testNet) sign(root tlog.Hash, size int64, signers ...note.Signer) []byte {
	out, err := checkpoint.Sign(checkpoint.Checkpoint{Origin: origin, Size: size, Root: root}, signers...)
	if err != nil {
		panic(err)
	}
	return out
}

func kinds(r *Report) string {
	var ks []string
	for _, f := range r.Findings {
		ks = append(ks, string(f.Kind))
	}
	return strings.Join(ks, ",")
}

func TestRun(t *testing.T) {
	nw := newTestNet(t)
	honest := grow("honest", 20)
	forked := grow("forked", 20)
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	node := func(i int, tr *tree, size int64) *fakeNode {
		return &fakeNode{url: fmt.Sprintf("http://node%d", i), nw: nw, tr: tr, size: size}
	}
	// Every case starts from a clean round of three nodes at sizes 8, 8, 6.
	baseline := func(t *testing.T) *State {
		rep, st := Run(context.Background(), nw.fp, []Node{node(0, honest, 8), node(1, honest, 8), node(2, honest, 6)}, nil, now)
		if !rep.OK || rep.Largest != 8 {
			t.Fatalf("baseline: %+v", rep.Findings)
		}
		return st
	}
	forgedSig := func() []byte {
		s := nw.sign(honest.root(10), 10, nw.signers...)
		i := strings.LastIndex(string(s), " ") + 1
		sig, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(string(s[i:])))
		sig[20] ^= 1
		return append(s[:i:i], base64.StdEncoding.EncodeToString(sig)+"\n"...)
	}
	otherNet := newTestNet(t)
	// This network's manifest chain, but a checkpoint of another log signed
	// by the same institutions' keys.
	otherOrigin, err := checkpoint.Sign(checkpoint.Checkpoint{Origin: "evidence.other.example/v1", Size: 10, Root: honest.root(10)}, nw.signers...)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		nodes []*fakeNode
		want  string // finding kinds, in order
		named string // a node every finding names
	}{
		{"all grow", []*fakeNode{node(0, honest, 12), node(1, honest, 10), node(2, honest, 12)}, "", ""},
		{"unchanged", []*fakeNode{node(0, honest, 8), node(1, honest, 8), node(2, honest, 6)}, "", ""},
		{"split view same size", []*fakeNode{node(0, honest, 8), node(1, honest, 8), node(2, forked, 8)}, "split_view,inconsistent", "http://node2"},
		{"split view against stored", []*fakeNode{node(0, honest, 10), node(1, honest, 10), node(2, forked, 6)}, "split_view,inconsistent", "http://node2"},
		{"fork grows past", []*fakeNode{node(0, honest, 8), node(1, honest, 8), node(2, forked, 12)}, "inconsistent,inconsistent", "http://node2"},
		{"rollback", []*fakeNode{node(0, honest, 8), node(1, honest, 5), node(2, honest, 6)}, "rollback", "http://node1"},
		{"forged signature", []*fakeNode{node(0, honest, 8), {url: "http://node1", nw: nw, tr: honest, size: 10, signed: forgedSig()}, node(2, honest, 6)}, "bad_checkpoint", "http://node1"},
		{"below threshold", []*fakeNode{node(0, honest, 8), {url: "http://node1", nw: nw, tr: honest, size: 10, signed: nw.sign(honest.root(10), 10, nw.signers[0])}, node(2, honest, 6)}, "bad_checkpoint", "http://node1"},
		{"another network", []*fakeNode{node(0, honest, 8), {url: "http://node1", nw: otherNet, tr: honest, size: 8}, node(2, honest, 6)}, "bad_manifest", "http://node1"},
		{"checkpoint of another origin", []*fakeNode{node(0, honest, 8), {url: "http://node1", nw: nw, tr: honest, size: 10, signed: otherOrigin}, node(2, honest, 6)}, "bad_checkpoint", "http://node1"},
		{"unreachable", []*fakeNode{node(0, honest, 8), node(1, honest, 8), {url: "http://node2", down: true}}, "unreachable", "http://node2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := baseline(t)
			var ns []Node
			for _, n := range tc.nodes {
				ns = append(ns, n)
			}
			rep, next := Run(context.Background(), nw.fp, ns, st, now.Add(time.Minute))
			if got := kinds(rep); got != tc.want {
				t.Fatalf("findings %q, want %q: %+v", got, tc.want, rep.Findings)
			}
			if rep.OK != (tc.want == "") {
				t.Fatalf("OK=%v with findings %q", rep.OK, tc.want)
			}
			for _, f := range rep.Findings {
				if tc.named != "" && !strings.Contains(strings.Join(f.Nodes, " "), tc.named) {
					t.Errorf("finding %s names %v, not %s", f.Kind, f.Nodes, tc.named)
				}
			}
			if !rep.OK {
				// Nothing of an accused node is stored, and the largest tree
				// does not advance, so the next round finds the problem again.
				if tc.named != "" && next.Nodes[tc.named] != st.Nodes[tc.named] {
					t.Errorf("state of %s changed after a finding: %+v → %+v", tc.named, st.Nodes[tc.named], next.Nodes[tc.named])
				}
				if *next.Largest != *st.Largest {
					t.Errorf("largest tree changed after a finding: %+v → %+v", st.Largest, next.Largest)
				}
				return
			}
			// A clean round is proved from the stored state.
			data, _ := next.Marshal()
			back, err := ParseState(data, nw.fp)
			if err != nil {
				t.Fatal(err)
			}
			if back.Largest.Size != rep.Largest {
				t.Fatalf("largest stored %d, report %d", back.Largest.Size, rep.Largest)
			}
		})
	}
}

func TestBogusProofRefused(t *testing.T) {
	nw := newTestNet(t)
	honest := grow("honest", 16)
	n := &bogusProof{fakeNode: fakeNode{url: "http://n", nw: nw, tr: honest, size: 6}}
	_, st := Run(context.Background(), nw.fp, []Node{n}, nil, time.Now())
	n.size = 16
	for bit := range 8 * 32 {
		n.flip = bit
		rep, next := Run(context.Background(), nw.fp, []Node{n}, st, time.Now())
		if rep.OK || kinds(rep) != "inconsistent" {
			t.Fatalf("proof with bit %d flipped: findings %q", bit, kinds(rep))
		}
		if next.Nodes["http://n"] != st.Nodes["http://n"] || *next.Largest != *st.Largest {
			t.Fatalf("proof with bit %d flipped: the unproved tree was stored", bit)
		}
	}
}

type bogusProof struct {
	fakeNode
	flip int
}

func (b *bogusProof) Consistency(ctx context.Context, o, n uint64) (*api.ConsistencyResponse, error) {
	r, err := b.fakeNode.Consistency(ctx, o, n)
	if err == nil {
		r.Proof[0][b.flip/8] ^= 1 << (b.flip % 8)
	}
	return r, err
}

func TestParseStateRefusesTampering(t *testing.T) {
	nw := newTestNet(t)
	honest := grow("honest", 4)
	_, st := Run(context.Background(), nw.fp, []Node{&fakeNode{url: "http://n", nw: nw, tr: honest, size: 4}}, nil, time.Now())
	data, _ := st.Marshal()
	if _, err := ParseState(data, nw.fp); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string][]byte{
		"size changed":  []byte(strings.Replace(string(data), `"size": 4`, `"size": 3`, 1)),
		"other network": data,
		"unknown field": []byte(strings.Replace(string(data), `"version"`, `"extra": 1, "version"`, 1)),
	} {
		fp := nw.fp
		if name == "other network" {
			fp[0] ^= 1
		}
		if _, err := ParseState(bad, fp); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
