package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/cryptobyte"

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

// stamp is one token over the final checkpoint body of a tree size.
type stamp struct {
	size  uint64
	token []byte
}

// maxStampBatch bounds the tokens of one timestamp entry.
const maxStampBatch = 64

// timestampPayload is the entry payload: a count, then for each token the
// tree size whose final checkpoint body it stamps and the token, sizes
// increasing.
func timestampPayload(stamps []stamp) []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddUint8(uint8(len(stamps)))
	for _, st := range stamps {
		b.AddUint64(st.size)
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(st.token) })
	}
	return b.BytesOrPanic()
}

func parseTimestampPayload(p []byte) ([]stamp, error) {
	s := cryptobyte.String(p)
	var n uint8
	if !s.ReadUint8(&n) || n == 0 || n > maxStampBatch {
		return nil, fmt.Errorf("%w: timestamp entry count", ErrInvalid)
	}
	out := make([]stamp, n)
	for i := range out {
		var tok cryptobyte.String
		if !s.ReadUint64(&out[i].size) || !s.ReadUint16LengthPrefixed(&tok) || len(tok) == 0 || len(tok) > evidence.MaxTokenSize {
			return nil, fmt.Errorf("%w: timestamp entry item %d", ErrInvalid, i)
		}
		if i > 0 && out[i].size <= out[i-1].size {
			return nil, fmt.Errorf("%w: timestamp entry sizes must increase", ErrInvalid)
		}
		out[i].token = tok
	}
	if !s.Empty() {
		return nil, fmt.Errorf("%w: %d trailing bytes after timestamp entry", ErrInvalid, len(s))
	}
	return out, nil
}

// checkTimestamp verifies a token over the checkpoint body of size, a tree
// this replica holds (the body is a pure function of the tree), under the
// manifest version in force for it.
func (l *Ledger) checkTimestamp(size uint64, token []byte) (*evidence.Token, error) {
	if size == 0 || size > l.st.TreeSize() {
		return nil, fmt.Errorf("%w: timestamp for tree size %d, this replica holds %d", ErrNotFound, size, l.st.TreeSize())
	}
	body, err := l.bodyAt(size)
	if err != nil {
		return nil, err
	}
	tok, err := evidence.VerifyToken(token, body, l.versionFor(size).m)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return tok, nil
}

// bodyAt returns the checkpoint body of the tree of size, which this
// replica holds: a pure function of the tree, the bytes tokens stamp.
func (l *Ledger) bodyAt(size uint64) ([]byte, error) {
	root, err := l.st.TreeHash(size)
	if err != nil {
		return nil, err
	}
	return checkpoint.Checkpoint{Origin: l.origin, Size: int64(size), Root: root}.Body(), nil
}

