package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/cryptobyte"

	"github.com/cunzheng/cunzheng/chain"
	"github.com/cunzheng/cunzheng/chain/checkpoint"
	"github.com/cunzheng/cunzheng/chain/store"
)

// Replication support: checking proposals before acknowledging them
// (Check), snapshots of the applied state (Snapshot) and catching up by
// block sync (Restore, SyncItem).

// DefaultMaxSkew bounds how far ahead of this replica's clock a block's
// time may be when it checks the block.
const DefaultMaxSkew = 10 * time.Second

// Check implements consensus.Checker: a follower refuses to acknowledge an
// entry that fails it, so a forged block (wrong root, time going backwards
// or far from this clock, a duplicate record, a leaf that does not match
// its submission) never gathers a quorum. Blocks that directly extend this
// replica's head are checked in full; blocks further ahead (this replica is
// still applying) are checked for everything that does not need the
// missing state. Submission signatures are verified when the block is
// applied, off this path.
func (l *Ledger) Check(data []byte) error {
	kind, payload, err := unwrapEntry(data)
	if err != nil {
		return err
	}
	if kind == entryTimestamp {
		stamps, err := parseTimestampPayload(payload)
		if err != nil {
			return err
		}
		l.applyMu.RLock()
		defer l.applyMu.RUnlock()
		for _, st := range stamps {
			if st.size > l.st.TreeSize() {
				continue // a tree this replica does not hold yet: Apply checks it
			}
			if _, err := l.checkTimestamp(st.size, st.token); err != nil {
				l.alarm("proposed timestamp entry does not verify", "size", st.size, "err", err)
				return err
			}
		}
		return nil
	}
	if kind == entryFinal {
		c, err := noteBody(payload)
		if err != nil {
			return fmt.Errorf("%w: finalize entry: %v", ErrInvalid, err)
		}
		size := uint64(c.Size)
		l.applyMu.RLock()
		defer l.applyMu.RUnlock()
		// A tree this replica does not hold yet may be signed under a
		// manifest version it has not applied yet: Apply checks that one.
		if size <= l.st.TreeSize() {
			// The root first: another tree of a size this replica holds is
			// a fork attempt, whatever its signatures.
			root, err := l.st.TreeHash(size)
			if err != nil {
				return err
			}
			if c.Origin == l.origin && root != c.Root {
				l.alarm("proposed final checkpoint names a root this replica does not have", "size", size)
				return fmt.Errorf("%w: finalize entry for another tree of size %d", ErrConflict, size)
			}
			// An honest leader assembles only notes that meet the policy
			// (assembleNewest), under the same version this replica has.
			if _, err := checkpoint.Open(payload, l.versionFor(size).policy); err != nil {
				l.alarm("proposed final checkpoint does not meet the policy", "size", size, "err", err)
				return fmt.Errorf("%w: finalize entry: %v", ErrInvalid, err)
			}
		}
		return nil
	}
	b, err := chain.ParseBlock(payload)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if b.Header.Origin != l.origin {
		return fmt.Errorf("%w: block of origin %q", ErrInvalid, b.Header.Origin)
	}
	// A block may not claim a time ahead of this replica's clock (beyond
	// the skew bound). Older times are normal for a replica catching up
	// on committed blocks; "never backwards" is checked against the head.
	if d := time.Duration(int64(b.Header.TimeMS)-l.now().UnixMilli()) * time.Millisecond; d > DefaultMaxSkew {
		l.alarm("proposed block time is ahead of this replica's clock", "height", b.Header.Height, "skew", d)
		return fmt.Errorf("%w: block %d time is %v ahead of this replica's clock", ErrInvalid, b.Header.Height, d)
	}
	l.applyMu.RLock()
	defer l.applyMu.RUnlock()
	head, ok := l.st.Head()
	if ok && b.Header.Height <= head.Height {
		// A height this replica has applied is committed: an honest leader
		// only ever resends the very block (raft retransmits), never
		// another one.
		have, err := l.st.BlockHeader(b.Header.Height)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err == nil && have.Hash() != b.Header.Hash() {
			l.alarm("proposed block rewrites committed history", "height", b.Header.Height)
			return fmt.Errorf("%w: block %d differs from the committed block at that height", ErrConflict, b.Header.Height)
		}
	}
	if !ok && b.Header.Height != 1 || ok && b.Header.Height != head.Height+1 {
		// Not the next block here: check what needs no state.
		for i, leaf := range b.Leaves {
			if _, err := l.entryOf(b, i, leaf, true); err != nil {
				return fmt.Errorf("block %d entry %d: %w", b.Header.Height, i, err)
			}
		}
		return nil
	}
	if ok && (b.Header.Prev != head.Hash() || b.Header.FirstIndex != head.TreeSize || b.Header.TimeMS < head.TimeMS) {
		l.alarm("proposed block does not extend this replica's chain", "height", b.Header.Height)
		return fmt.Errorf("%w: block %d does not extend the chain (prev, first index or time)", ErrInvalid, b.Header.Height)
	}
	root, err := l.st.ComputeRoot(b.Leaves)
	if err != nil {
		return err
	}
	if root != b.Header.Root {
		l.alarm("proposed block root does not match its leaves", "height", b.Header.Height)
		return fmt.Errorf("%w: block %d root does not match its leaves", ErrInvalid, b.Header.Height)
	}
	if _, err := l.checkBlock(b, false); err != nil {
		if errors.Is(err, ErrConflict) {
			l.alarm("proposed block repeats a record", "height", b.Header.Height)
		}
		return err
	}
	return nil
}

