package ledger

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cunzheng/cunzheng/chain/checkpoint"
	"github.com/cunzheng/cunzheng/chain/store"
	"github.com/cunzheng/cunzheng/evidence"
)

// Trusted time. The time service's node stamps SHA-256 of each final
// checkpoint body with its RFC 3161 authority (Config.Stamper) and sends
// the token to the leader (Config.SendTimestamp; locally when nil), which
// proposes a timestamp entry through raft; every replica checks the token
// against the manifest and stores it beside the checkpoint. The first token
// of a checkpoint goes into the receipts it covers, so every node hands out
// the same bytes. On an idle network the latest checkpoint gets a new token
// every RestampInterval: the institutions' signatures over an unchanged
// body are byte-identical and prove nothing new, a fresh token does.

// DefaultRestampInterval is how often an unchanged latest checkpoint is
// stamped again.
const DefaultRestampInterval = 10 * time.Minute

// stampRetry is how soon a failed stamp (clock off its reference, no
// leader) is tried again.
const stampRetry = time.Second

// Stamper issues an RFC 3161 token over SHA-256 of a checkpoint body.
type Stamper func(ctx context.Context, body []byte) ([]byte, error)

// timestampPayload is the entry payload: the tree size whose final
// checkpoint body the token stamps, then the token.
func timestampPayload(size uint64, token []byte) []byte {
	return append(binary.BigEndian.AppendUint64(nil, size), token...)
}

func parseTimestampPayload(p []byte) (uint64, []byte, error) {
	if len(p) <= 8 || len(p)-8 > evidence.MaxTokenSize {
		return 0, nil, fmt.Errorf("%w: timestamp entry of %d bytes", ErrInvalid, len(p))
	}
	return binary.BigEndian.Uint64(p), p[8:], nil
}

// checkTimestamp verifies a token over the checkpoint body of size, a tree
// this replica holds (the body is a pure function of the tree), under the
// manifest version in force for it.
func (l *Ledger) checkTimestamp(size uint64, token []byte) (*evidence.Token, error) {
	if size == 0 || size > l.st.TreeSize() {
		return nil, fmt.Errorf("%w: timestamp for tree size %d, this replica holds %d", ErrNotFound, size, l.st.TreeSize())
	}
	root, err := l.st.TreeHash(size)
	if err != nil {
		return nil, err
	}
	body := checkpoint.Checkpoint{Origin: l.origin, Size: int64(size), Root: root}.Body()
	tok, err := evidence.VerifyToken(token, body, l.versionFor(size).m)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return tok, nil
}

// AddTimestamp takes a time service's token for the final checkpoint of
// size and, once it checks out here, has the network commit it. Only the
// leader proposes; others refuse with ErrNotLeader.
func (l *Ledger) AddTimestamp(ctx context.Context, payload []byte) error {
	size, token, err := parseTimestampPayload(payload)
	if err != nil {
		return err
	}
	if _, err := l.checkTimestamp(size, token); err != nil {
		return err
	}
	if _, _, err := l.finalAt(size); err != nil {
		return err
	}
	if !l.leader() {
		return ErrNotLeader
	}
	return l.orderer.Propose(ctx, wrapEntry(entryTimestamp, payload))
}

// finalAt returns the stored final checkpoint of exactly size.
func (l *Ledger) finalAt(size uint64) (uint64, []byte, error) {
	if size == 0 {
		return 0, nil, fmt.Errorf("%w: no final checkpoint of size 0", ErrNotFound)
	}
	got, signed, err := l.st.CheckpointCovering(size - 1)
	if errors.Is(err, store.ErrNotFound) || err == nil && got != size {
		return 0, nil, fmt.Errorf("%w: no final checkpoint of size %d", ErrNotFound, size)
	}
	return got, signed, err
}

// applyTimestamp stores a committed timestamp entry beside its final
// checkpoint, keyed by the entry index so tokens keep commit order.
func (l *Ledger) applyTimestamp(e uint64, payload []byte) error {
	size, token, err := parseTimestampPayload(payload)
	if err != nil {
		l.alarm("committed timestamp entry is malformed", "entry", e, "err", err)
		return nil
	}
	if _, err := l.checkTimestamp(size, token); err != nil {
		l.alarm("committed timestamp entry does not verify", "entry", e, "size", size, "err", err)
		return nil
	}
	_, signed, err := l.finalAt(size)
	if errors.Is(err, ErrNotFound) {
		l.alarm("committed timestamp entry for a checkpoint that is not final here", "entry", e, "size", size)
		return nil
	}
	if err != nil {
		return err
	}
	if err := l.st.PutCheckpoint(size, signed, store.KV{Key: store.TimestampKey(size, e), Value: token}); err != nil {
		return fmt.Errorf("store timestamp for %d: %w", size, err)
	}
	l.cacheMu.Lock()
	if l.final.size == size && l.final.token == nil {
		l.final.token = token
	}
	l.stampedSize, l.stampedAt = size, l.now()
	close(l.finalNotify)
	l.finalNotify = make(chan struct{})
	l.cacheMu.Unlock()
	return nil
}

