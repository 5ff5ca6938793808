// Package audit checks from outside that the nodes of one cunzheng network
// show a single append-only history: every node's latest checkpoint is final
// under the manifest chain pinned at genesis, no two checkpoints of the same
// tree size differ (a split view), no node goes back to a smaller tree than it
// showed before (a rollback), and every smaller tree is proved, with an
// RFC 6962 consistency proof checked by golang.org/x/mod/sumdb/tlog, to be a
// prefix of the largest one. What was verified is kept in a State the caller
// stores between rounds, so history is checked across runs, not only within one.
package audit

import (
	"context"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/cunzheng/cunzheng/api"
	"github.com/cunzheng/cunzheng/chain/checkpoint"
	"github.com/cunzheng/cunzheng/evidence"
)

// Node is what the auditor asks of one node; *client.Client implements it.
type Node interface {
	URL() string
	Checkpoint(ctx context.Context) ([]byte, error)
	ManifestChain(ctx context.Context) ([]byte, error)
	Consistency(ctx context.Context, oldSize, newSize uint64) (*api.ConsistencyResponse, error)
}

// Kind names a finding; the values are stable (they appear in --json output).
type Kind string

// Findings. Every one makes the audit fail.
const (
	// KindSplitView: two checkpoints of the same tree size with different roots.
	KindSplitView Kind = "split_view"
	// KindRollback: a node shows a smaller tree than it showed before.
	KindRollback Kind = "rollback"
	// KindInconsistent: a smaller tree could not be proved a prefix of a larger one.
	KindInconsistent Kind = "inconsistent"
	// KindBadCheckpoint: a checkpoint that is malformed, of another network,
	// or without a quorum of valid institution signatures.
	KindBadCheckpoint Kind = "bad_checkpoint"
	// KindBadManifest: a manifest chain that does not start at the pinned
	// genesis or has an invalid update.
	KindBadManifest Kind = "bad_manifest"
	// KindUnreachable: the node did not answer, so it could not be audited.
	KindUnreachable Kind = "unreachable"
)

// Finding is one problem, naming the nodes involved.
type Finding struct {
	Kind    Kind     `json:"kind"`
	Nodes   []string `json:"nodes"`
	Message string   `json:"message"`
}

// NodeReport is what one node showed in a round.
type NodeReport struct {
	URL             string   `json:"url"`
	Size            int64    `json:"size"`
	Root            string   `json:"root,omitempty"` // hex
	Signers         []string `json:"signers,omitempty"`
	ManifestVersion uint64   `json:"manifest_version,omitempty"`
	Previous        *int64   `json:"previous_size,omitempty"` // size verified in an earlier round
	Note            string   `json:"note,omitempty"`
	Error           string   `json:"error,omitempty"`
}

// Report is the outcome of one round.
type Report struct {
	Network  string       `json:"network"`
	Origin   string       `json:"origin,omitempty"`
	Time     time.Time    `json:"time"`
	Nodes    []NodeReport `json:"nodes"`
	Largest  int64        `json:"largest_size"`
	Proofs   int          `json:"consistency_proofs"` // proofs checked this round
	Findings []Finding    `json:"findings"`
	OK       bool         `json:"ok"`
}

func (r *Report) add(k Kind, nodes []string, format string, args ...any) {
	r.Findings = append(r.Findings, Finding{Kind: k, Nodes: nodes, Message: fmt.Sprintf(format, args...)})
}

// observed is one verified checkpoint: from a node this round, or from the
// state of earlier rounds.
type observed struct {
	node   string
	size   int64
	root   tlog.Hash
	signed []byte
	when   time.Time
	stored bool
}

func (o observed) label() string {
	if o.stored {
		return fmt.Sprintf("%s (seen %s)", o.node, o.when.UTC().Format(time.RFC3339))
	}
	return o.node
}

