package raft

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	etcdraft "go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cunzheng/cunzheng/consensus"
)

// memFSM records applied entries in memory; the test keeps the same value
// across a replica's restarts, standing in for a durable state machine.
type memFSM struct {
	mu       sync.Mutex
	applied  uint64
	log      []appliedEntry
	restores int

	rejectPrefix atomic.Pointer[string] // Check fails for data with this prefix
	restoreGate  chan struct{}          // when set, Restore waits on it (or ctx)
}

type appliedEntry struct {
	Index uint64
	Data  string
	Here  bool
}

func (f *memFSM) Apply(_ context.Context, e consensus.Entry) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e.Index <= f.applied {
		return nil
	}
	f.applied = e.Index
	// Like the ledger's dedup: a caller's retry of an entry that did
	// commit after all is applied as a no-op.
	if slices.ContainsFunc(f.log, func(a appliedEntry) bool { return a.Data == string(e.Data) }) {
		return nil
	}
	f.log = append(f.log, appliedEntry{e.Index, string(e.Data), e.ProposedHere})
	return nil
}

func (f *memFSM) Applied() (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applied, nil
}

func (f *memFSM) Check(data []byte) error {
	if p := f.rejectPrefix.Load(); p != nil && strings.HasPrefix(string(data), *p) {
		return fmt.Errorf("test check refuses %q", data)
	}
	return nil
}

type memSnapshot struct {
	Applied uint64
	Log     []appliedEntry
}

func (f *memFSM) Snapshot() ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return json.Marshal(memSnapshot{f.applied, f.log})
}

func (f *memFSM) Restore(ctx context.Context, data []byte) error {
	f.mu.Lock()
	gate := f.restoreGate
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var s memSnapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range s.Log {
		s.Log[i].Here = false
	}
	f.applied, f.log = s.Applied, s.Log
	f.restores++
	return nil
}

// data returns the applied entries' data in order.
func (f *memFSM) data() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, len(f.log))
	for i, e := range f.log {
		out[i] = e.Data
	}
	return out
}

func (f *memFSM) entries() []appliedEntry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.log)
}

func (f *memFSM) restoreCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.restores
}

// fakeNet connects in-process replicas: one queue and one delivery
// goroutine per directed link, messages marshalled as on a wire, links
// that can be cut.
type fakeNet struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	nodes map[uint64]*Node
	links map[[2]uint64]chan []byte
	cut   map[[2]uint64]bool
}

func newFakeNet(t *testing.T) *fakeNet {
	ctx, cancel := context.WithCancel(context.Background())
	f := &fakeNet{ctx: ctx, cancel: cancel, nodes: map[uint64]*Node{}, links: map[[2]uint64]chan []byte{}, cut: map[[2]uint64]bool{}}
	t.Cleanup(func() { cancel(); f.wg.Wait() })
	return f
}

func (f *fakeNet) register(id uint64, n *Node) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n == nil {
		delete(f.nodes, id)
	} else {
		f.nodes[id] = n
	}
}

func (f *fakeNet) node(id uint64) *Node {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nodes[id]
}

// partition cuts every link between group and the other replicas.
func (f *fakeNet) partition(group ...uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for a := uint64(1); a <= 16; a++ {
		for b := uint64(1); b <= 16; b++ {
			if slices.Contains(group, a) != slices.Contains(group, b) {
				f.cut[[2]uint64{a, b}] = true
			}
		}
	}
}

func (f *fakeNet) heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.cut)
}

func (f *fakeNet) link(from, to uint64) chan []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := [2]uint64{from, to}
	q, ok := f.links[key]
	if !ok {
		q = make(chan []byte, 256)
		f.links[key] = q
		f.wg.Add(1)
		go f.deliver(from, to, q)
	}
	return q
}

func (f *fakeNet) deliver(from, to uint64, q chan []byte) {
	defer f.wg.Done()
	for {
		var b []byte
		select {
		case b = <-q:
		case <-f.ctx.Done():
			return
		}
		m := &raftpb.Message{}
		if err := proto.Unmarshal(b, m); err != nil {
			panic(err)
		}
		f.mu.Lock()
		dst, src, cut := f.nodes[to], f.nodes[from], f.cut[[2]uint64{from, to}]
		f.mu.Unlock()
		ok := dst != nil && !cut
		if ok {
			ctx, cancel := context.WithTimeout(f.ctx, time.Second)
			err := dst.Step(ctx, m)
			cancel()
			ok = err == nil || errors.Is(err, ErrRejected)
		}
		if m.GetType() == raftpb.MsgSnap && src != nil {
			status := etcdraft.SnapshotFinish
			if !ok {
				status = etcdraft.SnapshotFailure
			}
			src.ReportSnapshot(to, status)
		}
	}
}

type fakeTransport struct {
	net  *fakeNet
	from uint64
}

func (t fakeTransport) Send(msgs []*raftpb.Message) {
	for _, m := range msgs {
		b, err := proto.Marshal(m)
		if err != nil {
			panic(err)
		}
		select {
		case t.net.link(t.from, m.GetTo()) <- b:
		default:
			if n := t.net.node(t.from); n != nil {
				n.ReportUnreachable(m.GetTo())
				if m.GetType() == raftpb.MsgSnap {
					n.ReportSnapshot(m.GetTo(), etcdraft.SnapshotFailure)
				}
			}
		}
	}
}

