package p2p

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// RaftProtocol carries raft messages, one frame each, from the stream's
// opener to the other end; nothing flows back.
const RaftProtocol protocol.ID = "/cunzheng/raft/1.0.0"

// Queue lengths and timeouts of the raft transport.
const (
	// PriorityQueueLen is how many small messages (heartbeats, votes,
	// responses) wait per peer before new ones are dropped.
	PriorityQueueLen = 256
	// BulkQueueLen is how many appends and snapshots wait per peer; with
	// the raft driver's MaxSizePerMsg it bounds the memory one slow peer
	// can pin.
	BulkQueueLen = 64
	// RedialInterval is how long a lane waits after a failed attempt to
	// open its stream before trying again; messages meanwhile are dropped
	// and reported unreachable.
	RedialInterval = 500 * time.Millisecond
	// PriorityWriteTimeout bounds writing one priority message.
	PriorityWriteTimeout = 5 * time.Second
	// BulkWriteTimeout bounds writing one append or snapshot.
	BulkWriteTimeout = 60 * time.Second
)

// RaftTransport sends and receives raft messages over libp2p. Each peer
// has two outbound lanes, each a long-lived stream with its own queue and
// goroutine: a priority lane for heartbeats, votes and responses, and a
// bulk lane for appends and snapshots, so a large append in flight never
// delays a heartbeat (yamux flow-controls each stream separately).
//
// Incoming messages are delivered only if their From is the raft ID
// mapped to the peer that sent them and their To is this node.
type RaftTransport struct {
	// Unreachable, if set, is called with the raft ID of a peer whenever
	// a message to it is dropped (queue full, no stream, write failed);
	// the raft driver passes it to raft's ReportUnreachable. It is called
	// from Send or from the transport's goroutines and must not block.
	// Set it before the first Send.
	Unreachable func(id uint64)
	// SnapshotStatus, if set, is called once for each MsgSnap: failed is
	// false when the snapshot was written to the peer's stream, true when
	// it was dropped. The raft driver passes it to ReportSnapshot. Same
	// rules as Unreachable.
	SnapshotStatus func(id uint64, failed bool)

	h       *Host
	self    uint64
	deliver func(ctx context.Context, m *raftpb.Message) error
	log     *slog.Logger
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu      sync.RWMutex
	closed  bool
	peers   map[uint64]*raftPeer
	ids     map[peer.ID]uint64
	inbound map[network.Stream]struct{}
}

type raftPeer struct {
	pid      peer.ID
	cancel   context.CancelFunc
	priority *raftLane
	bulk     *raftLane
}

