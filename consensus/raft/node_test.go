package raft

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cunzheng/cunzheng/consensus"
)

func TestProposalsFromAnyReplica(t *testing.T) {
	for _, size := range []int{3, 5} {
		t.Run(fmt.Sprintf("%d replicas", size), func(t *testing.T) {
			t.Parallel()
			c := newCluster(t, ids(size), nil, nil)
			c.waitLeader(ids(size)...)
			var acked []string
			for round := range 4 {
				for _, id := range ids(size) {
					d := fmt.Sprintf("r%d-from-%d", round, id)
					c.propose(id, d)
					acked = append(acked, d)
					// Acknowledged means applied here already.
					if !slices.Contains(c.fsm(id).data(), d) {
						t.Fatalf("%q acknowledged by %d before it applied it", d, id)
					}
				}
			}
			c.waitConverged(acked, ids(size)...)
			for _, id := range ids(size) {
				for _, e := range c.fsm(id).entries() {
					if want := strings.HasSuffix(e.Data, fmt.Sprintf("-from-%d", id)); e.Here != want {
						t.Errorf("replica %d: entry %q ProposedHere = %v", id, e.Data, e.Here)
					}
				}
				if st := c.node(id).Status(); len(st.Voters) != size || st.Applied < st.Commit-1 {
					t.Errorf("replica %d status %+v", id, st)
				}
			}
		})
	}
}

func TestLeaderStopped(t *testing.T) {
	t.Parallel()
	c := newCluster(t, ids(5), nil, nil)
	lead := c.waitLeader(ids(5)...)
	var acked []string
	for i := range 10 {
		d := fmt.Sprintf("before-%d", i)
		c.propose(lead, d)
		acked = append(acked, d)
	}
	before := c.node(lead).Status()
	term := before.Term
	c.stop(lead)
	rest := slices.DeleteFunc(ids(5), func(id uint64) bool { return id == lead })
	newLead := c.waitLeader(rest...)
	if newLead == lead {
		t.Fatal("stopped leader still leads")
	}
	if st := c.node(newLead).Status(); st.Term <= term {
		t.Fatalf("new leader's term %d not after %d", st.Term, term)
	}
	// The new leader's term starts after everything the old one had
	// appended; it is committed once the new leader has its quorum.
	if st := c.node(newLead).Status(); st.LeaderSince <= before.Commit {
		t.Fatalf("new leader's term starts at index %d, not after the old leader's commit %d", st.LeaderSince, before.Commit)
	}
	waitFor(t, 5*time.Second, "the new leader's first entry to commit", func() bool {
		st := c.node(newLead).Status()
		return st.Commit >= st.LeaderSince
	})
	for i := range 10 {
		d := fmt.Sprintf("after-%d", i)
		c.propose(rest[i%len(rest)], d)
		acked = append(acked, d)
	}
	c.waitConverged(acked, rest...)
	// The old leader comes back from its directory and catches up.
	c.start(lead, false)
	c.waitConverged(acked, ids(5)...)
}

func TestPartitionLeaderWithMinority(t *testing.T) {
	t.Parallel()
	c := newCluster(t, ids(5), nil, nil)
	lead := c.waitLeader(ids(5)...)
	var acked []string
	for i := range 5 {
		d := fmt.Sprintf("before-%d", i)
		c.propose(uint64(i%5+1), d)
		acked = append(acked, d)
	}
	other := lead%5 + 1
	minority := []uint64{lead, other}
	var majority []uint64
	for _, id := range ids(5) {
		if !slices.Contains(minority, id) {
			majority = append(majority, id)
		}
	}
	c.net.partition(minority...)

	// The majority elects a leader of its own and goes on.
	c.waitLeader(majority...)
	for i := range 10 {
		d := fmt.Sprintf("majority-%d", i)
		c.propose(majority[i%len(majority)], d)
		acked = append(acked, d)
	}
	// The minority acknowledges nothing, whether asked at the old leader
	// or at its follower.
	var refused []string
	for i, id := range []uint64{lead, other, lead} {
		d := fmt.Sprintf("minority-%d", i)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		err := c.node(id).Propose(ctx, []byte(d))
		cancel()
		if err == nil {
			t.Fatalf("minority replica %d acknowledged %q", id, d)
		}
		refused = append(refused, d)
	}
	// CheckQuorum: the old leader steps down on its own.
	waitFor(t, 5*time.Second, "the minority leader to step down", func() bool { return !c.node(lead).Status().IsLeader })
	for _, id := range ids(5) {
		for _, d := range refused {
			if slices.Contains(c.fsm(id).data(), d) {
				t.Errorf("replica %d applied %q, proposed in the minority, before the partition healed", id, d)
			}
		}
	}

	// After healing, a refused proposal may still commit: an error is not
	// a promise that it never will.
	c.net.heal()
	c.waitConverged(acked, ids(5)...)
	// And the healed network takes proposals everywhere.
	for _, id := range ids(5) {
		d := fmt.Sprintf("healed-%d", id)
		c.propose(id, d)
		acked = append(acked, d)
	}
	c.waitConverged(acked, ids(5)...)
}

