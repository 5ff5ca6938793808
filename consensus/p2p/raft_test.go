package p2p

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func raftMsg(typ raftpb.MessageType, from, to uint64) *raftpb.Message {
	return &raftpb.Message{Type: typ.Enum(), From: proto.Uint64(from), To: proto.Uint64(to), Term: proto.Uint64(1)}
}

// inbox records delivered messages with their arrival time.
type inbox struct {
	mu   sync.Mutex
	msgs []*raftpb.Message
	at   []time.Time
}

func (in *inbox) deliver(_ context.Context, m *raftpb.Message) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.msgs = append(in.msgs, m)
	in.at = append(in.at, time.Now())
	return nil
}

func (in *inbox) snapshot() []*raftpb.Message {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.msgs)
}

func (in *inbox) count() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.msgs)
}

type raftNode struct {
	*testHost
	id uint64
	t  *RaftTransport
	in *inbox
}

// raftCluster starts one host and transport per raft ID 1..n, all allowed.
func raftCluster(t *testing.T, n int) []*raftNode {
	t.Helper()
	var hosts []*testHost
	peers := map[uint64]peer.ID{}
	for i := range n {
		h := newTestHost(t, nil)
		hosts = append(hosts, h)
		peers[uint64(i+1)] = h.ID()
	}
	mesh(t, hosts...)
	var nodes []*raftNode
	for i, h := range hosts {
		in := &inbox{}
		tr, err := NewRaftTransport(h.Host, uint64(i+1), peers, in.deliver, h.logger)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		nodes = append(nodes, &raftNode{testHost: h, id: uint64(i + 1), t: tr, in: in})
	}
	return nodes
}