// FirstToken returns the first committed token over the final checkpoint
// of size (nil when it has none yet): the one receipts carry.
func (l *Ledger) FirstToken(size uint64) ([]byte, error) {
	l.cacheMu.RLock()
	f := l.final
	l.cacheMu.RUnlock()
	if f.size == size && f.token != nil {
		return f.token, nil
	}
	var tok []byte
	errStop := errors.New("stop")
	err := l.st.ScanPrefix(store.TimestampPrefix(size), func(_, v []byte) error {
		tok = v
		return errStop
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, err
	}
	return tok, nil
}

// Tokens returns every committed token over the final checkpoint of size,
// in commit order: the first, then the freshness re-stamps.
func (l *Ledger) Tokens(size uint64) ([][]byte, error) {
	var out [][]byte
	err := l.st.ScanPrefix(store.TimestampPrefix(size), func(_, v []byte) error {
		out = append(out, append([]byte(nil), v...))
		return nil
	})
	return out, err
}

// NeedsTimestamp reports whether the manifest in force for size lists a
// time service, so a receipt there is complete only with a token.
func (l *Ledger) NeedsTimestamp(size uint64) bool {
	return len(l.versionFor(size).m.TimeServices()) > 0
}

// WaitTimestamp waits until the final checkpoint covering index has a
// token, or ctx ends.
func (l *Ledger) WaitTimestamp(ctx context.Context, index uint64) error {
	for {
		l.cacheMu.RLock()
		ch := l.finalNotify
		l.cacheMu.RUnlock()
		size, _, err := l.covering(index)
		if err == nil {
			tok, err := l.FirstToken(size)
			if err != nil || tok != nil {
				return err
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// stampCheckpoints is the time service's goroutine: it stamps each new
// final checkpoint, and the latest one again every restamp interval.
func (l *Ledger) stampCheckpoints(ctx context.Context) {
	defer l.wg.Done()
	skewed := false
	retry := time.Duration(0)
	for {
		l.cacheMu.RLock()
		ch, size, signed := l.finalNotify, l.final.size, l.final.signed
		stamped, at := l.stampedSize, l.stampedAt
		l.cacheMu.RUnlock()
		wait := time.Duration(-1)
		switch {
		case size == 0 || l.syncing():
		case retry > 0:
			wait, retry = retry, 0
		case size != stamped:
			wait = 0
		default:
			if wait = at.Add(l.restamp).Sub(l.now()); wait <= 0 {
				wait = 0
			}
		}
		if wait != 0 {
			var timer *time.Timer
			var fire <-chan time.Time
			if wait > 0 {
				timer = time.NewTimer(wait)
				fire = timer.C
			}
			select {
			case <-ctx.Done():
				return
			case <-ch:
			case <-fire:
			}
			if timer != nil {
				timer.Stop()
			}
			continue // look at the state again
		}
		if err := l.stampOnce(ctx, size, signed); err != nil {
			if ctx.Err() != nil {
				return
			}
			isSkew := errors.Is(err, ErrClockSkew)
			if isSkew && !skewed {
				l.alarm("time service refuses to stamp: its clock disagrees with its reference", "err", err)
			} else if !isSkew {
				l.log.Warn("checkpoint not stamped; retrying", "size", size, "err", err)
			}
			skewed = isSkew
			retry = stampRetry
			continue
		}
		if skewed {
			l.log.Warn("time service clock agrees with its reference again; stamping resumed")
			skewed = false
		}
		l.cacheMu.Lock()
		if l.stampedSize <= size {
			l.stampedSize, l.stampedAt = size, l.now()
		}
		l.cacheMu.Unlock()
	}
}

// ErrClockSkew is how a Stamper reports that it refused because its clock
// is off its reference (the node wraps tsa.ErrSkew in it).
var ErrClockSkew = errors.New("ledger: time service clock is off its reference")

func (l *Ledger) stampOnce(ctx context.Context, size uint64, signed []byte) error {
	fin, err := checkpoint.Open(signed, l.versionFor(size).policy)
	if err != nil {
		return err
	}
	token, err := l.stamper(ctx, fin.Checkpoint.Body())
	if err != nil {
		return err
	}
	payload := timestampPayload(size, token)
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if l.sendTimestamp == nil {
		return l.AddTimestamp(sctx, payload)
	}
	return l.sendTimestamp(sctx, payload)
}
