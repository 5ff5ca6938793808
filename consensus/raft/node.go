package raft

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	etcdraft "go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cunzheng/cunzheng/consensus"
)

// Defaults for the Config fields left zero.
const (
	DefaultTickInterval        = 100 * time.Millisecond
	DefaultElectionTicks       = 10
	DefaultHeartbeatTicks      = 1
	DefaultSnapshotEntries     = 10000
	DefaultCompactKeep         = 1000
	DefaultMaxSizePerMsg       = 1 << 20
	DefaultMaxInflightMsgs     = 256
	DefaultMaxUncommittedBytes = 64 << 20
)

// Errors of Propose, AddMember and RemoveMember. None of them means the
// entry will not commit: it may still be in a log that a new leader
// commits. Callers retry, and the FSM treats a repeat as a no-op.
var (
	// ErrNoLeader is returned when this replica knows no leader to send
	// the proposal to (an election is running, or it is cut off).
	ErrNoLeader = errors.New("raft: no leader")
	// ErrDropped is returned when raft refused the proposal (leadership
	// transfer, too many uncommitted bytes).
	ErrDropped = errors.New("raft: proposal dropped")
	// ErrLeaderChanged is returned when the leader changed (or this
	// replica lost leadership) before the proposal was applied here.
	ErrLeaderChanged = errors.New("raft: leader changed before the proposal was applied")
	// ErrRemoved is returned once this replica has been removed from the
	// configuration.
	ErrRemoved = errors.New("raft: replica removed from the configuration")
	// ErrRejected is returned by Step when an appended entry failed the
	// FSM's Check (or is not a well-formed envelope): the message was
	// dropped unacknowledged.
	ErrRejected = errors.New("raft: entry rejected by check")
)

// Transport carries raft messages between replicas.
type Transport interface {
	// Send delivers messages to peers (m.To), best effort, without
	// blocking the Ready loop: queue per peer, drop and call
	// Node.ReportUnreachable(to) when a peer's queue is full or the peer
	// cannot be reached, and call Node.ReportSnapshot after each MsgSnap
	// was delivered or failed. Heartbeats and votes should not wait behind
	// large appends. Messages are shared with raft: Send may marshal them
	// (also concurrently) but must not modify them.
	Send(msgs []*raftpb.Message)
}

// Peer is a member of the initial configuration.
type Peer struct {
	ID      uint64 // raft ID, non-zero, never reused
	Learner bool   // replicates but does not vote
}

// Config configures a Node. Zero values of the optional fields take the
// Default constants.
type Config struct {
	// ID is this replica's raft ID: non-zero, never reused by another
	// replica, even after this one is removed.
	ID uint64
	// Dir is the raft storage directory (its own Pebble database); FS
	// (vfs.Default when nil) lets tests use an in-memory filesystem.
	Dir string
	FS  vfs.FS
	// Peers is the initial configuration, used only when Dir holds no
	// state and Join is false: every founding replica must be given the
	// same Peers, including itself.
	Peers []Peer
	// Join starts a replica with empty state that waits to be added by a
	// conf change (AddMember on a member) and then receives a snapshot.
	// Joining needs an FSM that implements consensus.Snapshotter.
	Join bool
	// Transport sends this replica's messages; required.
	Transport Transport
	// FSM applies committed entries; required. If it implements
	// consensus.Checker, entries arriving in appends are checked before
	// they are acknowledged; if it implements consensus.Snapshotter, the
	// log is compacted behind snapshots and lagging or new replicas are
	// restored from them.
	FSM    consensus.FSM
	Logger *slog.Logger
	// TickInterval is the length of one raft tick; ElectionTicks and
	// HeartbeatTicks count ticks (ElectionTicks > HeartbeatTicks).
	TickInterval   time.Duration
	ElectionTicks  int
	HeartbeatTicks int
	// SnapshotEntries is how many applied entries trigger a snapshot and
	// a compaction that keeps the newest CompactKeep entries for slow
	// followers. Without a Snapshotter FSM the log is never compacted.
	SnapshotEntries uint64
	CompactKeep     uint64
	// MaxSizePerMsg limits the bytes of entries in one append message;
	// MaxInflightMsgs the appends in flight to one follower;
	// MaxUncommittedBytes the proposals a leader holds uncommitted before
	// it drops new ones.
	MaxSizePerMsg       uint64
	MaxInflightMsgs     int
	MaxUncommittedBytes uint64
}