// NewRaftTransport starts a raft transport for the node with raft ID self
// on h. peers maps the other members' raft IDs to their peer IDs (an entry
// for self is ignored). deliver is called with each accepted message, from
// one goroutine per inbound stream; it should hand the message to raft's
// Step and return promptly.
func NewRaftTransport(h *Host, self uint64, peers map[uint64]peer.ID,
	deliver func(ctx context.Context, m *raftpb.Message) error, logger *slog.Logger) (*RaftTransport, error) {
	if self == 0 {
		return nil, errors.New("raft transport: raft ID 0 is reserved")
	}
	if deliver == nil {
		return nil, errors.New("raft transport: no deliver function")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(h.ctx)
	t := &RaftTransport{
		h:       h,
		self:    self,
		deliver: deliver,
		log:     logger.With("component", "raft-transport", "raft_id", self),
		ctx:     ctx,
		cancel:  cancel,
		peers:   make(map[uint64]*raftPeer),
		ids:     make(map[peer.ID]uint64),
		inbound: make(map[network.Stream]struct{}),
	}
	if err := t.SetPeers(peers); err != nil {
		cancel()
		return nil, err
	}
	h.h.SetStreamHandler(RaftProtocol, t.handleStream)
	return t, nil
}

// SetPeers replaces the membership after a configuration change. Lanes to
// peers that left or changed peer ID are stopped (their queued messages
// dropped); streams from them are reset when they next speak.
func (t *RaftTransport) SetPeers(peers map[uint64]peer.ID) error {
	ids := make(map[peer.ID]uint64, len(peers))
	for id, pid := range peers {
		if id == 0 {
			return errors.New("raft transport: raft ID 0 is reserved")
		}
		if id == t.self {
			continue
		}
		if pid == t.h.ID() {
			return fmt.Errorf("raft transport: raft ID %d maps to this host's own peer ID", id)
		}
		if other, dup := ids[pid]; dup {
			return fmt.Errorf("raft transport: peer %s maps to raft IDs %d and %d", pid, other, id)
		}
		ids[pid] = id
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return ErrClosed
	}
	for id, p := range t.peers {
		if pid, ok := peers[id]; !ok || pid != p.pid || id == t.self {
			p.cancel()
			delete(t.peers, id)
		}
	}
	for pid, id := range ids {
		if _, ok := t.peers[id]; ok {
			continue
		}
		ctx, cancel := context.WithCancel(t.ctx)
		p := &raftPeer{
			pid:      pid,
			cancel:   cancel,
			priority: t.newLane(id, pid, "priority", PriorityQueueLen, PriorityWriteTimeout),
			bulk:     t.newLane(id, pid, "bulk", BulkQueueLen, BulkWriteTimeout),
		}
		t.peers[id] = p
		t.wg.Add(2)
		go p.priority.run(ctx, &t.wg)
		go p.bulk.run(ctx, &t.wg)
	}
	t.ids = ids
	return nil
}

// Send queues msgs for their peers and returns without waiting. A message
// for an unknown peer, or whose lane is full, is dropped and reported.
// Messages are not modified and may be held until written, as raft
// allows.
func (t *RaftTransport) Send(msgs []*raftpb.Message) {
	for _, m := range msgs {
		to := m.GetTo()
		t.mu.RLock()
		p := t.peers[to]
		t.mu.RUnlock()
		if p == nil {
			t.log.Debug("dropping raft message for unknown peer", "to", to, "type", m.GetType().String())
			t.reportDropped(to, m)
			continue
		}
		l := p.priority
		if isBulk(m.GetType()) {
			l = p.bulk
		}
		select {
		case l.q <- m:
		default:
			t.log.Debug("dropping raft message: queue full", "to", to, "lane", l.name, "type", m.GetType().String())
			t.reportDropped(to, m)
		}
	}
}

// isBulk reports whether a message type may be large: those wait on the
// bulk lane so they cannot hold up the rest.
func isBulk(typ raftpb.MessageType) bool {
	switch typ {
	case raftpb.MsgApp, raftpb.MsgSnap, raftpb.MsgProp:
		return true
	}
	return false
}

func (t *RaftTransport) reportDropped(to uint64, m *raftpb.Message) {
	if t.Unreachable != nil {
		t.Unreachable(to)
	}
	if m.GetType() == raftpb.MsgSnap && t.SnapshotStatus != nil {
		t.SnapshotStatus(to, true)
	}
}

// Close stops the lanes, resets inbound streams and stops accepting new
// ones. Messages still queued are dropped.
func (t *RaftTransport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.h.h.RemoveStreamHandler(RaftProtocol)
	for _, p := range t.peers {
		p.cancel()
	}
	t.peers = nil // later Sends drop and report
	for s := range t.inbound {
		_ = s.Reset()
	}
	t.mu.Unlock()
	t.cancel()
	t.wg.Wait()
	return nil
}

// handleStream reads one inbound lane until it ends or misbehaves.
func (t *RaftTransport) handleStream(s network.Stream) {
	remote := s.Conn().RemotePeer()
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		_ = s.Reset()
		return
	}
	t.inbound[s] = struct{}{}
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		delete(t.inbound, s)
		t.mu.Unlock()
	}()
	if _, ok := t.raftID(remote); !ok {
		t.h.resetStream(s, "peer is not a raft member", nil)
		return
	}
	fr := NewFrameReader(s, MaxRaftFrame)
	for {
		b, err := fr.Next()
		if err == io.EOF {
			_ = s.Close()
			return
		}
		if err != nil {
			if t.ctx.Err() != nil || errors.Is(err, network.ErrReset) {
				_ = s.Reset()
				return
			}
			t.h.resetStream(s, "bad raft frame", err)
			return
		}
		m, err := unmarshalRaftMessage(b)
		if err != nil {
			t.h.resetStream(s, "bad raft message", err)
			return
		}
		// Membership may have changed since the stream opened.
		from, ok := t.raftID(remote)
		if !ok {
			t.h.resetStream(s, "peer is no longer a raft member", nil)
			return
		}
		if m.GetFrom() != from || m.GetTo() != t.self {
			t.log.Warn("dropping raft message with wrong addressing", "peer", remote,
				"peer_raft_id", from, "from", m.GetFrom(), "to", m.GetTo(), "type", m.GetType().String())
			continue
		}
		if err := t.deliver(t.ctx, m); err != nil {
			t.log.Debug("raft message not delivered", "from", from, "type", m.GetType().String(), "err", err)
		}
	}
}

