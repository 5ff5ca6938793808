// Package consensus orders opaque blocks among the institutions of a
// network. It knows nothing of evidence or Merkle trees: a block is bytes,
// and an FSM supplied by the caller applies each committed block.
//
// This file holds the seams — FSM and Orderer — and Solo, the orderer of a
// one-institution network, where a proposal is committed as soon as the one
// replica has applied it durably. The raft-over-libp2p orderer for networks
// of several institutions implements the same Orderer interface.
package consensus

import (
	"context"
	"errors"
	"sync"
)

// ErrStopped is returned by an orderer that has been closed.
var ErrStopped = errors.New("consensus: stopped")

// Entry is one committed entry of the replicated log.
type Entry struct {
	// Index is the entry's position in the replicated log: increasing,
	// with gaps where the orderer used entries of its own.
	Index uint64
	// Data is the proposal, opaque to consensus.
	Data []byte
	// ProposedHere is true when this replica proposed the entry itself
	// (it has already checked it and may skip repeating costly checks).
	ProposedHere bool
}

// FSM applies committed entries in commit order. Apply must be
// deterministic on every replica, must make the entry's effect and its
// Index durable before it returns nil, must leave no trace when it returns
// an error, and must treat an entry at or below Applied() as already done
// (orderers replay entries after a restart).
type FSM interface {
	Apply(ctx context.Context, e Entry) error
	// Applied returns the index of the last entry applied durably (0 for
	// none); an orderer restarting resumes after it.
	Applied() (uint64, error)
}

// Checker is implemented by FSMs that can check a proposal before this
// replica acknowledges it (a follower refuses to persist an entry that
// fails). Check must not depend on entries not yet applied beyond what the
// data itself carries.
type Checker interface {
	Check(data []byte) error
}

// Snapshotter is implemented by FSMs of orderers that compact their log:
// Snapshot summarises the applied state (small: it names, it does not
// contain, the data), Restore brings a replica that fell behind up to a
// snapshot, fetching what it lacks from peers.
type Snapshotter interface {
	Snapshot() ([]byte, error)
	Restore(ctx context.Context, snapshot []byte) error
}

// Orderer commits proposals in one order across the network.
type Orderer interface {
	// Propose returns once the block is committed and applied on this
	// replica, or with the error that stopped it.
	Propose(ctx context.Context, block []byte) error
	// Close stops the orderer; later proposals fail with ErrStopped.
	Close() error
}

// Solo orders blocks for a network of one institution: its single vote is
// a quorum, so committing a block is applying it.
type Solo struct {
	mu     sync.Mutex
	fsm    FSM
	closed bool
	next   uint64 // index of the next entry; 0 until the FSM is asked
}

// NewSolo returns a single-replica orderer applying blocks to fsm.
func NewSolo(fsm FSM) *Solo { return &Solo{fsm: fsm} }

// Propose applies block on the one replica.
func (s *Solo) Propose(ctx context.Context, block []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrStopped
	}
	if s.next == 0 {
		applied, err := s.fsm.Applied()
		if err != nil {
			return err
		}
		s.next = applied + 1
	}
	if err := s.fsm.Apply(ctx, Entry{Index: s.next, Data: block, ProposedHere: true}); err != nil {
		return err
	}
	s.next++
	return nil
}

// Close stops the orderer.
func (s *Solo) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
