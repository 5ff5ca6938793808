/*
Package raft orders entries among the replicas of a network with etcd raft
(go.etcd.io/raft/v3): Node implements consensus.Orderer, and Storage is
etcd raft's Storage on a Pebble database of the replica's own.

# What the caller provides

  - A raft ID per replica: non-zero and never reused, not even after the
    replica is removed (a wiped or restored replica joins with a new ID).
  - A directory (Config.Dir) that holds this replica's raft state and
    nothing else, kept together with the FSM's data: the two are one
    replica's state, and must be backed up, restored and wiped together.
  - An FSM (consensus.FSM) whose Apply is deterministic, durable before it
    returns, and a no-op for an entry at or below Applied(). Apply may be
    handed an entry again after a restart. Apply and Restore are called
    from the Ready loop only, never concurrently with each other; Check is
    called from the transport's goroutines, concurrently with Apply, and
    must look only at the data it is given. The FSM must not modify the
    Data of an Entry. Duplicates of a proposal (a caller's retry of a
    proposal that did commit) must be no-ops in the FSM: Propose cannot
    promise that a failed proposal never commits.
  - Optionally consensus.Checker: an entry that fails Check is never
    acknowledged by this replica (its append message is dropped, logged at
    Error, counted in Status.ChecksRejected); if a quorum refuses, the
    entry cannot commit.
  - Optionally consensus.Snapshotter: the log is compacted behind
    snapshots (every Config.SnapshotEntries applied entries, keeping
    Config.CompactKeep entries), and a replica too far behind, or new, is
    sent the snapshot and calls Restore before it applies anything after
    it. Snapshot must return non-empty data. Without a Snapshotter the log
    is never compacted and members cannot be added.
  - A Transport whose Send never blocks, delivers each message at most
    once to Node.Step of the replica m.To, calls Node.ReportUnreachable
    when it drops one and Node.ReportSnapshot after each MsgSnap. Messages
    carry no authentication: the transport admits only the network's
    members.

# The Ready loop

One goroutine per Node, started by Start and stopped by Close (or by the
context given to Start), does for each etcd raft Ready, in order:

 1. Storage.Save(HardState, Entries, Snapshot): one Pebble batch, synced.
 2. If a snapshot arrived: FSM.Restore, then record the snapshot applied.
    A crash between the two is finished by the next Start, which restores
    the saved snapshot before raft runs.
 3. Transport.Send(Messages): only after step 1, so no replica ever
    acknowledges, or votes on the strength of, state it has not synced.
    (etcd raft lets a leader send while it persists; this package keeps
    the one simpler rule for all.)
 4. Apply the committed entries in order: normal entries to FSM.Apply
    (unwrapped from their envelope; empty entries a new leader appends
    are skipped, which is why Entry.Index has gaps), conf changes to
    raft's ApplyConfChange with the new configuration saved (synced)
    before the next entry.
 5. Snapshot and compact when due; then Advance.

A failing FSM.Apply or Restore is retried with backoff (a full disk, peers
unreachable): a committed entry cannot be skipped. A failing storage write
stops the loop (Status.Err); the replica must be restarted.

# Guarantees

  - Propose returns nil only after the entry is committed by a quorum of
    voters and applied (durably, by the FSM) on this replica. It works on
    any member; followers forward to the leader. It fails fast with
    ErrNoLeader when no leader is known, and with ErrLeaderChanged when
    the leader changes while it waits; callers retry, with a deadline.
  - Entry.ProposedHere is true only for entries this replica proposed
    with exactly these bytes in this process; a leader cannot forge it.
  - Every replica applies the same entries in the same order.
  - After a restart (or power loss) a replica resumes from its directory:
    everything Save acknowledged is there, and the FSM is replayed from
    max(FSM.Applied(), the index of this package's last applied conf
    change or snapshot).
  - PreVote and CheckQuorum are on: a leader cut off from a quorum steps
    down within an election timeout, and a replica rejoining after a
    partition does not disrupt the leader.
  - Learners replicate and serve, but never vote or lead.

# Bootstrap and membership

The founding replicas start with the same Config.Peers (voters and
learners): each writes a snapshot at index 1 with that configuration, as
etcd raft recommends. A replica added later starts with Config.Join and no
Peers; a member calls AddMember (as a learner first is wise), whereupon
every replica takes a snapshot naming the new member, and the leader sends
it. RemoveMember removes a replica; a removed replica fails proposals with
ErrRemoved. Changes go one at a time.

# Entry envelope

Each proposal is stored as version ‖ 16-byte random proposal ID ‖
originating raft ID ‖ data (see envelope.go). The ID lets the proposer's
Ready loop wake the waiting Propose; FSMs see only the data.
*/
package raft
