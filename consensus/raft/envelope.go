package raft

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A proposal travels through the raft log wrapped in an envelope:
//
//	version (1 byte, envelopeVersion) ‖ proposal ID (16 random bytes) ‖
//	originating raft ID (8 bytes, big-endian) ‖ payload
//
// The ID lets the proposer's apply loop wake the waiting Propose; the
// origin is for logs only (a leader could forge it, so ProposedHere is
// decided by matching the ID and bytes against this replica's own pending
// proposals, never by the origin).
const (
	envelopeVersion = 1
	envelopeHeader  = 1 + 16 + 8
)

var errBadEnvelope = errors.New("raft: malformed entry envelope")

type envelope struct {
	id      [16]byte
	origin  uint64
	payload []byte
}

func encodeEnvelope(id [16]byte, origin uint64, payload []byte) []byte {
	b := make([]byte, 0, envelopeHeader+len(payload))
	b = append(b, envelopeVersion)
	b = append(b, id[:]...)
	b = binary.BigEndian.AppendUint64(b, origin)
	return append(b, payload...)
}

// decodeEnvelope parses an entry's data strictly: a known version and a
// whole header. The payload aliases b.
func decodeEnvelope(b []byte) (envelope, error) {
	if len(b) < envelopeHeader {
		return envelope{}, fmt.Errorf("%w: %d bytes, header is %d", errBadEnvelope, len(b), envelopeHeader)
	}
	if b[0] != envelopeVersion {
		return envelope{}, fmt.Errorf("%w: version %d", errBadEnvelope, b[0])
	}
	var e envelope
	copy(e.id[:], b[1:17])
	e.origin = binary.BigEndian.Uint64(b[17:25])
	if e.origin == 0 {
		return envelope{}, fmt.Errorf("%w: origin 0", errBadEnvelope)
	}
	e.payload = b[envelopeHeader:]
	return e, nil
}
