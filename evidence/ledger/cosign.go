package ledger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/cunzheng/cunzheng/chain/checkpoint"
	"github.com/cunzheng/cunzheng/chain/store"
)

// Finality. Every voting replica signs the checkpoint of each tree it has
// applied (signTrees), and sends the signature to the collector, the leader
// (Config.SendCosignature; locally when nil). The collector gathers
// signatures per tree size (AddCosignature); once they meet the manifest's
// policy it proposes a finalize entry carrying the assembled signed note
// (finalizeTrees), and every replica stores the identical final bytes when
// it applies that entry (applyFinal).

// signTrees is the signer goroutine: after each applied block it signs the
// newest tree. Bursts coalesce: it signs the head when it gets to it.
func (l *Ledger) signTrees(ctx context.Context) {
	defer l.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.headChanged:
		}
		if err := l.signHead(ctx); err != nil && ctx.Err() == nil {
			// The collector may not have applied this tree yet, or there
			// is no leader for a moment: try again shortly, so the newest
			// tree always gets this replica's signature in the end.
			l.log.Debug("checkpoint signature not delivered; retrying", "err", err)
			retry := time.NewTimer(signRetry)
			select {
			case <-retry.C:
				l.kickSigner()
			case <-ctx.Done():
				retry.Stop()
				return
			case <-l.headChanged:
				retry.Stop()
				l.kickSigner()
			}
		}
	}
}

// signRetry is how soon an undelivered checkpoint signature is sent again.
const signRetry = 50 * time.Millisecond

// kickSigner tells the signer goroutine the head moved.
func (l *Ledger) kickSigner() {
	select {
	case l.headChanged <- struct{}{}:
	default:
	}
}

// signHead signs the checkpoint of the current tree. The store records
// "signed size N, root R" with a sync before the signature exists, and
// refuses another root for N or a smaller N, so no crash or restart can
// make this node sign two trees of one size or sign backwards.
func (l *Ledger) signHead(ctx context.Context) error {
	if l.syncing() {
		return nil // neither signs nor serves until caught up
	}
	size := l.st.TreeSize()
	if size == 0 {
		return nil
	}
	if _, err := l.versionFor(size).policy.Verifiers.Verifier(l.signer.Name(), l.signer.KeyHash()); err != nil {
		return nil // not a voting member for this tree (an observer, removed, or not yet added here)
	}
	lastSize, lastRoot, ok, err := l.st.LastSigned()
	if err != nil {
		return err
	}
	root, err := l.st.TreeHash(size)
	if err != nil {
		return fmt.Errorf("sign %d: %w", size, err)
	}
	if ok && lastSize == size && lastRoot != root {
		return fmt.Errorf("refusing to sign a second root for size %d", size)
	}
	if !ok || lastSize != size {
		if err := l.st.RecordSigned(size, root); err != nil {
			return fmt.Errorf("sign %d: %w", size, err)
		}
	}
	signed, err := checkpoint.Sign(checkpoint.Checkpoint{Origin: l.origin, Size: int64(size), Root: root}, l.signer)
	if err != nil {
		return err
	}
	if l.sendCosig == nil {
		return l.AddCosignature(signed)
	}
	return l.sendCosig(ctx, signed)
}

// AddCosignature takes a checkpoint signed by one or more institutions of
// the network, for a tree this replica holds, and counts the signatures
// toward finality. Signatures by unknown keys are refused; so is a
// signature over a root this replica does not have for that size.
func (l *Ledger) AddCosignature(signed []byte) error {
	size, err := noteSize(signed)
	if err != nil {
		return fmt.Errorf("%w: cosignature: %v", ErrInvalid, err)
	}
	if size > l.st.TreeSize() {
		return fmt.Errorf("%w: cosignature for size %d beyond this replica's tree %d", ErrNotFound, size, l.st.TreeSize())
	}
	// The tree is applied here, so its manifest version is known.
	policy := l.versionFor(size).policy
	n, err := note.Open(signed, policy.Verifiers)
	if err != nil {
		return fmt.Errorf("%w: cosignature: %v", ErrInvalid, err)
	}
	if len(n.UnverifiedSigs) > 0 {
		return fmt.Errorf("%w: cosignature by a key outside the manifest", ErrInvalid)
	}
	c, err := checkpoint.ParseBody(n.Text)
	if err != nil {
		return fmt.Errorf("%w: cosignature: %v", ErrInvalid, err)
	}
	if c.Origin != l.origin {
		return fmt.Errorf("%w: cosignature for origin %q", ErrInvalid, c.Origin)
	}
	root, err := l.st.TreeHash(size)
	if err != nil {
		return err
	}
	if root != c.Root {
		l.alarm("cosignature over a different root", "size", size, "signers", n.Sigs[0].Name)
		return fmt.Errorf("%w: cosignature over a root this replica does not have for size %d", ErrConflict, size)
	}
	l.sigMu.Lock()
	defer l.sigMu.Unlock()
	if size <= l.finalSize() {
		return nil // already final
	}
	got := l.sigs[size]
	if got == nil {
		got = map[string]string{}
		l.sigs[size] = got
	}
	for _, s := range n.Sigs {
		got[s.Name] = "— " + s.Name + " " + s.Base64 + "\n"
	}
	if len(got) >= policy.Threshold {
		select {
		case l.quorum <- size:
		default: // the finalizer is busy; it takes the newest quorum next
		}
	}
	return nil
}