// validate checks the config and fills in defaults.
func (c *Config) validate() error {
	switch {
	case c.ID == 0:
		return errors.New("raft: config: ID must not be 0")
	case c.Dir == "":
		return errors.New("raft: config: Dir is required")
	case c.Transport == nil:
		return errors.New("raft: config: Transport is required")
	case c.FSM == nil:
		return errors.New("raft: config: FSM is required")
	case c.Join && len(c.Peers) > 0:
		return errors.New("raft: config: a joining replica takes no Peers: it learns the members from its snapshot")
	}
	if _, ok := c.FSM.(consensus.Snapshotter); c.Join && !ok {
		return errors.New("raft: config: joining needs an FSM that implements consensus.Snapshotter")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.TickInterval == 0 {
		c.TickInterval = DefaultTickInterval
	}
	if c.ElectionTicks == 0 {
		c.ElectionTicks = DefaultElectionTicks
	}
	if c.HeartbeatTicks == 0 {
		c.HeartbeatTicks = DefaultHeartbeatTicks
	}
	if c.SnapshotEntries == 0 {
		c.SnapshotEntries = DefaultSnapshotEntries
	}
	if c.CompactKeep == 0 {
		c.CompactKeep = DefaultCompactKeep
	}
	if c.MaxSizePerMsg == 0 {
		c.MaxSizePerMsg = DefaultMaxSizePerMsg
	}
	if c.MaxInflightMsgs == 0 {
		c.MaxInflightMsgs = DefaultMaxInflightMsgs
	}
	if c.MaxUncommittedBytes == 0 {
		c.MaxUncommittedBytes = DefaultMaxUncommittedBytes
	}
	switch {
	case c.TickInterval < 0:
		return errors.New("raft: config: TickInterval must be positive")
	case c.HeartbeatTicks < 0 || c.ElectionTicks <= c.HeartbeatTicks:
		return fmt.Errorf("raft: config: ElectionTicks (%d) must exceed HeartbeatTicks (%d)", c.ElectionTicks, c.HeartbeatTicks)
	case c.MaxInflightMsgs < 0:
		return errors.New("raft: config: MaxInflightMsgs must be positive")
	}
	return nil
}

// bootstrapConfState checks the initial membership and returns it.
func (c *Config) bootstrapConfState() (*raftpb.ConfState, error) {
	if len(c.Peers) == 0 {
		return nil, errors.New("raft: config: empty Dir and no Peers: give the initial members, or set Join")
	}
	cs := &raftpb.ConfState{}
	seen := map[uint64]bool{}
	for _, p := range c.Peers {
		if p.ID == 0 {
			return nil, errors.New("raft: config: peer ID 0")
		}
		if seen[p.ID] {
			return nil, fmt.Errorf("raft: config: peer %d listed twice", p.ID)
		}
		seen[p.ID] = true
		if p.Learner {
			cs.Learners = append(cs.Learners, p.ID)
		} else {
			cs.Voters = append(cs.Voters, p.ID)
		}
	}
	if !seen[c.ID] {
		return nil, fmt.Errorf("raft: config: own ID %d is not among the Peers", c.ID)
	}
	if len(cs.Voters) == 0 {
		return nil, errors.New("raft: config: no voter among the Peers")
	}
	slices.Sort(cs.Voters)
	slices.Sort(cs.Learners)
	return cs, nil
}

// Status is a replica's view of the network.
type Status struct {
	ID       uint64
	Leader   uint64 // 0 when unknown
	IsLeader bool
	Term     uint64
	Commit   uint64 // highest index known committed (persisted)
	Applied  uint64 // highest index applied on this replica
	Voters   []uint64
	Learners []uint64
	// FirstIndex is the first entry still in the raft log; SnapshotIndex
	// the index of the latest snapshot.
	FirstIndex    uint64
	SnapshotIndex uint64
	// LeaderSince, on a leader, is the index of the first entry of its
	// term. Until Commit reaches it, entries of earlier terms in its log
	// may still commit, so a leader that builds on applied state waits.
	LeaderSince uint64
	// ChecksRejected counts append messages dropped because an entry
	// failed the FSM's Check.
	ChecksRejected uint64
	Removed        bool
	// Err is the error that stopped the Ready loop, nil while it runs.
	Err error
}

// Node is one replica's raft driver: it owns the etcd raft node, its
// storage and the Ready loop, and implements consensus.Orderer.
type Node struct {
	cfg         Config
	raft        etcdraft.Node
	storage     *Storage
	fsm         consensus.FSM
	checker     consensus.Checker     // nil when the FSM checks nothing
	snapshotter consensus.Snapshotter // nil when the FSM cannot snapshot
	log         *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when the Ready loop has returned

	mu          sync.Mutex
	pending     map[[16]byte]*waiter // proposals and conf changes awaiting apply
	conf        *raftpb.ConfState    // current configuration
	loopErr     error
	lastRejects [2]uint64 // (from, index) of the last rejection logged at Error

	confMu sync.Mutex // one conf change at a time from this replica

	leader    atomic.Uint64
	isLeader  atomic.Bool
	term      atomic.Uint64
	commit    atomic.Uint64
	applied   atomic.Uint64
	snapIndex atomic.Uint64
	rejected  atomic.Uint64
	removed   atomic.Bool
	leadStart atomic.Uint64 // first index of this replica's current term as leader

	closeOnce sync.Once
	closeErr  error
}

var _ consensus.Orderer = (*Node)(nil)

type waiter struct {
	data []byte     // the proposed entry data (envelope), to recognise it
	done chan error // buffered 1; written once by whoever removes the waiter
}

// Start opens the storage in cfg.Dir, bootstraps it on first start (or
// starts empty to join), and runs the Ready loop until ctx is done or
// Close is called. Close must be called in any case to release the
// storage.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger.With("raft_id", cfg.ID)
	st, err := OpenStorage(cfg.Dir, cfg.FS, log)
	if err != nil {
		return nil, err
	}
	n, err := start(ctx, cfg, st, log)
	if err != nil {
		st.Close()
		return nil, err
	}
	return n, nil
}