// cluster is a set of replicas on a fakeNet, each with a directory and an
// FSM that outlive restarts.
type cluster struct {
	t    *testing.T
	net  *fakeNet
	dir  string
	tune func(*Config)

	mu    sync.Mutex
	peers []Peer
	fsms  map[uint64]*memFSM
	nodes map[uint64]*Node
}

func newCluster(t *testing.T, voters, learners []uint64, tune func(*Config)) *cluster {
	t.Helper()
	c := &cluster{t: t, net: newFakeNet(t), dir: t.TempDir(), tune: tune, fsms: map[uint64]*memFSM{}, nodes: map[uint64]*Node{}}
	for _, id := range voters {
		c.peers = append(c.peers, Peer{ID: id})
	}
	for _, id := range learners {
		c.peers = append(c.peers, Peer{ID: id, Learner: true})
	}
	t.Cleanup(c.closeAll)
	for _, p := range c.peers {
		c.start(p.ID, false)
	}
	return c
}

func (c *cluster) config(id uint64, join bool) Config {
	c.mu.Lock()
	fsm := c.fsms[id]
	if fsm == nil {
		fsm = &memFSM{}
		c.fsms[id] = fsm
	}
	c.mu.Unlock()
	cfg := Config{
		ID:             id,
		Dir:            filepath.Join(c.dir, fmt.Sprint(id)),
		Join:           join,
		Transport:      fakeTransport{c.net, id},
		FSM:            fsm,
		Logger:         testLogger(c.t, id),
		TickInterval:   10 * time.Millisecond,
		ElectionTicks:  10,
		HeartbeatTicks: 1,
	}
	if !join {
		cfg.Peers = c.peers
	}
	if c.tune != nil {
		c.tune(&cfg)
	}
	return cfg
}

// start (re)starts replica id from its directory.
func (c *cluster) start(id uint64, join bool) *Node {
	c.t.Helper()
	n, err := Start(context.Background(), c.config(id, join))
	if err != nil {
		c.t.Fatalf("start %d: %v", id, err)
	}
	c.mu.Lock()
	c.nodes[id] = n
	c.mu.Unlock()
	c.net.register(id, n)
	return n
}

func (c *cluster) stop(id uint64) {
	c.t.Helper()
	c.mu.Lock()
	n := c.nodes[id]
	delete(c.nodes, id)
	c.mu.Unlock()
	c.net.register(id, nil)
	if n != nil {
		if err := n.Close(); err != nil {
			c.t.Errorf("close %d: %v", id, err)
		}
	}
}

func (c *cluster) closeAll() {
	c.mu.Lock()
	ids := slices.Collect(func(yield func(uint64) bool) {
		for id := range c.nodes {
			if !yield(id) {
				return
			}
		}
	})
	c.mu.Unlock()
	for _, id := range ids {
		c.stop(id)
	}
}

func (c *cluster) node(id uint64) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

func (c *cluster) fsm(id uint64) *memFSM {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fsms[id]
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitLeader waits until the given replicas agree on one leader among
// them, and returns it.
func (c *cluster) waitLeader(ids ...uint64) uint64 {
	c.t.Helper()
	var lead uint64
	waitFor(c.t, 10*time.Second, fmt.Sprintf("a leader agreed by %v", ids), func() bool {
		lead = c.node(ids[0]).Leader()
		if lead == 0 || !slices.Contains(ids, lead) || !c.node(lead).Status().IsLeader {
			return false
		}
		for _, id := range ids[1:] {
			if c.node(id).Leader() != lead {
				return false
			}
		}
		return true
	})
	return lead
}

// propose proposes data at replica id, retrying the errors a caller is
// told to retry, until it is acknowledged.
func (c *cluster) propose(id uint64, data string) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err := c.node(id).Propose(ctx, []byte(data))
		cancel()
		if err == nil {
			return
		}
		if !errors.Is(err, ErrNoLeader) && !errors.Is(err, ErrLeaderChanged) && !errors.Is(err, ErrDropped) && !errors.Is(err, context.DeadlineExceeded) {
			c.t.Fatalf("propose %q at %d: %v", data, id, err)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("propose %q at %d: still failing: %v", data, id, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitConverged waits until every listed replica has applied the same
// sequence, and that sequence holds every acknowledged proposal. It
// returns the sequence.
func (c *cluster) waitConverged(acked []string, ids ...uint64) []string {
	c.t.Helper()
	var seq []string
	waitFor(c.t, 15*time.Second, fmt.Sprintf("replicas %v to converge on %d acknowledged entries", ids, len(acked)), func() bool {
		seq = c.fsm(ids[0]).data()
		for _, id := range ids[1:] {
			if !slices.Equal(c.fsm(id).data(), seq) {
				return false
			}
		}
		for _, a := range acked {
			if !slices.Contains(seq, a) {
				return false
			}
		}
		return true
	})
	return seq
}

func testLogger(t *testing.T, id uint64) *slog.Logger {
	if os.Getenv("RAFT_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name(), "node", id)
}

func ids(n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = uint64(i + 1)
	}
	return out
}
