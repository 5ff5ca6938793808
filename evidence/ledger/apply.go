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

// Apply implements consensus.FSM. A block entry is checked entry by entry
// (each leaf re-derived from its sidecar and admitted against the log as
// the sequencer did) and written in one synced store batch, which re-derives
// the root and checks the hash chain and time. A committed entry that fails
// its checks is skipped on every honest replica alike, with an alarm: only a
// faulty or malicious proposer produces one, and followers refuse to
// acknowledge such entries before they can commit (Check). Apply returns an
// error only when this replica cannot write.
func (l *Ledger) Apply(ctx context.Context, e consensus.Entry) error {
	l.applyMu.Lock()
	defer l.applyMu.Unlock()
	applied, err := l.Applied()
	if err != nil {
		return err
	}
	if e.Index <= applied {
		return nil // replayed after a restart: already durable
	}
	kind, payload, err := unwrapEntry(e.Data)
	if err != nil {
		l.alarm("committed log entry is malformed", "entry", e.Index, "err", err)
		return nil
	}
	switch kind {
	case entryFinal:
		return l.applyFinal(e.Index, payload)
	case entryTimestamp:
		return l.applyTimestamp(e.Index, payload)
	}
	err = l.applyBlock(e, payload)
	if errors.Is(err, errStore) {
		return err
	}
	if err != nil {
		l.alarm("committed block rejected", "entry", e.Index, "err", err)
		return nil
	}
	l.kickSigner()
	return nil
}

// errStore marks a failure to write, as opposed to a block that is wrong.
var errStore = errors.New("ledger: store write failed")

func (l *Ledger) applyBlock(e consensus.Entry, data []byte) error {
	b, err := chain.ParseBlock(data)
	if err != nil {
		return err
	}
	if b.Header.Origin != l.origin {
		return fmt.Errorf("block %d: origin %q is not this network's %q", b.Header.Height, b.Header.Origin, l.origin)
	}
	l.cacheMu.Lock()
	kvs, reuse := l.proposed.kvs, e.ProposedHere && l.proposed.hash == b.Header.Hash()
	l.proposed.kvs = nil
	l.cacheMu.Unlock()
	if !reuse {
		// The sequencer admits every entry of the block it proposes against
		// the same state (it is the only writer), so only blocks from
		// elsewhere are checked here.
		if kvs, err = l.checkBlock(b, !e.ProposedHere); err != nil {
			return err
		}
	}
	kvs = append(kvs, storeKV{Key: store.AppliedKey(), Value: store.EncodeIndex(e.Index)})
	if err := l.st.AppendBlock(b, kvs); err != nil {
		if errors.Is(err, store.ErrBadBlock) {
			return err
		}
		return fmt.Errorf("%w: block %d: %w", errStore, b.Header.Height, err)
	}
	l.cacheApplied(kvs)
	l.notifyApplied()
	return nil
}

// notifyApplied wakes everyone waiting for a block to be applied.
func (l *Ledger) notifyApplied() {
	l.cacheMu.Lock()
	close(l.appliedNotify)
	l.appliedNotify = make(chan struct{})
	l.cacheMu.Unlock()
}

// notifyFinal wakes everyone waiting for a final checkpoint or a token.
func (l *Ledger) notifyFinal() {
	l.cacheMu.Lock()
	close(l.finalNotify)
	l.finalNotify = make(chan struct{})
	l.cacheMu.Unlock()
}

// checkBlock admits every entry of b against the log (the hash chain, root
// and time are the store's to check) and returns the index writes.
func (l *Ledger) checkBlock(b *chain.Block, verifySigs bool) ([]storeKV, error) {
	ov := overlay{}
	kvs := make([]storeKV, 0, 2*len(b.Leaves))
	for i, leafBytes := range b.Leaves {
		idx := b.Header.FirstIndex + uint64(i)
		p, err := l.entryOf(b, i, leafBytes, !verifySigs)
		if err == nil {
			err = l.admit(p, idx, ov, &kvs)
		}
		if err != nil {
			return nil, fmt.Errorf("block %d: entry %d: %w", b.Header.Height, idx, err)
		}
	}
	return kvs, nil
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
			if err := sub.Verify(l.origin); err != nil {
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