func start(ctx context.Context, cfg Config, st *Storage, log *slog.Logger) (*Node, error) {
	if st.IsEmpty() && !cfg.Join {
		cs, err := cfg.bootstrapConfState()
		if err != nil {
			return nil, err
		}
		if err := st.Bootstrap(cs); err != nil {
			return nil, err
		}
		log.Info("raft: bootstrapped", "voters", cs.Voters, "learners", cs.Learners)
	}
	joining := st.IsEmpty() // waiting to be added and sent a snapshot
	n := &Node{
		cfg:     cfg,
		storage: st,
		fsm:     cfg.FSM,
		log:     log,
		done:    make(chan struct{}),
		pending: map[[16]byte]*waiter{},
	}
	n.checker, _ = cfg.FSM.(consensus.Checker)
	n.snapshotter, _ = cfg.FSM.(consensus.Snapshotter)
	n.ctx, n.cancel = context.WithCancel(ctx)

	// A snapshot saved but not yet restored into the FSM (a crash during
	// install) is restored now, before raft replays anything after it.
	snap, _ := st.Snapshot()
	si := snap.GetMetadata().GetIndex()
	if st.Applied() < si {
		log.Warn("raft: finishing an interrupted snapshot install", "index", si)
		if err := n.restoreSnapshot(snap); err != nil {
			n.cancel()
			return nil, err
		}
	}
	fsmApplied, err := cfg.FSM.Applied()
	if err != nil {
		n.cancel()
		return nil, fmt.Errorf("raft: FSM applied index: %w", err)
	}
	applied := max(fsmApplied, st.Applied())
	hs, cs, _ := st.InitialState()
	if applied > hs.GetCommit() {
		n.cancel()
		return nil, fmt.Errorf("raft: FSM applied %d beyond the committed index %d in %s: FSM and raft storage are from different histories", applied, hs.GetCommit(), cfg.Dir)
	}
	n.conf = cs
	n.applied.Store(applied)
	n.snapIndex.Store(si)
	n.term.Store(hs.GetTerm())
	n.commit.Store(hs.GetCommit())
	n.removed.Store(!joining && !isMember(cs, cfg.ID))

	n.raft = etcdraft.RestartNode(&etcdraft.Config{
		ID:                        cfg.ID,
		ElectionTick:              cfg.ElectionTicks,
		HeartbeatTick:             cfg.HeartbeatTicks,
		Storage:                   st,
		Applied:                   applied,
		MaxSizePerMsg:             cfg.MaxSizePerMsg,
		MaxInflightMsgs:           cfg.MaxInflightMsgs,
		MaxUncommittedEntriesSize: cfg.MaxUncommittedBytes,
		CheckQuorum:               true,
		PreVote:                   true,
		StepDownOnRemoval:         true,
		Logger:                    raftLogger{log},
	})
	log.Info("raft: started", "applied", applied, "term", hs.GetTerm(), "commit", hs.GetCommit(),
		"voters", cs.Voters, "learners", cs.Learners, "join", cfg.Join)
	go n.run()
	return n, nil
}