// Run audits nodes once against the state of earlier rounds (nil for none)
// and returns the report and the state to store. A node's entry in the state
// advances only when nothing was found against that node, and the largest
// tree only after a round without findings, so a problem found once is found
// again in the next round rather than forgotten.
func Run(ctx context.Context, pinned evidence.Fingerprint, nodes []Node, prev *State, now time.Time) (*Report, *State) {
	if prev == nil {
		prev = NewState(pinned)
	}
	rep := &Report{Network: pinned.String(), Time: now, Findings: []Finding{}}
	byURL := map[string]Node{}
	var cur []observed
	for _, n := range nodes {
		nr := NodeReport{URL: n.URL()}
		fin, version, origin, kind, err := fetch(ctx, pinned, n)
		if err != nil {
			nr.Error = err.Error()
			rep.add(kind, []string{n.URL()}, "%s: %v", n.URL(), err)
			rep.Nodes = append(rep.Nodes, nr)
			continue
		}
		rep.Origin = origin
		nr.Size, nr.Root, nr.Signers, nr.ManifestVersion = fin.Size, hex.EncodeToString(fin.Root[:]), fin.Signers, version
		rep.Nodes = append(rep.Nodes, nr)
		byURL[n.URL()] = n
		cur = append(cur, observed{node: n.URL(), size: fin.Size, root: fin.Root, signed: fin.signed, when: now})
	}

	stored := prev.observed()
	all := append(append([]observed{}, stored...), cur...)
	splitViews(rep, all)

	a := &prover{ctx: ctx, byURL: byURL, done: map[proofKey]error{}, rep: rep}
	for i := range rep.Nodes {
		nr := &rep.Nodes[i]
		if nr.Error != "" {
			continue
		}
		o := find(cur, nr.URL)
		was, ok := prev.Nodes[nr.URL]
		switch {
		case !ok:
			nr.Note = "first seen"
		case o.size < was.Size:
			size := was.Size
			nr.Previous = &size
			nr.Note = "ROLLBACK"
			rep.add(KindRollback, []string{nr.URL}, "ROLLBACK: %s showed tree size %d (root %s…) at %s, now shows tree size %d",
				nr.URL, was.Size, short(was.root), was.Time.UTC().Format(time.RFC3339), o.size)
		case o.size == was.Size:
			size := was.Size
			nr.Previous = &size
			nr.Note = "unchanged"
		default:
			size := was.Size
			nr.Previous = &size
			if err := a.prove(was.observed(), o, o.node); err != nil {
				nr.Note = fmt.Sprintf("grew from %d: NOT PROVED", was.Size)
			} else {
				nr.Note = fmt.Sprintf("grew from %d: consistency proved", was.Size)
			}
		}
	}

	// Cross-node: every smaller tree known, now or before, must be a prefix
	// of the largest tree a node shows now, proved by a node holding it.
	// Same-size trees were compared above, so this covers every pair.
	if target, ok := largest(cur); ok {
		rep.Largest = target.size
		seen := map[string]bool{}
		for _, o := range all {
			id := fmt.Sprintf("%d/%x", o.size, o.root)
			if o.size == 0 || o.size >= target.size || seen[id] {
				continue
			}
			seen[id] = true
			a.prove(o, target, target.node)
		}
	}

	rep.OK = len(rep.Findings) == 0
	next := prev.clone()
	named := map[string]bool{}
	for _, f := range rep.Findings {
		for _, n := range f.Nodes {
			named[n] = true
		}
	}
	for _, o := range cur {
		if !named[o.node] {
			next.Nodes[o.node] = o.seen()
		}
	}
	if target, ok := largest(cur); ok && rep.OK && (next.Largest == nil || target.size > next.Largest.Size) {
		s := target.seen()
		next.Largest = &s
	}
	return rep, next
}

type finalCheckpoint struct {
	*checkpoint.Final
	signed []byte
}

// fetch returns the node's latest checkpoint, verified against the policy
// of the newest version of the node's manifest chain, which must start at
// the pinned genesis.
func fetch(ctx context.Context, pinned evidence.Fingerprint, n Node) (fin finalCheckpoint, version uint64, origin string, kind Kind, err error) {
	data, err := n.ManifestChain(ctx)
	if err != nil {
		return fin, 0, "", KindUnreachable, err
	}
	chain, err := evidence.ParseChainFile(data, pinned)
	if err != nil {
		return fin, 0, "", KindBadManifest, fmt.Errorf("manifest chain: %w", err)
	}
	m := chain[len(chain)-1].Manifest
	signed, err := n.Checkpoint(ctx)
	if err != nil {
		return fin, 0, "", KindUnreachable, err
	}
	policy, err := m.Policy()
	if err != nil {
		return fin, 0, "", KindBadManifest, fmt.Errorf("manifest version %d: %w", m.Sequence, err)
	}
	f, err := checkpoint.Open(signed, policy)
	if err != nil {
		return fin, 0, "", KindBadCheckpoint, fmt.Errorf("checkpoint refused: %w", err)
	}
	return finalCheckpoint{Final: f, signed: signed}, m.Sequence, m.Origin, "", nil
}