func TestRaftMessagesFlowBothWays(t *testing.T) {
	nodes := raftCluster(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	app := raftMsg(raftpb.MsgApp, 1, 2)
	app.Entries = []*raftpb.Entry{{Term: proto.Uint64(1), Index: proto.Uint64(1), Data: []byte("block 1")}}
	// The transport is best effort, as raft expects: a message sent while
	// a connection is still being set up may be dropped, and raft sends
	// again. So does this test, until every message has arrived.
	deadline := time.Now().Add(20 * time.Second)
	for a.in.count() < 2 || b.in.count() < 2 || c.in.count() < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("messages did not arrive: a %d, b %d, c %d", a.in.count(), b.in.count(), c.in.count())
		}
		if b.in.count() < 2 || c.in.count() < 1 {
			a.t.Send([]*raftpb.Message{raftMsg(raftpb.MsgVote, 1, 2), raftMsg(raftpb.MsgVote, 1, 3), app})
		}
		if a.in.count() < 2 {
			b.t.Send([]*raftpb.Message{raftMsg(raftpb.MsgVoteResp, 2, 1)})
			c.t.Send([]*raftpb.Message{raftMsg(raftpb.MsgVoteResp, 3, 1)})
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, m := range b.in.snapshot() {
		if m.GetFrom() != 1 || m.GetTo() != 2 {
			t.Errorf("b got %v from %d to %d", m.GetType(), m.GetFrom(), m.GetTo())
		}
		if m.GetType() == raftpb.MsgApp && string(m.GetEntries()[0].GetData()) != "block 1" {
			t.Errorf("append carried %q", m.GetEntries()[0].GetData())
		}
	}
}

func TestRaftDropsMisaddressedMessages(t *testing.T) {
	nodes := raftCluster(t, 3)
	b, c := nodes[1], nodes[2]
	// c speaks to b by hand, as a faulty or malicious member would.
	s := rawStream(t, c.testHost, b.ID(), RaftProtocol)
	send := func(m *raftpb.Message) {
		t.Helper()
		data, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := WriteFrame(s, data, MaxRaftFrame); err != nil {
			t.Fatal(err)
		}
	}
	send(raftMsg(raftpb.MsgHeartbeat, 1, 2)) // c claims to be raft node 1
	send(raftMsg(raftpb.MsgHeartbeat, 3, 1)) // addressed to someone else
	good := raftMsg(raftpb.MsgHeartbeat, 3, 2)
	good.Commit = proto.Uint64(42)
	send(good)
	waitFor(t, "the well-addressed message", func() bool { return b.in.count() >= 1 })
	time.Sleep(50 * time.Millisecond) // nothing else may trickle in after it
	got := b.in.snapshot()
	if len(got) != 1 || got[0].GetFrom() != 3 || got[0].GetCommit() != 42 {
		t.Fatalf("b delivered %d messages, want only the one from 3: %v", len(got), got)
	}
	if !b.logs.hasLine("wrong addressing", c.ID().String(), "from=1") {
		t.Error("forged From not logged")
	}
	if !b.logs.hasLine("wrong addressing", "to=1") {
		t.Error("wrong To not logged")
	}
}

func TestRaftRefusesLocalMessageTypes(t *testing.T) {
	nodes := raftCluster(t, 2)
	a, b := nodes[0], nodes[1]
	s := rawStream(t, a.testHost, b.ID(), RaftProtocol)
	data, _ := proto.Marshal(raftMsg(raftpb.MsgHup, 1, 2))
	if err := WriteFrame(s, data, MaxRaftFrame); err != nil {
		t.Fatal(err)
	}
	expectReset(t, s)
	if b.in.count() != 0 {
		t.Fatal("a local-only message type was delivered")
	}
}

// TestRaftHeartbeatsNotBehindLargeAppend sends a 20 MiB append and, while
// it is in flight, a heartbeat every 5 ms: heartbeats must keep arriving
// promptly, before the append, because they travel on their own stream.
func TestRaftHeartbeatsNotBehindLargeAppend(t *testing.T) {
	nodes := raftCluster(t, 2)
	a, b := nodes[0], nodes[1]
	// Warm up: connection and both lanes open.
	a.t.Send([]*raftpb.Message{raftMsg(raftpb.MsgHeartbeat, 1, 2), raftMsg(raftpb.MsgApp, 1, 2)})
	waitFor(t, "warm-up", func() bool { return b.in.count() == 2 })

	app := raftMsg(raftpb.MsgApp, 1, 2)
	app.Entries = []*raftpb.Entry{{Term: proto.Uint64(1), Index: proto.Uint64(1), Data: make([]byte, 20<<20)}}
	start := time.Now()
	a.t.Send([]*raftpb.Message{app})
	sentAt := map[uint64]time.Time{}
	appArrived := func() (time.Time, bool) {
		b.in.mu.Lock()
		defer b.in.mu.Unlock()
		for i, m := range b.in.msgs[2:] {
			if m.GetType() == raftpb.MsgApp {
				return b.in.at[2+i], true
			}
		}
		return time.Time{}, false
	}
	deadline := time.Now().Add(30 * time.Second)
	for seq := uint64(1); ; seq++ {
		if _, ok := appArrived(); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("append never arrived")
		}
		hb := raftMsg(raftpb.MsgHeartbeat, 1, 2)
		hb.Commit = proto.Uint64(seq)
		sentAt[seq] = time.Now()
		a.t.Send([]*raftpb.Message{hb})
		time.Sleep(5 * time.Millisecond)
	}
	appAt, _ := appArrived()
	waitFor(t, "last heartbeat", func() bool { return b.in.count() == 2+1+len(sentAt) })

	var before int
	var lat []time.Duration
	b.in.mu.Lock()
	for i, m := range b.in.msgs[2:] {
		if m.GetType() != raftpb.MsgHeartbeat {
			continue
		}
		at := b.in.at[2+i]
		lat = append(lat, at.Sub(sentAt[m.GetCommit()]))
		if at.Before(appAt) {
			before++
		}
	}
	b.in.mu.Unlock()
	slices.Sort(lat)
	p50, max := lat[len(lat)/2], lat[len(lat)-1]
	t.Logf("20 MiB append took %v; %d heartbeats, %d delivered before it; heartbeat latency p50 %v max %v",
		appAt.Sub(start), len(lat), before, p50, max)
	if before == 0 {
		t.Fatal("no heartbeat was delivered while the append was in flight")
	}
	// Queued behind the append on one stream, the median is hundreds of
	// milliseconds; on their own lane, about one.
	if p50 > 100*time.Millisecond {
		t.Fatalf("median heartbeat latency %v during a large append", p50)
	}
}