func isMember(cs *raftpb.ConfState, id uint64) bool {
	return slices.Contains(cs.Voters, id) || slices.Contains(cs.Learners, id) || slices.Contains(cs.VotersOutgoing, id)
}

// run is the Ready loop: the one goroutine that persists, sends and
// applies, in that order, for each Ready.
func (n *Node) run() {
	defer close(n.done)
	ticker := time.NewTicker(n.cfg.TickInterval)
	defer ticker.Stop()
	for {
		select {
		case <-n.ctx.Done():
			n.failPending(consensus.ErrStopped)
			return
		case <-ticker.C:
			n.raft.Tick()
		case rd := <-n.raft.Ready():
			if err := n.handleReady(rd); err != nil {
				if n.ctx.Err() == nil {
					n.log.Error("raft: Ready loop stopped", "err", err)
					n.mu.Lock()
					n.loopErr = err
					n.mu.Unlock()
				}
				n.cancel()
				n.failPending(consensus.ErrStopped)
				return
			}
			n.raft.Advance()
		}
	}
}

// handleReady processes one Ready as etcd raft's doc requires:
//  1. persist HardState, Entries and Snapshot in one synced batch;
//  2. restore a received snapshot into the FSM;
//  3. send the messages (only now: a follower must never acknowledge what
//     it has not persisted; the leader follows the same rule for
//     simplicity);
//  4. apply the committed entries in order;
//  5. snapshot and compact when due.
//
// The caller then calls Advance.
func (n *Node) handleReady(rd etcdraft.Ready) error {
	if rd.SoftState != nil {
		leading := rd.SoftState.RaftState == etcdraft.StateLeader
		if leading && !n.isLeader.Load() {
			// A new leader appends an empty entry of its term, in this
			// Ready: once it commits, so has everything of earlier terms.
			start := uint64(0)
			if k := len(rd.Entries); k > 0 {
				start = rd.Entries[k-1].GetIndex()
			} else if last, err := n.storage.LastIndex(); err == nil {
				start = last
			}
			n.leadStart.Store(start)
		}
		n.observeLeader(rd.SoftState.Lead, leading)
	}
	if err := n.storage.Save(rd.HardState, rd.Entries, rd.Snapshot); err != nil {
		return err
	}
	if rd.HardState != nil && !etcdraft.IsEmptyHardState(rd.HardState) {
		n.term.Store(rd.HardState.GetTerm())
		n.commit.Store(rd.HardState.GetCommit())
	}
	if !etcdraft.IsEmptySnap(rd.Snapshot) {
		si := rd.Snapshot.GetMetadata().GetIndex()
		n.log.Info("raft: installing snapshot", "index", si, "term", rd.Snapshot.GetMetadata().GetTerm())
		if err := n.restoreSnapshot(rd.Snapshot); err != nil {
			return err
		}
		n.setConf(rd.Snapshot.GetMetadata().GetConfState())
		n.applied.Store(si)
		n.snapIndex.Store(si)
	}
	if len(rd.Messages) > 0 {
		n.cfg.Transport.Send(rd.Messages)
	}
	for _, e := range rd.CommittedEntries {
		if err := n.apply(e); err != nil {
			return err
		}
	}
	return n.maybeSnapshot()
}

// restoreSnapshot brings the FSM to a snapshot already saved in storage,
// then records it applied. Snapshots without data (the bootstrap one)
// hold no state to restore.
func (n *Node) restoreSnapshot(snap *raftpb.Snapshot) error {
	if n.snapshotter != nil && len(snap.GetData()) > 0 {
		err := n.retry("restore snapshot", func() error { return n.snapshotter.Restore(n.ctx, snap.GetData()) })
		if err != nil {
			return err
		}
	}
	return n.storage.SaveApplied(snap.GetMetadata().GetIndex())
}

