package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cunzheng/cunzheng/chain"
	"github.com/cunzheng/cunzheng/consensus"
	"github.com/cunzheng/cunzheng/evidence"
)

// sequence is the sequencer goroutine: it gathers queued entries into
// blocks and has the orderer commit them, one block at a time. While one
// block is being committed and synced, the next one fills up (group
// commit), so the fsync cost is shared by every record of a block.
func (l *Ledger) sequence(ctx context.Context) {
	defer close(l.done)
	defer l.failQueued(ErrClosed)
	for {
		var batch []*pending
		select {
		case <-ctx.Done():
			return
		case p := <-l.queue:
			batch = append(batch, p)
		}
		deadline := time.NewTimer(l.interval)
	fill:
		for len(batch) < l.maxBatch {
			select {
			case p := <-l.queue:
				batch = append(batch, p)
			case <-deadline.C:
				break fill
			case <-ctx.Done():
				deadline.Stop()
				l.finish(batch, ErrClosed)
				return
			}
		}
		deadline.Stop()
		l.commit(ctx, batch)
	}
}

func (l *Ledger) failQueued(err error) {
	for {
		select {
		case p := <-l.queue:
			l.finish([]*pending{p}, err)
		default:
			return
		}
	}
}

// finish releases waiters of entries that did not make it into a block.
func (l *Ledger) finish(batch []*pending, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range batch {
		p.err = err
		delete(l.inQueue, p.key)
		close(p.done)
	}
}

// commit builds a block from batch, leaving out entries the log would
// reject, commits it and makes it final.
func (l *Ledger) commit(ctx context.Context, batch []*pending) {
	if !l.waitCaughtUp(ctx) {
		l.finish(batch, fmt.Errorf("%w: leadership is changing; retry", ErrNotLeader))
		return
	}
	head, hasHead := l.st.Head()
	next := l.st.TreeSize()
	height, prev, prevTime := uint64(1), [32]byte{}, uint64(0)
	if hasHead {
		height, prev, prevTime = head.Height+1, head.Hash(), head.TimeMS
	}
	// Block time never goes backwards, even if the clock does.
	t := max(uint64(l.now().UnixMilli()), prevTime)

	ov := overlay{}
	var (
		kept   []*pending
		leaves [][]byte
		sides  [][]byte
		kvs    = make([]storeKV, 0, 2*len(batch))
	)
	for _, p := range batch {
		idx := next + uint64(len(kept))
		if err := l.admit(p, idx, ov, &kvs); err != nil {
			l.finish([]*pending{p}, err)
			continue
		}
		leaf, side, err := l.leafFor(p, t, height)
		if err != nil {
			l.finish([]*pending{p}, err)
			continue
		}
		kept = append(kept, p)
		leaves, sides = append(leaves, leaf), append(sides, side)
	}
	if len(kept) == 0 {
		return
	}
	root, err := l.st.ComputeRoot(leaves)
	if err != nil {
		l.finish(kept, fmt.Errorf("compute root: %w", err))
		return
	}
	b := &chain.Block{
		Header: chain.BlockHeader{
			Origin: l.origin, Height: height, Prev: prev, FirstIndex: next,
			Count: uint32(len(kept)), TreeSize: next + uint64(len(kept)), Root: root, TimeMS: t,
		},
		Leaves: leaves, Sidecars: sides,
	}
	enc, err := b.Marshal()
	if err == nil {
		l.cacheMu.Lock()
		l.proposed.hash, l.proposed.kvs = b.Header.Hash(), kvs
		l.cacheMu.Unlock()
		if err = l.orderer.Propose(ctx, wrapEntry(entryBlock, enc)); err != nil && !errors.Is(err, consensus.ErrStopped) {
			// Leadership moved or the proposal was dropped: the clients'
			// retry is safe (dedup), so they are told to retry.
			err = fmt.Errorf("%w: block not committed (%v); retry", ErrNotLeader, err)
		}
	}
	if h, ok := l.st.Head(); err == nil && (!ok || h.Hash() != b.Header.Hash()) {
		err = fmt.Errorf("%w: block %d was committed but not applied (see alarms); retry", ErrNotLeader, height)
	}
	if err != nil {
		l.log.Error("block not committed", "height", height, "records", len(kept), "err", err)
		l.finish(kept, err)
		return
	}
	l.mu.Lock()
	for i, p := range kept {
		p.index = next + uint64(i)
		delete(l.inQueue, p.key)
		close(p.done)
	}
	l.mu.Unlock()
}

func (l *Ledger) leafFor(p *pending, timeMS, height uint64) (leaf, sidecar []byte, err error) {
	switch p.typ {
	case evidence.EntryEvidence:
		leaf, err = evidence.EvidenceLeaf(p.sub, p.subBytes, timeMS, height).Marshal()
		return leaf, p.subBytes, err
	case evidence.EntryGovernance:
		leaf, err = (&evidence.Leaf{Type: evidence.EntryGovernance, TimeMS: timeMS, Height: height, Entry: p.govBytes}).Marshal()
		return leaf, nil, err
	}
	return nil, nil, fmt.Errorf("%w: entry type %d", ErrInvalid, p.typ)
}

// caughtUpWait bounds how long a new leader waits to apply what was
// committed before it took over.
const caughtUpWait = 2 * time.Second

// waitCaughtUp waits until this replica has applied every committed entry.
func (l *Ledger) waitCaughtUp(ctx context.Context) bool {
	deadline := time.Now().Add(caughtUpWait)
	for l.caughtUp != nil && !l.caughtUp() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}