func TestRaftUnreachableAndSnapshotStatus(t *testing.T) {
	nodes := raftCluster(t, 2)
	a, b := nodes[0], nodes[1]
	var mu sync.Mutex
	var unreachable []uint64
	snaps := map[bool]int{}
	a.t.Unreachable = func(id uint64) {
		mu.Lock()
		unreachable = append(unreachable, id)
		mu.Unlock()
	}
	a.t.SnapshotStatus = func(id uint64, failed bool) {
		mu.Lock()
		snaps[failed]++
		mu.Unlock()
	}
	snap := raftMsg(raftpb.MsgSnap, 1, 2)
	snap.Snapshot = &raftpb.Snapshot{Data: []byte("height 7"), Metadata: &raftpb.SnapshotMetadata{Index: proto.Uint64(7), Term: proto.Uint64(1)}}
	a.t.Send([]*raftpb.Message{snap})
	waitFor(t, "snapshot delivered", func() bool { return b.in.count() == 1 })
	waitFor(t, "snapshot reported sent", func() bool { mu.Lock(); defer mu.Unlock(); return snaps[false] == 1 })

	// An unknown peer, then a peer that is gone.
	a.t.Send([]*raftpb.Message{raftMsg(raftpb.MsgHeartbeat, 1, 9)})
	b.Close()
	waitFor(t, "b gone", func() bool { return !a.Connected(b.ID()) })
	a.t.Send([]*raftpb.Message{raftMsg(raftpb.MsgHeartbeat, 1, 2), snap})
	waitFor(t, "failures reported", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(unreachable, 9) && slices.Contains(unreachable, 2) && snaps[true] == 1
	})
}

func TestRaftLaneReopensAfterPeerRestartsTransport(t *testing.T) {
	nodes := raftCluster(t, 2)
	a, b := nodes[0], nodes[1]
	a.t.Send([]*raftpb.Message{raftMsg(raftpb.MsgHeartbeat, 1, 2)})
	waitFor(t, "first heartbeat", func() bool { return b.in.count() == 1 })
	// b's transport restarts: a's long-lived stream is reset under it.
	b.t.Close()
	in := &inbox{}
	tr, err := NewRaftTransport(b.Host, 2, map[uint64]peer.ID{1: a.ID(), 2: b.ID()}, in.deliver, b.logger)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	waitFor(t, "heartbeat on a fresh stream", func() bool {
		a.t.Send([]*raftpb.Message{raftMsg(raftpb.MsgHeartbeat, 1, 2)})
		time.Sleep(20 * time.Millisecond)
		return in.count() > 0
	})
}

func TestRaftSetPeers(t *testing.T) {
	nodes := raftCluster(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	if err := a.t.SetPeers(map[uint64]peer.ID{2: b.ID(), 3: b.ID()}); err == nil {
		t.Fatal("one peer ID for two raft IDs accepted")
	}
	if err := a.t.SetPeers(map[uint64]peer.ID{2: a.ID()}); err == nil {
		t.Fatal("another raft ID for this host accepted")
	}
	// c leaves a's membership: a no longer sends to it or accepts from it.
	if err := a.t.SetPeers(map[uint64]peer.ID{1: a.ID(), 2: b.ID()}); err != nil {
		t.Fatal(err)
	}
	c.t.Send([]*raftpb.Message{raftMsg(raftpb.MsgHeartbeat, 3, 1)})
	b.t.Send([]*raftpb.Message{raftMsg(raftpb.MsgHeartbeat, 2, 1)})
	waitFor(t, "b's heartbeat", func() bool { return a.in.count() == 1 })
	waitFor(t, "c's stream refused", func() bool { return a.logs.hasLine("not a raft member", c.ID().String()) })
	if got := a.in.snapshot(); len(got) != 1 || got[0].GetFrom() != 2 {
		t.Fatalf("a delivered %v", got)
	}
}