// apply applies one committed entry.
func (n *Node) apply(e *raftpb.Entry) error {
	switch e.GetType() {
	case raftpb.EntryNormal:
		if len(e.GetData()) == 0 {
			break // a new leader's empty entry
		}
		env, err := decodeEnvelope(e.GetData())
		if err != nil {
			// Committed, so every replica skips it alike.
			n.log.Error("raft: skipping a committed entry that is not an envelope", "index", e.GetIndex(), "err", err)
			break
		}
		w := n.ownWaiter(env.id, e.GetData())
		entry := consensus.Entry{Index: e.GetIndex(), Data: env.payload, ProposedHere: w != nil}
		if err := n.retry("apply", func() error { return n.fsm.Apply(n.ctx, entry) }); err != nil {
			return err
		}
		n.finish(env.id, nil)
	case raftpb.EntryConfChange, raftpb.EntryConfChangeV2:
		if err := n.applyConfChange(e); err != nil {
			return err
		}
	}
	n.applied.Store(e.GetIndex())
	return nil
}

func (n *Node) applyConfChange(e *raftpb.Entry) error {
	var cc raftpb.ConfChangeI
	var ctx []byte
	if e.GetType() == raftpb.EntryConfChange {
		v1 := &raftpb.ConfChange{}
		if err := proto.Unmarshal(e.GetData(), v1); err != nil {
			return fmt.Errorf("decode conf change at %d: %w", e.GetIndex(), err)
		}
		cc, ctx = v1, v1.GetContext()
	} else {
		v2 := &raftpb.ConfChangeV2{}
		if err := proto.Unmarshal(e.GetData(), v2); err != nil {
			return fmt.Errorf("decode conf change at %d: %w", e.GetIndex(), err)
		}
		cc, ctx = v2, v2.GetContext()
	}
	cs := n.raft.ApplyConfChange(cc)
	if err := n.storage.SaveConfState(e.GetIndex(), cs); err != nil {
		return err
	}
	n.setConf(cs)
	n.log.Info("raft: configuration changed", "index", e.GetIndex(), "change", etcdraft.DescribeConfChange(cc),
		"voters", cs.Voters, "learners", cs.Learners)
	if !isMember(cs, n.cfg.ID) && !n.removed.Swap(true) {
		n.log.Warn("raft: this replica was removed from the configuration")
		n.failPending(ErrRemoved)
	}
	// A replica being added is sent the latest snapshot; take one now so
	// that it names the new member (raft refuses a snapshot whose
	// configuration does not hold the receiver).
	if n.snapshotter != nil && addsMember(cc) {
		if err := n.snapshotAt(e.GetIndex(), cs); err != nil {
			return err
		}
	}
	if len(ctx) == 16 {
		n.finish([16]byte(ctx), nil)
	}
	return nil
}

func addsMember(cc raftpb.ConfChangeI) bool {
	for _, c := range cc.AsV2().GetChanges() {
		if t := c.GetType(); t == raftpb.ConfChangeAddNode || t == raftpb.ConfChangeAddLearnerNode {
			return true
		}
	}
	return false
}

// maybeSnapshot snapshots the FSM and compacts the log every
// SnapshotEntries applied entries, keeping CompactKeep entries behind the
// snapshot for followers that are only slightly behind.
func (n *Node) maybeSnapshot() error {
	applied := n.applied.Load()
	if n.snapshotter == nil || applied < n.snapIndex.Load()+n.cfg.SnapshotEntries {
		return nil
	}
	n.mu.Lock()
	cs := n.conf
	n.mu.Unlock()
	if err := n.snapshotAt(applied, cs); err != nil {
		return err
	}
	if applied <= n.cfg.CompactKeep {
		return nil
	}
	compact := applied - n.cfg.CompactKeep
	if first, _ := n.storage.FirstIndex(); compact < first {
		return nil
	}
	if err := n.storage.Compact(compact); err != nil && !errors.Is(err, etcdraft.ErrCompacted) {
		return err
	}
	n.log.Debug("raft: compacted log", "through", compact, "snapshot", applied)
	return nil
}

func (n *Node) snapshotAt(index uint64, cs *raftpb.ConfState) error {
	if index <= n.snapIndex.Load() {
		return nil
	}
	data, err := n.snapshotter.Snapshot()
	if err != nil {
		// Not fatal: the log just grows until the next attempt.
		n.log.Error("raft: FSM snapshot failed", "index", index, "err", err)
		return nil
	}
	if _, err := n.storage.CreateSnapshot(index, cs, data); err != nil {
		if errors.Is(err, etcdraft.ErrSnapOutOfDate) {
			return nil
		}
		return err
	}
	n.snapIndex.Store(index)
	return nil
}

