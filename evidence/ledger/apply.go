package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/cunzheng/cunzheng/chain"
	"github.com/cunzheng/cunzheng/chain/store"
	"github.com/cunzheng/cunzheng/consensus"
	"github.com/cunzheng/cunzheng/evidence"
)

type storeKV = store.KV

// Apply implements consensus.FSM. It re-derives every entry of a committed
// block from its leaf and sidecar, checks it against the log exactly as the
// sequencer did, and writes the block in one synced store batch (the store
// re-derives the root and checks the hash chain and time). A block that
// fails any check is rejected whole and nothing is written.
func (l *Ledger) Apply(_ context.Context, e consensus.Entry) error {
	applied, err := l.Applied()
	if err != nil {
		return err
	}
	if e.Index <= applied {
		return nil // replayed after a restart: already durable
	}
	data, proposedHere := e.Data, e.ProposedHere
	b, err := chain.ParseBlock(data)
	if err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	if b.Header.Origin != l.manifest.Origin {
		return fmt.Errorf("apply block %d: origin %q is not this network's %q", b.Header.Height, b.Header.Origin, l.manifest.Origin)
	}
	l.cacheMu.Lock()
	kvs, reuse := l.proposed.kvs, proposedHere && l.proposed.hash == b.Header.Hash()
	l.proposed.kvs = nil
	l.cacheMu.Unlock()
	if reuse {
		// The sequencer admitted every entry of this very block moments ago
		// against the same state (it is the only writer), so its writes
		// stand.
		kvs = append(kvs, storeKV{Key: store.AppliedKey(), Value: store.EncodeIndex(e.Index)})
		if err := l.st.AppendBlock(b, kvs); err != nil {
			return fmt.Errorf("apply block %d: %w", b.Header.Height, err)
		}
		l.cacheApplied(kvs)
		return nil
	}
	ov := overlay{}
	kvs = make([]storeKV, 0, 2*len(b.Leaves))
	for i, leafBytes := range b.Leaves {
		idx := b.Header.FirstIndex + uint64(i)
		p, err := l.entryOf(b, i, leafBytes, proposedHere)
		if err == nil {
			err = l.admit(p, idx, ov, &kvs)
		}
		if err != nil {
			return fmt.Errorf("apply block %d: entry %d: %w", b.Header.Height, idx, err)
		}
	}
	kvs = append(kvs, storeKV{Key: store.AppliedKey(), Value: store.EncodeIndex(e.Index)})
	if err := l.st.AppendBlock(b, kvs); err != nil {
		return fmt.Errorf("apply block %d: %w", b.Header.Height, err)
	}
	l.cacheApplied(kvs)
	return nil
}

// Applied implements consensus.FSM: the index of the last replicated-log
// entry whose effect is durable.
func (l *Ledger) Applied() (uint64, error) {
	v, err := l.st.Get(store.AppliedKey())
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return store.DecodeIndex(v)
}

// entryOf decodes entry i of b and checks the leaf agrees with its block
// and its sidecar.
func (l *Ledger) entryOf(b *chain.Block, i int, leafBytes []byte, proposedHere bool) (*pending, error) {
	leaf, err := evidence.ParseLeaf(leafBytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if leaf.TimeMS != b.Header.TimeMS || leaf.Height != b.Header.Height {
		return nil, fmt.Errorf("%w: leaf time or height differs from its block header", ErrInvalid)
	}
	side := b.Sidecar(i)
	switch leaf.Type {
	case evidence.EntryEvidence:
		sub, err := evidence.ParseSubmission(side)
		if err != nil {
			return nil, fmt.Errorf("%w: sidecar: %w", ErrInvalid, err)
		}
		if leaf.SubHash != evidence.SubmissionHash(side) || !evidence.DigestsEqual(leaf.Digests, sub.Digests) {
			return nil, fmt.Errorf("%w: leaf does not match its submission", ErrInvalid)
		}
		// The proposer checked the signature before queueing; replicas that
		// did not propose the block check it themselves.
		if !proposedHere {
			if err := sub.Verify(l.manifest.Origin); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
			}
		}
		return &pending{typ: evidence.EntryEvidence, sub: sub, subBytes: side, key: evidenceDedupKey(sub)}, nil
	case evidence.EntryGovernance:
		if len(side) != 0 {
			return nil, fmt.Errorf("%w: governance entry with a sidecar", ErrInvalid)
		}
		g, err := evidence.ParseGovernance(leaf.Entry)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		return &pending{typ: evidence.EntryGovernance, gov: g, govBytes: leaf.Entry, key: governanceDedupKey(g, leaf.Entry)}, nil
	}
	return nil, fmt.Errorf("%w: entry type %d", ErrInvalid, leaf.Type)
}
