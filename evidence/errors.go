package evidence

import "errors"

// Sentinel errors. Decoders wrap them with the field that failed.
var (
	// ErrMalformed marks bytes that are not the canonical encoding of a record.
	ErrMalformed = errors.New("evidence: malformed encoding")
	// ErrUnsupported marks a well-formed record of a version or algorithm this
	// code does not know.
	ErrUnsupported = errors.New("evidence: unsupported version or algorithm")
	// ErrBadSignature marks a signature that does not verify.
	ErrBadSignature = errors.New("evidence: bad signature")
	// ErrTooLarge marks a record over its size limit.
	ErrTooLarge = errors.New("evidence: record too large")
	// ErrReused marks a manifest update that gives a new member a raft ID,
	// name or peer ID some earlier manifest already listed.
	ErrReused = errors.New("evidence: identity used by an earlier member")
)