func (t *RaftTransport) raftID(pid peer.ID) (uint64, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	id, ok := t.ids[pid]
	return id, ok
}

// unmarshalRaftMessage decodes one message strictly: no unknown fields,
// and no types that only ever travel inside one node.
func unmarshalRaftMessage(b []byte) (*raftpb.Message, error) {
	m := new(raftpb.Message)
	if err := proto.Unmarshal(b, m); err != nil {
		return nil, err
	}
	if len(m.ProtoReflect().GetUnknown()) != 0 {
		return nil, errors.New("unknown fields in raft message")
	}
	if m.Type == nil {
		return nil, errors.New("raft message without a type")
	}
	if _, known := raftpb.MessageType_name[int32(m.GetType())]; !known || raft.IsLocalMsg(m.GetType()) {
		return nil, fmt.Errorf("raft message type %v may not cross the network", m.GetType())
	}
	return m, nil
}

// raftLane is one outbound stream to one peer and the queue feeding it.
type raftLane struct {
	t       *RaftTransport
	id      uint64
	pid     peer.ID
	name    string
	q       chan *raftpb.Message
	timeout time.Duration

	// Owned by the lane's goroutine.
	s       network.Stream
	unhook  func() bool // stops the reset of s on cancellation
	retryAt time.Time
	down    bool
}

func (t *RaftTransport) newLane(id uint64, pid peer.ID, name string, n int, timeout time.Duration) *raftLane {
	return &raftLane{t: t, id: id, pid: pid, name: name, q: make(chan *raftpb.Message, n), timeout: timeout}
}

func (l *raftLane) run(ctx context.Context, wg *sync.WaitGroup) {
	defer wg.Done()
	defer l.drop()
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-l.q:
			err := l.send(ctx, m)
			if m.GetType() == raftpb.MsgSnap && l.t.SnapshotStatus != nil {
				l.t.SnapshotStatus(l.id, err != nil)
			}
			if err != nil {
				if l.t.Unreachable != nil {
					l.t.Unreachable(l.id)
				}
				if !l.down && ctx.Err() == nil {
					l.t.log.Warn("raft peer unreachable", "to", l.id, "peer", l.pid, "lane", l.name, "err", err)
				}
				l.down = true
			} else if l.down {
				l.t.log.Info("raft peer reachable", "to", l.id, "peer", l.pid, "lane", l.name)
				l.down = false
			}
		}
	}
}

var errRedialWait = errors.New("waiting to redial")

// send writes m, opening the stream if needed. A write that fails on a
// stream opened earlier is retried once on a fresh one: the old stream
// may have died with its connection while idle.
func (l *raftLane) send(ctx context.Context, m *raftpb.Message) error {
	b, err := proto.Marshal(m)
	if err != nil {
		return fmt.Errorf("marshal %v: %w", m.GetType(), err)
	}
	if len(b) > MaxRaftFrame {
		l.t.log.Error("raft message too large to send; lower MaxSizePerMsg", "to", l.id,
			"type", m.GetType().String(), "bytes", len(b), "limit", MaxRaftFrame)
		return fmt.Errorf("%w: %v of %d bytes", ErrFrameTooLarge, m.GetType(), len(b))
	}
	for attempt := 0; ; attempt++ {
		fresh := l.s == nil
		if fresh {
			if err := l.open(ctx); err != nil {
				return err
			}
		}
		_ = l.s.SetWriteDeadline(time.Now().Add(l.timeout))
		err := WriteFrame(l.s, b, MaxRaftFrame)
		if err == nil {
			return nil
		}
		l.drop()
		if fresh || attempt > 0 || ctx.Err() != nil {
			return err
		}
	}
}

func (l *raftLane) open(ctx context.Context) error {
	if time.Now().Before(l.retryAt) {
		return errRedialWait
	}
	dctx, cancel := context.WithTimeout(ctx, DialTimeout)
	defer cancel()
	s, err := l.t.h.openStream(dctx, l.pid, RaftProtocol)
	if err != nil {
		l.retryAt = time.Now().Add(RedialInterval)
		return err
	}
	l.s = s
	// A write blocked on a stalled peer must not outlive the lane.
	l.unhook = context.AfterFunc(ctx, func() { _ = s.Reset() })
	return nil
}

func (l *raftLane) drop() {
	if l.s == nil {
		return
	}
	l.unhook()
	_ = l.s.Reset()
	l.s = nil
}
