package witness

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"golang.org/x/mod/sumdb/tlog"
)

// Tree is what a witness records for one log: the latest tree it cosigned.
type Tree struct {
	Size int64
	Root tlog.Hash
}

// State stores the latest cosigned tree per log origin. Implementations
// are safe for concurrent use.
//
// Invariant: Swap is the only way a stored tree changes, and it is a
// compare-and-swap — check the stored tree and write the new one
// atomically — so two concurrent requests can never roll a log back (the
// race in the tlog-witness spec). Swap returns only once the new tree is
// durable: the witness answers with a cosignature after that, never
// before.
type State interface {
	// Latest returns the latest tree cosigned for origin, or the zero
	// Tree if none was.
	Latest(origin string) (Tree, error)
	// Swap records next for origin if the stored tree is still old, and
	// returns a *ConflictError carrying the stored tree otherwise.
	Swap(origin string, old, next Tree) error
}

// ConflictError says the witness's latest tree for a log is not the one a
// request assumed.
type ConflictError struct {
	Latest Tree
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("witness: latest cosigned tree has size %d", e.Latest.Size)
}

// PebbleState is a State in its own Pebble database.
type PebbleState struct {
	db     *pebble.DB
	mu     sync.Mutex // makes Latest+write in Swap one step
	closed bool
}

var _ State = (*PebbleState)(nil)

// OpenPebbleState opens (creating if needed) the witness state in dir.
// The directory belongs to the witness alone: losing it means the witness
// would accept a fork of a log it has cosigned, so a witness whose state
// is lost must get a new key, never restart on an empty state.
func OpenPebbleState(dir string) (*PebbleState, error) {
	db, err := pebble.Open(dir, &pebble.Options{FormatMajorVersion: pebble.FormatNewest, Logger: quietLogger{}})
	if err != nil {
		return nil, fmt.Errorf("witness: open state %s: %w", dir, err)
	}
	return &PebbleState{db: db}, nil
}

// Close closes the database; closing again does nothing.
func (s *PebbleState) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.db.Close()
}

// stateKey is the one key schema of the witness state: a prefix and the
// origin; the value is the 8-byte big-endian size and the 32-byte root.
func stateKey(origin string) []byte { return append([]byte("witness/v1/log/"), origin...) }

// Latest implements State.
func (s *PebbleState) Latest(origin string) (Tree, error) {
	v, closer, err := s.db.Get(stateKey(origin))
	if errors.Is(err, pebble.ErrNotFound) {
		return Tree{}, nil
	}
	if err != nil {
		return Tree{}, fmt.Errorf("witness: read state of %s: %w", origin, err)
	}
	defer closer.Close()
	if len(v) != 8+tlog.HashSize {
		return Tree{}, fmt.Errorf("witness: state of %s is corrupt (%d bytes)", origin, len(v))
	}
	var t Tree
	t.Size = int64(binary.BigEndian.Uint64(v))
	copy(t.Root[:], v[8:])
	return t, nil
}

// Swap implements State. The write is synced (pebble.Sync) before Swap
// returns; a crash before the sync leaves the old tree, and the request
// that was not answered is simply made again.
func (s *PebbleState) Swap(origin string, old, next Tree) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.Latest(origin)
	if err != nil {
		return err
	}
	if cur != old {
		return &ConflictError{Latest: cur}
	}
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+tlog.HashSize), uint64(next.Size))
	v = append(v, next.Root[:]...)
	if err := s.db.Set(stateKey(origin), v, pebble.Sync); err != nil {
		return fmt.Errorf("witness: record %s size %d: %w", origin, next.Size, err)
	}
	return nil
}

// quietLogger drops Pebble's informational logs; errors reach callers.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("witness state: "+format, args...))
}