// AddTimestamp takes a time service's tokens for final checkpoints (a
// timestamp entry payload) and, once each checks out here, has the network
// commit them. Only the leader proposes; others refuse with ErrNotLeader.
func (l *Ledger) AddTimestamp(ctx context.Context, payload []byte) error {
	if !l.leader() {
		return ErrNotLeader // before the costly token checks
	}
	stamps, err := parseTimestampPayload(payload)
	if err != nil {
		return err
	}
	for _, st := range stamps {
		if _, err := l.checkTimestamp(st.size, st.token); err != nil {
			return err
		}
		if _, _, err := l.finalAt(st.size); err != nil {
			return err
		}
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

// applyTimestamp stores the tokens of a committed timestamp entry beside
// their final checkpoints, keyed by the entry index so the tokens of one
// checkpoint keep commit order. A token that does not verify here is
// skipped with an alarm, as on every honest replica.
func (l *Ledger) applyTimestamp(e uint64, payload []byte) error {
	stamps, err := parseTimestampPayload(payload)
	if err != nil {
		l.alarm("committed timestamp entry is malformed", "entry", e, "err", err)
		return nil
	}
	for _, st := range stamps {
		if _, err := l.checkTimestamp(st.size, st.token); err != nil {
			l.alarm("committed timestamp entry does not verify", "entry", e, "size", st.size, "err", err)
			continue
		}
		_, signed, err := l.finalAt(st.size)
		if errors.Is(err, ErrNotFound) {
			l.alarm("committed timestamp entry for a checkpoint that is not final here", "entry", e, "size", st.size)
			continue
		}
		if err != nil {
			return err
		}
		if err := l.st.PutCheckpoint(st.size, signed, store.KV{Key: store.TimestampKey(st.size, e), Value: st.token}); err != nil {
			return fmt.Errorf("store timestamp for %d: %w", st.size, err)
		}
		l.cacheMu.Lock()
		if l.final.size == st.size && l.final.token == nil {
			l.final.token = st.token
		}
		if st.size >= l.stampedSize {
			l.stampedSize, l.stampedAt = st.size, l.now()
		}
		l.cacheMu.Unlock()
	}
	l.notifyFinal()
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
	_, tok, err := l.st.FirstWithPrefix(store.TimestampPrefix(size))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return tok, err
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

// stampCheckpoints is the time service's goroutine. Every final
// checkpoint gets a token, in order, in batches: a receipt uses the first
// final checkpoint covering its record, so skipping one would leave its
// records without trusted time. After downtime it stamps the backlog. On
// an idle network the latest checkpoint is stamped again every restamp
// interval.
func (l *Ledger) stampCheckpoints(ctx context.Context) {
	defer l.wg.Done()
	next := l.lastStampedSize()
	skewed := false
	for {
		l.cacheMu.RLock()
		ch, latest := l.finalNotify, l.final.size
		stamped, at := l.stampedSize, l.stampedAt
		l.cacheMu.RUnlock()
		var batch []stamp
		var err error
		if !l.syncing() {
			batch, err = l.unstamped(next)
			if err == nil && len(batch) == 0 && latest > 0 && latest == stamped && !l.now().Before(at.Add(l.restamp)) {
				batch = []stamp{{size: latest}} // freshness
			}
		}
		wait := time.Duration(-1) // until the next final checkpoint
		if err == nil && len(batch) > 0 {
			err = l.stampBatch(ctx, batch)
			if err == nil {
				last := batch[len(batch)-1].size
				next = max(next, last)
				// Committed on the leader; this replica may apply it a
				// moment later, and must not stamp the same tree again.
				l.cacheMu.Lock()
				if last >= l.stampedSize {
					l.stampedSize, l.stampedAt = last, l.now()
				}
				l.cacheMu.Unlock()
				if skewed {
					l.log.Warn("time service clock agrees with its reference again; stamping resumed")
					skewed = false
				}
				continue
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			isSkew := errors.Is(err, ErrClockSkew)
			if isSkew && !skewed {
				l.alarm("time service refuses to stamp: its clock disagrees with its reference", "err", err)
			} else if !isSkew {
				l.log.Warn("checkpoints not stamped; retrying", "err", err)
			}
			skewed = isSkew
			wait = stampRetry
		} else if latest > 0 && latest == stamped {
			wait = max(at.Add(l.restamp).Sub(l.now()), time.Millisecond)
		}
		var timer *time.Timer
		var fire <-chan time.Time
		if wait > 0 {
			timer = time.NewTimer(wait)
			fire = timer.C
		}
		select {
		case <-ctx.Done():
		case <-ch:
		case <-fire:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// lastStampedSize returns the largest tree size with a committed token.
func (l *Ledger) lastStampedSize() uint64 {
	key, _, err := l.st.LastWithPrefix(store.TimestampsPrefix())
	if err != nil {
		return 0
	}
	size, err := store.TimestampKeySize(key)
	if err != nil {
		return 0
	}
	return size
}

// unstamped returns up to maxStampBatch final checkpoints above size
// after that have no token yet, in size order.
func (l *Ledger) unstamped(after uint64) ([]stamp, error) {
	var out []stamp
	for len(out) < maxStampBatch {
		size, _, err := l.st.CheckpointCovering(after)
		if errors.Is(err, store.ErrNotFound) {
			break
		}
		if err != nil {
			return nil, err
		}
		tok, err := l.FirstToken(size)
		if err != nil {
			return nil, err
		}
		if tok == nil {
			out = append(out, stamp{size: size})
		}
		after = size
	}
	return out, nil
}

// ErrClockSkew is how a Stamper reports that it refused because its clock
// is off its reference (the node wraps tsa.ErrSkew in it).
var ErrClockSkew = errors.New("ledger: time service clock is off its reference")

// stampBatch stamps each checkpoint of batch and has the network commit
// the tokens in one entry.
func (l *Ledger) stampBatch(ctx context.Context, batch []stamp) error {
	for i := range batch {
		// unstamped found each one final; its body is a function of the
		// tree, so the note's signatures need no second check here.
		body, err := l.bodyAt(batch[i].size)
		if err != nil {
			return err
		}
		if batch[i].token, err = l.stamper(ctx, body); err != nil {
			return err
		}
	}
	payload := timestampPayload(batch)
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if l.sendTimestamp == nil {
		return l.AddTimestamp(sctx, payload)
	}
	return l.sendTimestamp(sctx, payload)
}