func TestRestartFromDir(t *testing.T) {
	t.Parallel()
	c := newCluster(t, ids(3), nil, nil)
	c.waitLeader(ids(3)...)
	var acked []string
	for i := range 10 {
		d := fmt.Sprintf("first-%d", i)
		c.propose(uint64(i%3+1), d)
		acked = append(acked, d)
	}
	c.waitConverged(acked, ids(3)...)
	before := map[uint64]Status{}
	for _, id := range ids(3) {
		before[id] = c.node(id).Status()
		c.stop(id)
	}
	for _, id := range ids(3) {
		n := c.start(id, false)
		st := n.Status()
		if st.Term < before[id].Term || st.Commit < before[id].Commit || st.Applied < before[id].Applied {
			t.Fatalf("replica %d restarted at term %d commit %d applied %d, had %d %d %d",
				id, st.Term, st.Commit, st.Applied, before[id].Term, before[id].Commit, before[id].Applied)
		}
		if !slices.Equal(st.Voters, []uint64{1, 2, 3}) {
			t.Fatalf("replica %d restarted with voters %v", id, st.Voters)
		}
	}
	c.waitLeader(ids(3)...)
	for i := range 10 {
		d := fmt.Sprintf("second-%d", i)
		c.propose(uint64(i%3+1), d)
		acked = append(acked, d)
	}
	c.waitConverged(acked, ids(3)...)
}

func TestSnapshotCompactionAndLaggingFollower(t *testing.T) {
	t.Parallel()
	c := newCluster(t, ids(3), nil, func(cfg *Config) {
		cfg.SnapshotEntries = 20
		cfg.CompactKeep = 5
	})
	lead := c.waitLeader(ids(3)...)
	lagging := lead%3 + 1
	c.stop(lagging)
	var acked []string
	for i := range 100 {
		d := fmt.Sprintf("e%03d", i)
		c.propose(lead, d)
		acked = append(acked, d)
	}
	st := c.node(lead).Status()
	if st.SnapshotIndex < 80 || st.FirstIndex < 60 || st.Applied-st.FirstIndex > 20+5 {
		t.Fatalf("log not bounded: first index %d, snapshot %d, applied %d", st.FirstIndex, st.SnapshotIndex, st.Applied)
	}
	c.start(lagging, false)
	c.waitConverged(acked, ids(3)...)
	if c.fsm(lagging).restoreCount() == 0 {
		t.Fatal("the lagging follower caught up without a snapshot")
	}
	if st := c.node(lagging).Status(); st.FirstIndex <= 1 {
		t.Fatalf("lagging follower's log starts at %d after a snapshot", st.FirstIndex)
	}
	// It goes on replicating normally afterwards.
	c.propose(lagging, "after-restore")
	c.waitConverged(append(acked, "after-restore"), ids(3)...)
}