// finalizeTrees is the finalizer goroutine: it proposes a finalize entry
// for the newest tree whose signatures meet the policy.
func (l *Ledger) finalizeTrees(ctx context.Context) {
	defer l.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.quorum:
		}
		signed, size := l.assembleNewest()
		if signed == nil {
			continue
		}
		if signed = l.witnessCheckpoint(ctx, size, signed); signed == nil {
			continue // held back for a required witness (witness.go)
		}
		err := l.orderer.Propose(ctx, wrapEntry(entryFinal, signed))
		if err != nil && ctx.Err() == nil {
			l.log.Warn("finalize entry not committed", "size", size, "err", err)
			// Try again on the next signature.
		}
	}
}

// assembleNewest builds the signed note of the largest size with enough
// signatures, and forgets the smaller sizes it makes moot.
func (l *Ledger) assembleNewest() ([]byte, uint64) {
	l.sigMu.Lock()
	defer l.sigMu.Unlock()
	final := l.finalSize()
	var best uint64
	for size, got := range l.sigs {
		if size <= final {
			delete(l.sigs, size)
			continue
		}
		if len(got) >= l.versionFor(size).policy.Threshold && size > best {
			best = size
		}
	}
	if best == 0 {
		return nil, 0
	}
	root, err := l.st.TreeHash(best)
	if err != nil {
		return nil, 0
	}
	lines := make([]string, 0, len(l.sigs[best]))
	for _, line := range l.sigs[best] {
		lines = append(lines, line)
	}
	slices.Sort(lines)
	body := checkpoint.Checkpoint{Origin: l.origin, Size: int64(best), Root: root}.Body()
	signed := []byte(string(body) + "\n" + strings.Join(lines, ""))
	if _, err := checkpoint.Open(signed, institutionsOnly(l.versionFor(best).policy)); err != nil {
		l.log.Error("assembled checkpoint does not meet the policy", "size", best, "err", err)
		return nil, 0
	}
	return signed, best
}

// applyFinal stores a committed finalize entry: the first final checkpoint
// for a size wins, and only if it verifies under the policy and names this
// replica's own tree.
func (l *Ledger) applyFinal(e uint64, signed []byte) error {
	size, err := noteSize(signed)
	if err != nil {
		l.alarm("committed finalize entry is malformed", "entry", e, "err", err)
		return nil
	}
	if size <= l.finalSize() {
		return nil // an older or repeated finalization
	}
	if size > l.st.TreeSize() {
		l.alarm("committed finalize entry beyond this replica's tree", "entry", e, "size", size)
		return nil
	}
	fin, err := checkpoint.Open(signed, l.versionFor(size).policy)
	if err != nil {
		l.alarm("committed finalize entry does not meet the policy", "entry", e, "err", err)
		return nil
	}
	root, err := l.st.TreeHash(size)
	if err != nil {
		return err
	}
	if root != fin.Root {
		l.alarm("committed finalize entry for a root this replica does not have", "entry", e, "size", size)
		return nil
	}
	prev := l.finalSize()
	if err := l.st.PutCheckpoint(size, signed); err != nil && !errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("store final checkpoint %d: %w", size, err)
	}
	l.cacheMu.Lock()
	l.final = finalCache{prevSize: prev, size: size, signed: signed}
	close(l.finalNotify)
	l.finalNotify = make(chan struct{})
	l.cacheMu.Unlock()
	return nil
}

// finalSize returns the size of the latest final checkpoint (0 for none).
func (l *Ledger) finalSize() uint64 {
	l.cacheMu.RLock()
	defer l.cacheMu.RUnlock()
	return l.final.size
}

// WaitFinal waits until a final checkpoint covers index.
func (l *Ledger) WaitFinal(ctx context.Context, index uint64) error {
	if err := l.waitUntil(ctx, &l.finalNotify, func() bool { return index < l.finalSize() }); err != nil {
		return fmt.Errorf("%w: record %d is committed; retry for its receipt (%v)", ErrNotFinal, index, err)
	}
	return nil
}

// alarm records and logs something an honest network never does. A
// faulty leader retries the same refused entry over and over, so an alarm
// equal to one already listed counts up there instead of pushing older,
// different alarms out of the list.
func (l *Ledger) alarm(msg string, args ...any) {
	l.log.Error("ALARM: "+msg, args...)
	l.cacheMu.Lock()
	defer l.cacheMu.Unlock()
	for i := range l.alarms {
		if l.alarms[i].msg == msg {
			l.alarms[i].count++
			a := l.alarms[i]
			l.alarms = append(append(l.alarms[:i:i], l.alarms[i+1:]...), a) // most recent last
			return
		}
	}
	l.alarms = append(l.alarms, alarmEntry{msg: msg, count: 1})
	if len(l.alarms) > maxAlarms {
		l.alarms = l.alarms[1:]
	}
}

// maxAlarms bounds the distinct alarms kept.
const maxAlarms = 100

type alarmEntry struct {
	msg   string
	count int
}

// Alarms returns the most recent distinct alarms, oldest first, each with
// how often it was raised (for status and audit).
func (l *Ledger) Alarms() []string {
	l.cacheMu.RLock()
	defer l.cacheMu.RUnlock()
	out := make([]string, len(l.alarms))
	for i, a := range l.alarms {
		out[i] = a.msg
		if a.count > 1 {
			out[i] = fmt.Sprintf("%s (%d times)", a.msg, a.count)
		}
	}
	return out
}