// splitViews reports every tree size at which more than one root was seen.
func splitViews(rep *Report, all []observed) {
	bySize := map[int64][]observed{}
	for _, o := range all {
		bySize[o.size] = append(bySize[o.size], o)
	}
	sizes := make([]int64, 0, len(bySize))
	for s := range bySize {
		sizes = append(sizes, s)
	}
	sort.Slice(sizes, func(i, j int) bool { return sizes[i] < sizes[j] })
	for _, s := range sizes {
		var roots []tlog.Hash
		holders := map[tlog.Hash][]string{}
		nodeSet := map[string]bool{}
		var nodes []string
		for _, o := range dedupe(bySize[s]) {
			if _, ok := holders[o.root]; !ok {
				roots = append(roots, o.root)
			}
			holders[o.root] = append(holders[o.root], o.label())
			if !nodeSet[o.node] {
				nodeSet[o.node] = true
				nodes = append(nodes, o.node)
			}
		}
		if len(roots) < 2 {
			continue
		}
		var parts []string
		for _, r := range roots {
			parts = append(parts, fmt.Sprintf("root %s… shown by %s", short(r), strings.Join(holders[r], ", ")))
		}
		rep.add(KindSplitView, nodes, "SPLIT VIEW at tree size %d: %s", s, strings.Join(parts, "; "))
	}
}

// dedupe keeps one observation per node and root, preferring this round's,
// so a report names each holder once.
func dedupe(obs []observed) []observed {
	type key struct {
		node string
		root tlog.Hash
	}
	idx := map[key]int{}
	var out []observed
	for _, o := range obs {
		k := key{o.node, o.root}
		if i, ok := idx[k]; ok {
			if !o.stored {
				out[i] = o
			}
			continue
		}
		idx[k] = len(out)
		out = append(out, o)
	}
	return out
}

type proofKey struct {
	oldSize, newSize int64
	oldRoot, newRoot tlog.Hash
}

// prover fetches and checks consistency proofs, each pair of trees once.
type prover struct {
	ctx   context.Context
	byURL map[string]Node
	done  map[proofKey]error
	rep   *Report
}

// prove checks that old is a prefix of cur with a proof from the node at
// via, reporting an inconsistency naming both sides on failure.
func (p *prover) prove(old, cur observed, via string) error {
	k := proofKey{old.size, cur.size, old.root, cur.root}
	if err, ok := p.done[k]; ok {
		return err
	}
	err := p.check(old, cur, via)
	p.done[k] = err
	if err != nil {
		nodes := []string{old.node}
		if cur.node != old.node {
			nodes = append(nodes, cur.node)
		}
		p.rep.add(KindInconsistent, nodes, "INCONSISTENT: tree size %d root %s… from %s is not proved a prefix of tree size %d root %s… from %s: %v",
			old.size, short(old.root), old.label(), cur.size, short(cur.root), cur.label(), err)
	}
	return err
}

func (p *prover) check(old, cur observed, via string) error {
	n := p.byURL[via]
	if n == nil {
		return fmt.Errorf("no node to ask for a proof")
	}
	resp, err := n.Consistency(p.ctx, uint64(old.size), uint64(cur.size))
	if err != nil {
		return fmt.Errorf("%s gave no proof: %w", via, err)
	}
	if resp.Old != uint64(old.size) || resp.New != uint64(cur.size) {
		return fmt.Errorf("%s answered with a proof %d→%d", via, resp.Old, resp.New)
	}
	if len(resp.Proof) > maxProofHashes {
		return fmt.Errorf("%s sent a proof of %d hashes", via, len(resp.Proof))
	}
	proof := make(tlog.TreeProof, len(resp.Proof))
	for i, h := range resp.Proof {
		if len(h) != tlog.HashSize {
			return fmt.Errorf("%s sent a proof hash of %d bytes", via, len(h))
		}
		copy(proof[i][:], h)
	}
	p.rep.Proofs++
	if err := tlog.CheckTree(proof, cur.size, cur.root, old.size, old.root); err != nil {
		return fmt.Errorf("proof from %s fails: %w", via, err)
	}
	return nil
}

// maxProofHashes bounds a consistency proof: at most two hashes per level of
// a tree of 2^63 leaves.
const maxProofHashes = 2 * 64

func find(obs []observed, node string) observed {
	for _, o := range obs {
		if o.node == node {
			return o
		}
	}
	panic("audit: observation of " + node + " lost")
}

// largest is the largest tree shown this round, by the first node showing it.
func largest(cur []observed) (observed, bool) {
	if len(cur) == 0 {
		return observed{}, false
	}
	best := cur[0]
	for _, o := range cur[1:] {
		if o.size > best.size {
			best = o
		}
	}
	return best, true
}

func short(h tlog.Hash) string { return hex.EncodeToString(h[:6]) }