func TestSnapshotInstallInterrupted(t *testing.T) {
	t.Parallel()
	c := newCluster(t, ids(3), nil, func(cfg *Config) {
		cfg.SnapshotEntries = 10
		cfg.CompactKeep = 2
	})
	lead := c.waitLeader(ids(3)...)
	lagging := lead%3 + 1
	c.stop(lagging)
	var acked []string
	for i := range 40 {
		d := fmt.Sprintf("e%03d", i)
		c.propose(lead, d)
		acked = append(acked, d)
	}
	// The lagging replica saves the snapshot, starts restoring, and stops
	// before the restore finishes.
	gate := make(chan struct{})
	c.fsm(lagging).restoreGate = gate
	n := c.start(lagging, false)
	waitFor(t, 10*time.Second, "the snapshot to be saved", func() bool { return snapSaved(n) })
	c.stop(lagging)
	if c.fsm(lagging).restoreCount() != 0 {
		t.Fatal("restore finished despite the gate")
	}
	close(gate)
	c.start(lagging, false)
	c.waitConverged(acked, ids(3)...)
	if c.fsm(lagging).restoreCount() == 0 {
		t.Fatal("restarted replica never restored the snapshot")
	}
}

// snapSaved reports whether a replica holds a received snapshot it has not
// finished restoring.
func snapSaved(n *Node) bool {
	snap, _ := n.storage.Snapshot()
	return snap.GetMetadata().GetIndex() > 1 && n.storage.Applied() < snap.GetMetadata().GetIndex()
}

func TestLearnerDoesNotVote(t *testing.T) {
	t.Parallel()
	c := newCluster(t, []uint64{1, 2}, []uint64{3}, nil)
	lead := c.waitLeader(1, 2)
	var acked []string
	for i := range 5 {
		d := fmt.Sprintf("e%d", i)
		c.propose(uint64(i%3+1), d) // the learner proposes too
		acked = append(acked, d)
	}
	c.waitConverged(acked, 1, 2, 3)
	st := c.node(3).Status()
	if !slices.Equal(st.Learners, []uint64{3}) || !slices.Equal(st.Voters, []uint64{1, 2}) {
		t.Fatalf("learner sees voters %v learners %v", st.Voters, st.Learners)
	}
	// Stopping the voter that is not the leader leaves one voter and the
	// learner: no quorum, no commit.
	follower := 3 - lead
	commit := c.node(lead).Status().Commit
	c.stop(follower)
	for _, id := range []uint64{lead, 3} {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		err := c.node(id).Propose(ctx, []byte(fmt.Sprintf("no-quorum-%d", id)))
		cancel()
		if err == nil {
			t.Fatalf("replica %d committed with one voter of two down", id)
		}
	}
	waitFor(t, 5*time.Second, "the leader to step down without quorum", func() bool { return !c.node(lead).Status().IsLeader })
	// The learner never campaigns.
	if c.node(3).Status().IsLeader {
		t.Fatal("learner became leader")
	}
	if got := c.node(lead).Status().Commit; got != commit {
		t.Fatalf("commit moved from %d to %d without quorum", commit, got)
	}
	c.start(follower, false)
	c.waitLeader(1, 2)
	c.propose(3, "quorum-back")
	c.waitConverged(append(acked, "quorum-back"), 1, 2, 3)
}