// retry runs f until it succeeds or the node stops. The FSM's errors are
// treated as transient (a full disk, peers unreachable during a restore):
// a committed entry cannot be skipped, and the Ready loop cannot move on
// without it.
func (n *Node) retry(what string, f func() error) error {
	backoff := 10 * time.Millisecond
	for {
		err := f()
		if err == nil {
			return nil
		}
		if n.ctx.Err() != nil {
			return n.ctx.Err()
		}
		n.log.Error("raft: "+what+" failed; retrying", "err", err, "backoff", backoff)
		select {
		case <-time.After(backoff):
		case <-n.ctx.Done():
			return n.ctx.Err()
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

func (n *Node) setConf(cs *raftpb.ConfState) {
	n.mu.Lock()
	n.conf = proto.Clone(raftpb.EnsureConfState(cs)).(*raftpb.ConfState)
	n.mu.Unlock()
}

// observeLeader records a leader change and fails the proposals waiting
// under the previous leader: they may have been lost with it.
func (n *Node) observeLeader(lead uint64, isLeader bool) {
	n.isLeader.Store(isLeader)
	if old := n.leader.Swap(lead); old != lead {
		n.log.Info("raft: leader changed", "from", old, "to", lead, "term", n.term.Load())
		if old != 0 {
			n.failPending(ErrLeaderChanged)
		}
	}
}

// ownWaiter returns the waiter of a proposal this replica made with
// exactly these bytes, or nil.
func (n *Node) ownWaiter(id [16]byte, data []byte) *waiter {
	n.mu.Lock()
	defer n.mu.Unlock()
	if w := n.pending[id]; w != nil && bytes.Equal(w.data, data) {
		return w
	}
	return nil
}

// finish wakes the waiter of id, if it is still waiting.
func (n *Node) finish(id [16]byte, err error) {
	n.mu.Lock()
	w := n.pending[id]
	delete(n.pending, id)
	n.mu.Unlock()
	if w != nil {
		w.done <- err
	}
}

func (n *Node) failPending(err error) {
	n.mu.Lock()
	ws := n.pending
	n.pending = map[[16]byte]*waiter{}
	n.mu.Unlock()
	for _, w := range ws {
		w.done <- err
	}
}

// stopped returns the error for calls on a stopped node.
func (n *Node) stopped() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.loopErr != nil {
		return fmt.Errorf("%w: %w", consensus.ErrStopped, n.loopErr)
	}
	return consensus.ErrStopped
}

// Propose replicates data and returns once it is committed and applied on
// this replica. It works on any member (a follower forwards to the
// leader). An error means this call cannot confirm the entry, not that it
// will never commit (see ErrLeaderChanged): callers retry, and the FSM
// makes a repeat a no-op. Give ctx a deadline: a proposal lost on the way
// to the leader is noticed only by ctx.
func (n *Node) Propose(ctx context.Context, data []byte) error {
	if n.ctx.Err() != nil {
		return n.stopped()
	}
	if n.removed.Load() {
		return ErrRemoved
	}
	if n.leader.Load() == 0 {
		return ErrNoLeader
	}
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return fmt.Errorf("raft: proposal ID: %w", err)
	}
	env := encodeEnvelope(id, n.cfg.ID, data)
	return n.await(ctx, id, env, func() error { return n.raft.Propose(ctx, env) })
}

// await registers a waiter for id, runs propose and waits until the
// apply loop finishes id or the wait is given up.
func (n *Node) await(ctx context.Context, id [16]byte, data []byte, propose func() error) error {
	w := &waiter{data: data, done: make(chan error, 1)}
	n.mu.Lock()
	n.pending[id] = w
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		if n.pending[id] == w {
			delete(n.pending, id)
		}
		n.mu.Unlock()
	}()
	if err := propose(); err != nil {
		switch {
		case errors.Is(err, etcdraft.ErrProposalDropped):
			return ErrDropped
		case errors.Is(err, etcdraft.ErrStopped):
			return n.stopped()
		}
		return fmt.Errorf("raft: propose: %w", err)
	}
	select {
	case err := <-w.done:
		if errors.Is(err, consensus.ErrStopped) {
			return n.stopped()
		}
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-n.done:
		return n.stopped()
	}
}

