package audit

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/cunzheng/cunzheng/chain/checkpoint"
	"github.com/cunzheng/cunzheng/evidence"
)

// StateVersion is the only state format this code reads or writes.
const StateVersion = 1

// MaxStateBytes bounds a state file.
const MaxStateBytes = 64 << 20

// ErrState marks a state file that cannot be used.
var ErrState = errors.New("audit: bad state")

// State is what earlier rounds verified: the last checkpoint of each node and
// the largest tree seen overall. Its checkpoints were verified when stored;
// the state is the auditor's own file and is not re-verified against the
// manifest, only checked to be self-consistent.
type State struct {
	Version int             `json:"version"`
	Network string          `json:"network"` // genesis fingerprint, hex
	Nodes   map[string]Seen `json:"nodes"`   // by node URL
	Largest *Seen           `json:"largest,omitempty"`
}

// Seen is one verified checkpoint.
type Seen struct {
	Node       string    `json:"node"`
	Size       int64     `json:"size"`
	Root       string    `json:"root"`       // hex
	Checkpoint string    `json:"checkpoint"` // the signed note as served
	Time       time.Time `json:"time"`
	root       tlog.Hash
}

// NewState is the state before any round.
func NewState(pinned evidence.Fingerprint) *State {
	return &State{Version: StateVersion, Network: pinned.String(), Nodes: map[string]Seen{}}
}

// ParseState strictly parses a state file of the pinned network.
func ParseState(data []byte, pinned evidence.Fingerprint) (*State, error) {
	if len(data) > MaxStateBytes {
		return nil, fmt.Errorf("%w: %d bytes", ErrState, len(data))
	}
	var st State
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrState, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data", ErrState)
	}
	if st.Version != StateVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrState, st.Version, StateVersion)
	}
	if st.Network != pinned.String() {
		return nil, fmt.Errorf("%w: state is for network %s, not the pinned %s", ErrState, st.Network, pinned)
	}
	if st.Nodes == nil {
		st.Nodes = map[string]Seen{}
	}
	for url, s := range st.Nodes {
		if err := s.check(); err != nil {
			return nil, fmt.Errorf("%w: node %s: %v", ErrState, url, err)
		}
		if s.Node != url {
			return nil, fmt.Errorf("%w: entry for %s names %s", ErrState, url, s.Node)
		}
		st.Nodes[url] = s
	}
	if st.Largest != nil {
		if err := st.Largest.check(); err != nil {
			return nil, fmt.Errorf("%w: largest: %v", ErrState, err)
		}
	}
	return &st, nil
}

// Marshal renders the state file.
func (st *State) Marshal() ([]byte, error) {
	out, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// check verifies that size and root are those of the stored note's body and
// fills in the parsed root.
func (s *Seen) check() error {
	body, _, ok := bytes.Cut([]byte(s.Checkpoint), []byte("\n\n"))
	if !ok {
		return errors.New("checkpoint is not a signed note")
	}
	c, err := checkpoint.ParseBody(string(body) + "\n")
	if err != nil {
		return err
	}
	if c.Size != s.Size || hex.EncodeToString(c.Root[:]) != s.Root {
		return fmt.Errorf("size %d root %s do not match the stored checkpoint", s.Size, s.Root)
	}
	s.root = c.Root
	return nil
}

func (s Seen) observed() observed {
	return observed{node: s.Node, size: s.Size, root: s.root, signed: []byte(s.Checkpoint), when: s.Time, stored: true}
}

func (o observed) seen() Seen {
	return Seen{Node: o.node, Size: o.size, Root: hex.EncodeToString(o.root[:]), Checkpoint: string(o.signed), Time: o.when, root: o.root}
}

// observed lists the stored checkpoints: each node's, and the largest.
func (st *State) observed() []observed {
	urls := make([]string, 0, len(st.Nodes))
	for u := range st.Nodes {
		urls = append(urls, u)
	}
	sort.Strings(urls)
	var out []observed
	for _, u := range urls {
		out = append(out, st.Nodes[u].observed())
	}
	if st.Largest != nil {
		out = append(out, st.Largest.observed())
	}
	return out
}

func (st *State) clone() *State {
	c := &State{Version: st.Version, Network: st.Network, Nodes: make(map[string]Seen, len(st.Nodes)), Largest: st.Largest}
	for k, v := range st.Nodes {
		c.Nodes[k] = v
	}
	return c
}