func TestCheckerRejectionBlocksCommit(t *testing.T) {
	t.Parallel()
	c := newCluster(t, ids(3), nil, nil)
	lead := c.waitLeader(ids(3)...)
	c.propose(lead, "good-1")
	var followers []uint64
	for _, id := range ids(3) {
		if id != lead {
			followers = append(followers, id)
		}
	}
	bad := "bad"

	// One follower refusing is outvoted: the entry commits on a quorum.
	c.fsm(followers[0]).rejectPrefix.Store(&bad)
	c.propose(lead, "bad-but-outvoted")
	waitFor(t, 5*time.Second, "the rejection to be counted", func() bool { return c.node(followers[0]).Status().ChecksRejected > 0 })
	waitFor(t, 5*time.Second, "the accepting follower to apply the entry", func() bool {
		return slices.Contains(c.fsm(followers[1]).data(), "bad-but-outvoted")
	})

	// Both followers refusing: the leader cannot reach a quorum.
	c.fsm(followers[1]).rejectPrefix.Store(&bad)
	commit := c.node(lead).Status().Commit
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	err := c.node(lead).Propose(ctx, []byte("bad-2"))
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("proposal both followers refuse: err = %v, want deadline exceeded", err)
	}
	for _, id := range ids(3) {
		st := c.node(id).Status()
		if st.Commit != commit && id == lead {
			t.Fatalf("leader's commit moved from %d to %d", commit, st.Commit)
		}
		if slices.Contains(c.fsm(id).data(), "bad-2") {
			t.Fatalf("replica %d applied a refused entry", id)
		}
		if st.Err != nil {
			t.Fatalf("replica %d stopped: %v", id, st.Err)
		}
	}
	for _, id := range followers {
		if c.node(id).Status().ChecksRejected < 2 {
			t.Fatalf("follower %d counted %d rejections", id, c.node(id).Status().ChecksRejected)
		}
	}
	if !c.node(lead).Status().IsLeader {
		t.Fatal("leader lost leadership over a refused entry (heartbeats still flow)")
	}

	// The replicas kept running: once the check passes, the entry commits
	// and the log moves on.
	c.fsm(followers[0]).rejectPrefix.Store(nil)
	c.fsm(followers[1]).rejectPrefix.Store(nil)
	c.propose(lead, "good-2")
	c.waitConverged([]string{"good-1", "bad-but-outvoted", "bad-2", "good-2"}, ids(3)...)
}

// TestRefusingFollowerTakesCommittedEntries: a follower that refused an
// entry its peers accepted is not stranded once the entry is committed: the
// leader's later appends mark it committed, the follower takes it unchecked
// (its FSM decides at apply, like every replica), and the log moves on.
func TestRefusingFollowerTakesCommittedEntries(t *testing.T) {
	t.Parallel()
	c := newCluster(t, ids(3), nil, nil)
	lead := c.waitLeader(ids(3)...)
	var follower uint64
	for _, id := range ids(3) {
		if id != lead {
			follower = id
			break
		}
	}
	refused := "outvoted"
	c.fsm(follower).rejectPrefix.Store(&refused)
	c.propose(lead, "outvoted-1")
	waitFor(t, 5*time.Second, "the rejection to be counted", func() bool { return c.node(follower).Status().ChecksRejected > 0 })
	c.propose(lead, "after")
	// The follower still refuses the entry's bytes, yet holds and applies
	// it: committed entries are not re-judged.
	c.waitConverged([]string{"outvoted-1", "after"}, ids(3)...)
}