// AddMember adds p to the configuration (as a learner if p.Learner, or
// promotes a learner to voter) and returns once the change is applied
// here. The new replica starts with Config.Join and is sent a snapshot.
// Changes go one at a time; raft refuses a second while one is pending.
func (n *Node) AddMember(ctx context.Context, p Peer) error {
	if p.ID == 0 {
		return errors.New("raft: add member: ID 0")
	}
	typ := raftpb.ConfChangeAddNode
	if p.Learner {
		typ = raftpb.ConfChangeAddLearnerNode
	}
	return n.changeConf(ctx, &raftpb.ConfChangeSingle{Type: typ.Enum(), NodeId: new(p.ID)})
}

// RemoveMember removes a replica from the configuration and returns once
// the change is applied here. Its ID must never be used again.
func (n *Node) RemoveMember(ctx context.Context, id uint64) error {
	if id == 0 {
		return errors.New("raft: remove member: ID 0")
	}
	return n.changeConf(ctx, &raftpb.ConfChangeSingle{Type: raftpb.ConfChangeRemoveNode.Enum(), NodeId: new(id)})
}

func (n *Node) changeConf(ctx context.Context, change *raftpb.ConfChangeSingle) error {
	n.confMu.Lock()
	defer n.confMu.Unlock()
	if n.ctx.Err() != nil {
		return n.stopped()
	}
	if n.removed.Load() {
		return ErrRemoved
	}
	if n.leader.Load() == 0 {
		return ErrNoLeader
	}
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return fmt.Errorf("raft: conf change ID: %w", err)
	}
	cc := &raftpb.ConfChangeV2{Changes: []*raftpb.ConfChangeSingle{change}, Context: id[:]}
	return n.await(ctx, id, nil, func() error { return n.raft.ProposeConfChange(ctx, cc) })
}

// Step hands the replica a message from a peer; it returns once raft has
// taken it (bounded by ctx). A forwarded proposal is dropped with
// ErrNoLeader while this replica knows no leader. Entries in an append are
// checked first (envelope, then the FSM's Check unless this replica
// proposed the very bytes itself); if one fails, the whole message is
// dropped unacknowledged, counted, and ErrRejected returned: the leader
// cannot count this replica towards committing it. Entries of a forwarded
// proposal are checked the same way before they enter this leader's log.
func (n *Node) Step(ctx context.Context, m *raftpb.Message) error {
	switch m.GetType() {
	case raftpb.MsgProp:
		// etcd raft holds a forwarded proposal until this replica knows a
		// leader, which would stall the transport's receive loop for the
		// peer behind it (heartbeats included). Drop it instead: the
		// proposer's caller retries.
		if n.leader.Load() == 0 {
			return ErrNoLeader
		}
		// The leader checks a forwarded proposal as a follower would an
		// append: an entry the other replicas refuse would otherwise sit
		// in its log, unacknowledged, and stall every entry after it.
		if err := n.checkEntries(m.GetEntries(), 0); err != nil {
			n.rejected.Add(1)
			n.logRejection(m, err)
			return fmt.Errorf("%w: %w", ErrRejected, err)
		}
	case raftpb.MsgApp:
		if err := n.checkEntries(m.GetEntries(), m.GetCommit()); err != nil {
			n.rejected.Add(1)
			n.logRejection(m, err)
			return fmt.Errorf("%w: %w", ErrRejected, err)
		}
	}
	if err := n.raft.Step(ctx, m); err != nil {
		if errors.Is(err, etcdraft.ErrStopped) {
			return n.stopped()
		}
		return fmt.Errorf("raft: step %s from %d: %w", m.GetType(), m.GetFrom(), err)
	}
	return nil
}

// checkEntries checks the entries of an append or a forwarded proposal.
// Entries at or below committed, the index the leader says is committed,
// are decided: refusing one would only keep this replica from ever
// catching up (the FSM's Apply deals with a committed entry that fails,
// the same way on every replica). A check that depends on how far this
// replica has applied, such as "this height is already taken", would
// otherwise strand a replica that applied further than the quorum did.
func (n *Node) checkEntries(ents []*raftpb.Entry, committed uint64) error {
	for _, e := range ents {
		if e.GetType() != raftpb.EntryNormal || len(e.GetData()) == 0 || e.GetIndex() <= committed && committed > 0 {
			continue
		}
		env, err := decodeEnvelope(e.GetData())
		if err != nil {
			return fmt.Errorf("entry %d: %w", e.GetIndex(), err)
		}
		if n.checker == nil || n.ownWaiter(env.id, e.GetData()) != nil {
			continue
		}
		if err := n.checker.Check(env.payload); err != nil {
			return fmt.Errorf("entry %d: %w", e.GetIndex(), err)
		}
	}
	return nil
}

