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

// FSM applies committed blocks in commit order. Apply must be deterministic
// on every replica, must make the block durable before it returns nil, and
// must leave no trace when it returns an error.
type FSM interface {
	// Apply applies one committed block. proposedHere is true when this
	// replica built the block itself (it has already checked every
	// submission signature in it and need not repeat the work).
	Apply(ctx context.Context, block []byte, proposedHere bool) error
}

// Orderer commits proposed blocks in one order across the network.
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
	return s.fsm.Apply(ctx, block, true)
}

// Close stops the orderer.
func (s *Solo) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