// TestForwardedProposalChecked: the leader checks a proposal a follower
// forwards, so one member cannot make it hold an entry the others refuse,
// which would stall every entry after it.
func TestForwardedProposalChecked(t *testing.T) {
	t.Parallel()
	c := newCluster(t, ids(4), nil, nil)
	lead := c.waitLeader(ids(4)...)
	from := lead%4 + 1
	bad := "bad"
	for _, id := range ids(4) {
		c.fsm(id).rejectPrefix.Store(&bad)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	err := c.node(from).Propose(ctx, []byte("bad-forwarded"))
	cancel()
	if err == nil {
		t.Fatal("a forwarded proposal every replica refuses was committed")
	}
	waitFor(t, 5*time.Second, "the leader to count the rejection", func() bool { return c.node(lead).Status().ChecksRejected > 0 })
	c.propose(lead, "good")
	c.waitConverged([]string{"good"}, ids(4)...)
}

func TestMembershipChange(t *testing.T) {
	t.Parallel()
	c := newCluster(t, ids(3), nil, func(cfg *Config) {
		cfg.SnapshotEntries = 50
		cfg.CompactKeep = 10
	})
	lead := c.waitLeader(ids(3)...)
	var acked []string
	for i := range 20 {
		d := fmt.Sprintf("e%02d", i)
		c.propose(lead, d)
		acked = append(acked, d)
	}

	// Add replica 4, first as a learner, then promote it; it joins empty
	// and is sent a snapshot naming it.
	c.start(4, true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.node(2).AddMember(ctx, Peer{ID: 4, Learner: true}); err != nil {
		t.Fatalf("add learner 4 (asked at replica 2): %v", err)
	}
	c.waitConverged(acked, 1, 2, 3, 4)
	if c.fsm(4).restoreCount() == 0 {
		t.Fatal("new member caught up without a snapshot")
	}
	if err := c.node(lead).AddMember(ctx, Peer{ID: 4}); err != nil {
		t.Fatalf("promote 4: %v", err)
	}
	waitFor(t, 5*time.Second, "replica 4 to see itself a voter", func() bool {
		return slices.Equal(c.node(4).Status().Voters, []uint64{1, 2, 3, 4})
	})
	c.propose(4, "from-4")
	acked = append(acked, "from-4")

	// Remove a follower other than 4; the rest go on even without it.
	removed := uint64(1)
	if removed == c.node(2).Leader() {
		removed = 2
	}
	if err := c.node(4).RemoveMember(ctx, removed); err != nil {
		t.Fatalf("remove %d: %v", removed, err)
	}
	waitFor(t, 5*time.Second, "the removed replica to learn it", func() bool { return c.node(removed).Status().Removed })
	if err := c.node(removed).Propose(ctx, []byte("x")); !errors.Is(err, ErrRemoved) {
		t.Fatalf("propose at removed replica: err = %v, want ErrRemoved", err)
	}
	c.stop(removed)
	rest := slices.DeleteFunc(ids(4), func(id uint64) bool { return id == removed })
	for i, id := range rest {
		d := fmt.Sprintf("after-remove-%d", i)
		c.propose(id, d)
		acked = append(acked, d)
	}
	c.waitConverged(acked, rest...)
	for _, id := range rest {
		if st := c.node(id).Status(); slices.Contains(st.Voters, removed) || len(st.Voters) != 3 {
			t.Fatalf("replica %d voters %v", id, st.Voters)
		}
	}
	// Membership survives a restart.
	c.stop(4)
	n := c.start(4, true)
	if st := n.Status(); len(st.Voters) != 3 || !slices.Contains(st.Voters, 4) || st.Removed {
		t.Fatalf("replica 4 restarted with %+v", st)
	}
}

func TestStartRejectsBadConfig(t *testing.T) {
	valid := func() Config {
		return Config{ID: 1, Dir: t.TempDir(), Peers: []Peer{{ID: 1}, {ID: 2}}, Transport: fakeTransport{}, FSM: &memFSM{}}
	}
	tests := []struct {
		name string
		edit func(*Config)
	}{
		{"zero ID", func(c *Config) { c.ID = 0 }},
		{"no dir", func(c *Config) { c.Dir = "" }},
		{"no transport", func(c *Config) { c.Transport = nil }},
		{"no FSM", func(c *Config) { c.FSM = nil }},
		{"election not above heartbeat", func(c *Config) { c.ElectionTicks, c.HeartbeatTicks = 2, 2 }},
		{"no peers", func(c *Config) { c.Peers = nil }},
		{"self not a peer", func(c *Config) { c.Peers = []Peer{{ID: 2}, {ID: 3}} }},
		{"duplicate peer", func(c *Config) { c.Peers = []Peer{{ID: 1}, {ID: 1}} }},
		{"peer ID 0", func(c *Config) { c.Peers = []Peer{{ID: 1}, {ID: 0}} }},
		{"only learners", func(c *Config) { c.Peers = []Peer{{ID: 1, Learner: true}} }},
		{"join with peers", func(c *Config) { c.Join = true }},
		{"join without snapshotter", func(c *Config) { c.Join, c.Peers, c.FSM = true, nil, plainFSM{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid()
			tt.edit(&cfg)
			n, err := Start(context.Background(), cfg)
			if err == nil {
				n.Close()
				t.Fatal("Start accepted the config")
			}
		})
	}
	t.Run("valid", func(t *testing.T) {
		n, err := Start(context.Background(), valid())
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
		if err := n.Propose(context.Background(), []byte("x")); !errors.Is(err, consensus.ErrStopped) {
			t.Fatalf("propose after close: %v", err)
		}
	})
}

type plainFSM struct{}

func (plainFSM) Apply(context.Context, consensus.Entry) error { return nil }
func (plainFSM) Applied() (uint64, error)                     { return 0, nil }
