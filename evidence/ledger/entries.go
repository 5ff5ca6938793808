package ledger

import (
	"fmt"
)

// Kinds of replicated-log entries. Each entry is one kind byte followed by
// its payload.
const (
	// entryBlock carries a chain.Block.
	entryBlock byte = 1
	// entryFinal carries a signed checkpoint note that meets the policy.
	entryFinal byte = 2
	// entryTimestamp carries a time service's RFC 3161 token over a final
	// checkpoint body (timestampPayload).
	entryTimestamp byte = 3
)

func wrapEntry(kind byte, payload []byte) []byte {
	out := make([]byte, 1+len(payload))
	out[0] = kind
	copy(out[1:], payload)
	return out
}

func unwrapEntry(data []byte) (byte, []byte, error) {
	if len(data) < 2 {
		return 0, nil, fmt.Errorf("%w: empty log entry", ErrInvalid)
	}
	switch data[0] {
	case entryBlock, entryFinal, entryTimestamp:
		return data[0], data[1:], nil
	}
	return 0, nil, fmt.Errorf("%w: log entry of unknown kind %d", ErrInvalid, data[0])
}
