package evidence

import (
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/mod/sumdb/tlog"
)

// ExtensionVersion is the only Extension version this code writes or reads.
const ExtensionVersion = 1

// Limits of an Extension.
const (
	// MaxExtensionCheckpointSize bounds the newer checkpoint's signed note:
	// a body and one signature line per member and witness.
	MaxExtensionCheckpointSize = 32 << 10
	// MaxConsistencyHashes bounds the consistency proof: a tree of 2^63
	// leaves needs fewer than 2·63 hashes.
	MaxConsistencyHashes = 126
	// MaxExtensionTimestamps bounds the tokens over the newer checkpoint.
	MaxExtensionTimestamps = 8
)

// Extension upgrades a final receipt to a newer final checkpoint: the
// signed note of that checkpoint, an RFC 6962 consistency proof (as
// golang.org/x/mod/sumdb/tlog.CheckTree takes it) from the tree of the
// receipt's own proof to the newer one, and RFC 3161 tokens over SHA-256
// of the newer checkpoint's body. It travels base64-encoded on a receipt's
// `extension` line; evidence/verify checks its meaning.
//
// Canonical encoding (golang.org/x/crypto/cryptobyte):
//
//	u8  version = 1
//	u16-length-prefixed signed note of the newer checkpoint
//	u8  count, then count 32-byte consistency proof hashes
//	u8  count, then count u16-length-prefixed DER tokens
type Extension struct {
	Checkpoint  []byte      // signed note, verbatim
	Consistency []tlog.Hash // from the receipt proof's tree to Checkpoint's
	Timestamps  [][]byte    // tokens over SHA-256 of Checkpoint's body; may be empty
}

func (e *Extension) validate() error {
	if n := len(e.Checkpoint); n == 0 || n > MaxExtensionCheckpointSize {
		return fmt.Errorf("%w: extension checkpoint is %d bytes, want 1 to %d", ErrMalformed, n, MaxExtensionCheckpointSize)
	}
	if n := len(e.Consistency); n > MaxConsistencyHashes {
		return fmt.Errorf("%w: extension has %d consistency hashes, limit %d", ErrTooLarge, n, MaxConsistencyHashes)
	}
	if n := len(e.Timestamps); n > MaxExtensionTimestamps {
		return fmt.Errorf("%w: extension has %d timestamp tokens, limit %d", ErrTooLarge, n, MaxExtensionTimestamps)
	}
	for i, t := range e.Timestamps {
		if len(t) == 0 || len(t) > MaxTokenSize {
			return fmt.Errorf("%w: extension token %d is %d bytes, want 1 to %d", ErrMalformed, i+1, len(t), MaxTokenSize)
		}
	}
	return nil
}

// Marshal returns the canonical encoding.
func (e *Extension) Marshal() ([]byte, error) {
	if err := e.validate(); err != nil {
		return nil, err
	}
	b := cryptobyte.NewBuilder(nil)
	b.AddUint8(ExtensionVersion)
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(e.Checkpoint) })
	b.AddUint8(uint8(len(e.Consistency)))
	for _, h := range e.Consistency {
		b.AddBytes(h[:])
	}
	b.AddUint8(uint8(len(e.Timestamps)))
	for _, t := range e.Timestamps {
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(t) })
	}
	return build(b, "extension")
}

// ParseExtension strictly decodes a canonical Extension. It checks form
// only: nothing in it is verified here.
func ParseExtension(data []byte) (*Extension, error) {
	s := cryptobyte.String(data)
	var (
		version, nHashes, nTokens uint8
		note                      cryptobyte.String
		e                         Extension
	)
	if !s.ReadUint8(&version) {
		return nil, fmt.Errorf("%w: extension version", ErrMalformed)
	}
	if version != ExtensionVersion {
		return nil, fmt.Errorf("%w: extension version %d", ErrUnsupported, version)
	}
	if !s.ReadUint16LengthPrefixed(&note) {
		return nil, fmt.Errorf("%w: extension checkpoint", ErrMalformed)
	}
	e.Checkpoint = append([]byte(nil), note...)
	if !s.ReadUint8(&nHashes) {
		return nil, fmt.Errorf("%w: extension consistency proof", ErrMalformed)
	}
	if nHashes > MaxConsistencyHashes {
		return nil, fmt.Errorf("%w: extension has %d consistency hashes, limit %d", ErrTooLarge, nHashes, MaxConsistencyHashes)
	}
	for range nHashes {
		var h tlog.Hash
		if !s.CopyBytes(h[:]) {
			return nil, fmt.Errorf("%w: extension consistency hash", ErrMalformed)
		}
		e.Consistency = append(e.Consistency, h)
	}
	if !s.ReadUint8(&nTokens) {
		return nil, fmt.Errorf("%w: extension timestamp count", ErrMalformed)
	}
	if nTokens > MaxExtensionTimestamps {
		return nil, fmt.Errorf("%w: extension has %d timestamp tokens, limit %d", ErrTooLarge, nTokens, MaxExtensionTimestamps)
	}
	for range nTokens {
		var t cryptobyte.String
		if !s.ReadUint16LengthPrefixed(&t) {
			return nil, fmt.Errorf("%w: extension timestamp token", ErrMalformed)
		}
		e.Timestamps = append(e.Timestamps, append([]byte(nil), t...))
	}
	if !s.Empty() {
		return nil, fmt.Errorf("%w: %d bytes after the extension", ErrMalformed, len(s))
	}
	if err := e.validate(); err != nil {
		return nil, err
	}
	return &e, nil
}
