package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/crypto/cryptobyte"

	"github.com/cunzheng/cunzheng/consensus/p2p"
	"github.com/cunzheng/cunzheng/evidence/ledger"
)

// Forwarding. A follower hands the submissions its clients send to the
// leader in batches: one RPC carries up to forwardBatch entries, so a busy
// follower holds a handful of streams to the leader, not one per record.
// The leader answers once each entry is committed; the follower then waits
// for finality itself.

const (
	rpcSubmitBatch = "submit-batch"
	// forwardBatch bounds the entries of one forwarding RPC (each at most a
	// few hundred bytes, well inside the RPC frame limit).
	forwardBatch = 256
	// forwardWait is how long the forwarder gathers entries for a batch.
	forwardWait = 2 * time.Millisecond
	// forwardInFlight bounds the batches in flight to the leader.
	forwardInFlight = 8
	// maxForwardedEntry bounds one forwarded entry.
	maxForwardedEntry = 60000
)

type forwardReq struct {
	tag     byte // 's' submission, 'g' governance
	payload []byte
	res     chan forwardRes
}

type forwardRes struct {
	idx      uint64
	existing bool
	err      error
}

type forwarder struct {
	r  *replication
	in chan *forwardReq
}

func newForwarder(r *replication) *forwarder {
	return &forwarder{r: r, in: make(chan *forwardReq, 4*forwardBatch)}
}

// forward queues one entry for the leader and waits for its answer.
func (f *forwarder) forward(ctx context.Context, tag byte, payload []byte) (uint64, bool, error) {
	req := &forwardReq{tag: tag, payload: payload, res: make(chan forwardRes, 1)}
	select {
	case f.in <- req:
	case <-ctx.Done():
		return 0, false, ctx.Err()
	default:
		return 0, false, fmt.Errorf("%w: too many submissions waiting to be forwarded to the leader", ledger.ErrOverloaded)
	}
	select {
	case res := <-req.res:
		return res.idx, res.existing, res.err
	case <-ctx.Done():
		return 0, false, ctx.Err()
	}
}

// run gathers queued entries into batches until ctx is done.
func (f *forwarder) run(ctx context.Context) {
	sem := make(chan struct{}, forwardInFlight)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		var batch []*forwardReq
		select {
		case <-ctx.Done():
			return
		case req := <-f.in:
			batch = append(batch, req)
		}
		timer := time.NewTimer(forwardWait)
	gather:
		for len(batch) < forwardBatch {
			select {
			case req := <-f.in:
				batch = append(batch, req)
			case <-timer.C:
				break gather
			}
		}
		timer.Stop()
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			answerAll(batch, forwardRes{err: ledger.ErrClosed})
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			f.send(ctx, batch)
		}()
	}
}

func answerAll(batch []*forwardReq, res forwardRes) {
	for _, req := range batch {
		req.res <- res
	}
}

// send carries one batch to the leader.
func (f *forwarder) send(ctx context.Context, batch []*forwardReq) {
	pid, self, err := f.r.leaderPeer()
	if err == nil && self {
		err = fmt.Errorf("%w: this replica became the leader; retry", ledger.ErrNotLeader)
	}
	if err != nil {
		answerAll(batch, forwardRes{err: err})
		return
	}
	b := cryptobyte.NewBuilder(nil)
	b.AddUint16(uint16(len(batch)))
	for _, req := range batch {
		b.AddUint8(req.tag)
		b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(req.payload) })
	}
	body, err := b.Bytes()
	if err != nil {
		answerAll(batch, forwardRes{err: err})
		return
	}
	resp, err := p2p.Call(ctx, f.r.host, pid, rpcSubmitBatch, body)
	if err != nil {
		answerAll(batch, forwardRes{err: decodeRemoteErr(err)})
		return
	}
	answers, err := parseForwardAnswers(resp, len(batch))
	if err != nil {
		answerAll(batch, forwardRes{err: err})
		return
	}
	for i, req := range batch {
		req.res <- answers[i]
	}
}

// parseForwardAnswers strictly parses the leader's answers to a batch of n
// entries: per entry a status byte, then the index and an existing flag, or
// a "code|message" error; nothing after.
func parseForwardAnswers(resp []byte, n int) ([]forwardRes, error) {
	s := cryptobyte.String(resp)
	out := make([]forwardRes, n)
	for i := range out {
		var status uint8
		if !s.ReadUint8(&status) {
			return nil, errors.New("leader answered a short batch")
		}
		switch status {
		case 0:
			var ex uint8
			if !s.ReadUint64(&out[i].idx) || !s.ReadUint8(&ex) || ex > 1 {
				return nil, errors.New("leader answered a malformed batch")
			}
			out[i].existing = ex == 1
		case 1:
			var msg cryptobyte.String
			if !s.ReadUint16LengthPrefixed(&msg) {
				return nil, errors.New("leader answered a malformed batch")
			}
			out[i].err = decodeCode(string(msg))
		default:
			return nil, errors.New("leader answered a malformed batch")
		}
	}
	if !s.Empty() {
		return nil, errors.New("leader answered more than the batch")
	}
	return out, nil
}

// forwardItem is one entry of a forwarded batch.
type forwardItem struct {
	tag     uint8
	payload []byte
}

// parseForwardBatch strictly parses a forwarding request: a count, then
// each entry's kind and bytes, nothing after.
func parseForwardBatch(req []byte) ([]forwardItem, error) {
	s := cryptobyte.String(req)
	var n uint16
	if !s.ReadUint16(&n) || n == 0 || n > forwardBatch {
		return nil, errors.New("malformed batch")
	}
	items := make([]forwardItem, n)
	for i := range items {
		var p cryptobyte.String
		if !s.ReadUint8(&items[i].tag) || !s.ReadUint24LengthPrefixed(&p) || len(p) > maxForwardedEntry {
			return nil, errors.New("malformed batch entry")
		}
		if items[i].tag != 's' && items[i].tag != 'g' {
			return nil, errors.New("unknown entry kind in batch")
		}
		items[i].payload = p
	}
	if !s.Empty() {
		return nil, errors.New("trailing bytes after batch")
	}
	return items, nil
}

// handleSubmitBatch is the leader's side: every entry is submitted at once
// (they share the next block) and answered once committed.
func handleSubmitBatch(l *ledger.Ledger) func(ctx context.Context, _ peer.ID, req []byte) ([]byte, error) {
	return func(ctx context.Context, _ peer.ID, req []byte) ([]byte, error) {
		items, err := parseForwardBatch(req)
		if err != nil {
			return nil, err
		}
		n := len(items)
		res := make([]forwardRes, n)
		var wg sync.WaitGroup
		for i, it := range items {
			wg.Add(1)
			go func() {
				defer wg.Done()
				switch it.tag {
				case 's':
					res[i].idx, res[i].existing, res[i].err = l.SubmitHere(ctx, it.payload)
				case 'g':
					res[i].idx, res[i].existing, res[i].err = l.SubmitGovernanceHere(ctx, it.payload)
				}
			}()
		}
		wg.Wait()
		b := cryptobyte.NewBuilder(nil)
		for _, r := range res {
			if r.err == nil {
				b.AddUint8(0)
				b.AddUint64(r.idx)
				ex := uint8(0)
				if r.existing {
					ex = 1
				}
				b.AddUint8(ex)
				continue
			}
			msg := encodeRemoteErr(r.err).Error()
			if len(msg) > 300 {
				msg = msg[:300]
			}
			b.AddUint8(1)
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(msg)) })
		}
		return b.Bytes()
	}
}