// snapshot is the applied state a raft snapshot names: it does not carry
// the log, which a replica fetches by block sync.
type snapshot struct {
	applied   uint64   // replicated-log index of the state
	height    uint64   // block height
	blockHash [32]byte // hash of that block's header
	finalSize uint64
	finalNote []byte
}

func (s *snapshot) marshal() []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddUint8(1)
	b.AddUint64(s.applied)
	b.AddUint64(s.height)
	b.AddBytes(s.blockHash[:])
	b.AddUint64(s.finalSize)
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(s.finalNote) })
	return b.BytesOrPanic()
}

func parseSnapshot(data []byte) (*snapshot, error) {
	s := cryptobyte.String(data)
	var v uint8
	var h []byte
	var note cryptobyte.String
	out := &snapshot{}
	if !s.ReadUint8(&v) || v != 1 || !s.ReadUint64(&out.applied) || !s.ReadUint64(&out.height) ||
		!s.ReadBytes(&h, 32) || !s.ReadUint64(&out.finalSize) || !s.ReadUint24LengthPrefixed(&note) || !s.Empty() {
		return nil, fmt.Errorf("%w: snapshot", ErrInvalid)
	}
	copy(out.blockHash[:], h)
	out.finalNote = append([]byte(nil), note...)
	return out, nil
}

// Snapshot implements consensus.Snapshotter.
func (l *Ledger) Snapshot() ([]byte, error) {
	l.applyMu.RLock()
	defer l.applyMu.RUnlock()
	applied, err := l.Applied()
	if err != nil {
		return nil, err
	}
	s := &snapshot{applied: applied}
	if h, ok := l.st.Head(); ok {
		s.height, s.blockHash = h.Height, h.Hash()
	}
	if size, signed, err := l.st.LatestCheckpoint(); err == nil {
		s.finalSize, s.finalNote = size, signed
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	return s.marshal(), nil
}

// Restore implements consensus.Snapshotter: it brings this replica up to a
// snapshot by block sync. It records "syncing to H" durably first, and
// while it is set the replica neither signs checkpoints nor serves reads
// (a crash mid-sync resumes it at the next start). Every fetched block is
// checked exactly as a committed block is applied — hash chain, root, time,
// each entry and its signature — and the final checkpoints that came with
// it must meet the policy and name this replica's tree.
func (l *Ledger) Restore(ctx context.Context, data []byte) error {
	snap, err := parseSnapshot(data)
	if err != nil {
		return err
	}
	if h, ok := l.st.Head(); ok && h.Height >= snap.height {
		return nil
	}
	if err := l.syncTo(ctx, snap.height); err != nil {
		return err
	}
	if h, _ := l.st.Head(); h.Hash() != snap.blockHash {
		l.alarm("block sync reached the snapshot height with another block", "height", snap.height)
		return fmt.Errorf("%w: synced block %d differs from the snapshot's", ErrConflict, snap.height)
	}
	if snap.finalNote != nil {
		if err := l.applyFinal(snap.applied, snap.finalNote); err != nil {
			return err
		}
	}
	return l.syncDone(snap.height)
}

// ResumeSync finishes a block sync that a crash interrupted: the target
// height was recorded durably before the sync began.
func (l *Ledger) ResumeSync(ctx context.Context) error {
	target, ok, err := l.st.SyncTarget()
	if err != nil || !ok {
		return err
	}
	if err := l.syncTo(ctx, target); err != nil {
		return err
	}
	return l.syncDone(target)
}

func (l *Ledger) syncDone(height uint64) error {
	if err := l.st.ClearSyncTarget(); err != nil {
		return err
	}
	l.syncingFlag.Store(false)
	l.log.Info("synced", "height", height)
	l.kickSigner()
	return nil
}

// syncTo fetches, checks and applies blocks until the head reaches height.
func (l *Ledger) syncTo(ctx context.Context, height uint64) error {
	if l.fetch == nil {
		return errors.New("ledger: catching up needs block sync, and no fetcher is configured")
	}
	if err := l.st.SetSyncTarget(height); err != nil {
		return err
	}
	l.syncingFlag.Store(true)
	l.log.Info("syncing", "to_height", height)
	for {
		h, _ := l.st.Head()
		if h.Height >= height {
			return nil
		}
		err := l.fetch(ctx, h.Height+1, func(got uint64, item []byte) error {
			if got > height {
				return errSyncDone
			}
			return l.applySyncItem(got, item)
		})
		if err != nil && !errors.Is(err, errSyncDone) {
			return fmt.Errorf("block sync to %d: %w", height, err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

var errSyncDone = errors.New("sync target reached")

// SyncItem returns what block sync serves for height: the block, the final
// checkpoint of its tree size if there is one, and that checkpoint's
// timestamp tokens in commit order (so a replica that catches up hands out
// the same receipts as the others).
func (l *Ledger) SyncItem(height uint64) ([]byte, error) {
	b, err := l.st.Block(height)
	if err != nil {
		return nil, err
	}
	enc, err := b.Marshal()
	if err != nil {
		return nil, err
	}
	var final []byte
	var tokens [][]byte
	if size, signed, err := l.finalAt(b.Header.TreeSize); err == nil {
		final = signed
		if tokens, err = l.Tokens(size); err != nil {
			return nil, err
		}
		if len(tokens) > maxSyncTokens {
			tokens = tokens[:maxSyncTokens]
		}
	}
	out := cryptobyte.NewBuilder(nil)
	out.AddUint32LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes(enc) })
	out.AddUint24LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes(final) })
	out.AddUint24LengthPrefixed(func(c *cryptobyte.Builder) {
		for _, t := range tokens {
			c.AddUint16LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes(t) })
		}
	})
	return out.Bytes()
}