// logRejection logs a rejected append loudly the first time and quietly
// when the leader retries the same entries.
func (n *Node) logRejection(m *raftpb.Message, err error) {
	key := [2]uint64{m.GetFrom(), m.GetIndex()}
	n.mu.Lock()
	repeat := n.lastRejects == key
	n.lastRejects = key
	n.mu.Unlock()
	level := slog.LevelError
	if repeat {
		level = slog.LevelDebug
	}
	n.log.Log(n.ctx, level, "raft: REJECTED append: an entry failed the check; not acknowledging",
		"from", m.GetFrom(), "term", m.GetTerm(), "after_index", m.GetIndex(), "err", err,
		"rejected_total", n.rejected.Load())
}

// ReportUnreachable tells raft that a message to id could not be
// delivered (the transport dropped it), so the leader probes again.
func (n *Node) ReportUnreachable(id uint64) { n.raft.ReportUnreachable(id) }

// ReportSnapshot tells raft whether a MsgSnap to id was delivered.
func (n *Node) ReportSnapshot(id uint64, status etcdraft.SnapshotStatus) {
	n.raft.ReportSnapshot(id, status)
}

// Leader returns the current leader's ID, 0 when unknown.
func (n *Node) Leader() uint64 { return n.leader.Load() }

// Status returns this replica's view. It does not wait for the raft
// goroutine.
func (n *Node) Status() Status {
	first, _ := n.storage.FirstIndex()
	n.mu.Lock()
	defer n.mu.Unlock()
	return Status{
		ID:             n.cfg.ID,
		Leader:         n.leader.Load(),
		IsLeader:       n.isLeader.Load(),
		Term:           n.term.Load(),
		Commit:         n.commit.Load(),
		Applied:        n.applied.Load(),
		Voters:         slices.Clone(n.conf.Voters),
		Learners:       slices.Clone(n.conf.Learners),
		FirstIndex:     first,
		SnapshotIndex:  n.snapIndex.Load(),
		LeaderSince:    n.leadStart.Load(),
		ChecksRejected: n.rejected.Load(),
		Removed:        n.removed.Load(),
		Err:            n.loopErr,
	}
}

// Close stops the Ready loop and raft, fails waiting proposals with
// consensus.ErrStopped, and closes the storage. It returns the storage's
// close error; Status().Err holds what stopped the loop, if anything did.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.cancel()
		<-n.done
		n.raft.Stop()
		n.failPending(consensus.ErrStopped)
		n.closeErr = n.storage.Close()
	})
	return n.closeErr
}

// raftLogger sends etcd raft's log lines to slog. Raft's Info is chatty
// (every election step), so it goes to Debug; warnings and errors keep
// their level. Fatal and Panic must not return.
type raftLogger struct{ l *slog.Logger }

func (r raftLogger) Debug(v ...any)                   { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Debugf(format string, v ...any)   { r.l.Debug(fmt.Sprintf(format, v...)) }
func (r raftLogger) Info(v ...any)                    { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Infof(format string, v ...any)    { r.l.Debug(fmt.Sprintf(format, v...)) }
func (r raftLogger) Warning(v ...any)                 { r.l.Warn(fmt.Sprint(v...)) }
func (r raftLogger) Warningf(format string, v ...any) { r.l.Warn(fmt.Sprintf(format, v...)) }
func (r raftLogger) Error(v ...any)                   { r.l.Error(fmt.Sprint(v...)) }
func (r raftLogger) Errorf(format string, v ...any)   { r.l.Error(fmt.Sprintf(format, v...)) }
func (r raftLogger) Fatal(v ...any)                   { r.Panic(v...) }
func (r raftLogger) Fatalf(format string, v ...any)   { r.Panicf(format, v...) }
func (r raftLogger) Panic(v ...any) {
	msg := fmt.Sprint(v...)
	r.l.Error(msg, "fatal", true)
	panic("raft: " + msg)
}
func (r raftLogger) Panicf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	r.l.Error(msg, "fatal", true)
	panic("raft: " + msg)
}