// maxSyncTokens bounds the tokens one sync item carries: the first token
// is what receipts use; freshness re-stamps of an idle checkpoint beyond
// these are not copied.
const maxSyncTokens = 64

// parseSyncItem strictly splits a block-sync item into the block, the
// final checkpoint that came with it (empty when none) and its tokens.
func parseSyncItem(item []byte) (block, final []byte, tokens [][]byte, err error) {
	s := cryptobyte.String(item)
	var n uint32
	var f, toks cryptobyte.String
	if !s.ReadUint32(&n) || !s.ReadBytes(&block, int(n)) || !s.ReadUint24LengthPrefixed(&f) || !s.ReadUint24LengthPrefixed(&toks) || !s.Empty() {
		return nil, nil, nil, fmt.Errorf("%w: malformed sync item", ErrInvalid)
	}
	for !toks.Empty() {
		var t cryptobyte.String
		if !toks.ReadUint16LengthPrefixed(&t) || len(t) == 0 || len(tokens) == maxSyncTokens {
			return nil, nil, nil, fmt.Errorf("%w: malformed sync item tokens", ErrInvalid)
		}
		tokens = append(tokens, t)
	}
	if len(f) == 0 && len(tokens) > 0 {
		return nil, nil, nil, fmt.Errorf("%w: sync item has tokens but no final checkpoint", ErrInvalid)
	}
	return block, f, tokens, nil
}

// applySyncItem checks and applies one synced block and its final
// checkpoint.
func (l *Ledger) applySyncItem(height uint64, item []byte) error {
	enc, final, tokens, err := parseSyncItem(item)
	if err != nil {
		return fmt.Errorf("sync item %d: %w", height, err)
	}
	b, err := chain.ParseBlock(enc)
	if err != nil {
		return err
	}
	if b.Header.Height != height {
		return fmt.Errorf("%w: asked for block %d, got %d", ErrInvalid, height, b.Header.Height)
	}
	l.applyMu.Lock()
	if head, ok := l.st.Head(); ok && height <= head.Height {
		// Applied meanwhile from the replicated log: it must be the same.
		l.applyMu.Unlock()
		have, err := l.st.BlockHeader(height)
		if err != nil {
			return err
		}
		if have.Hash() != b.Header.Hash() {
			l.alarm("block sync offered another block at a height this replica holds", "height", height)
			return fmt.Errorf("%w: synced block %d differs from the one applied here", ErrConflict, height)
		}
	} else {
		kvs, err := l.checkBlock(b, true)
		if err == nil {
			err = l.st.AppendBlock(b, kvs)
		}
		l.applyMu.Unlock()
		if err != nil {
			return fmt.Errorf("synced block %d: %w", height, err)
		}
		l.cacheApplied(kvs)
	}
	if len(final) > 0 {
		fin, err := checkpoint.Open(final, l.versionFor(b.Header.TreeSize).policy)
		if err != nil || uint64(fin.Size) != b.Header.TreeSize || fin.Root != b.Header.Root {
			return fmt.Errorf("%w: final checkpoint synced with block %d does not verify", ErrInvalid, height)
		}
		if err := l.applyFinal(0, final); err != nil {
			return err
		}
		// Tokens are checked like committed timestamp entries; they sort
		// by their position here, ahead of any this replica later applies
		// from the log for the same checkpoint.
		if have, err := l.FirstToken(b.Header.TreeSize); err != nil || have != nil {
			return err // this replica has its own from the log
		}
		for i, tok := range tokens {
			if _, err := l.checkTimestamp(b.Header.TreeSize, tok); err != nil {
				return fmt.Errorf("timestamp token %d synced with block %d: %w", i, height, err)
			}
			if err := l.st.PutCheckpoint(b.Header.TreeSize, final, store.KV{Key: store.TimestampKey(b.Header.TreeSize, uint64(i)), Value: tok}); err != nil {
				return err
			}
		}
	}
	return nil
}
