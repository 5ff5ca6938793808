package evidence

import (
	"fmt"
	"time"

	"golang.org/x/crypto/cryptobyte"
)

// LeafVersion is the only leaf version this code writes or reads.
const LeafVersion = 1

// EntryType says what a leaf records.
type EntryType uint8

// Entry types. The numbers are part of the permanent encoding.
const (
	EntryEvidence   EntryType = 1
	EntryGovernance EntryType = 2
)

// Leaf is one public log entry. It names neither the submitter, nor the
// case, nor any metadata: anyone may mirror the tiles, and who preserved what
// is revealed only to holders of the receipt or of the Submission.
//
// Encoding (all integers big-endian):
//
//	u8  version (1)
//	u8  type (1 evidence, 2 governance)
//	u64 time: the leader's received time, Unix milliseconds
//	u64 block height
//	evidence:   u8-prefixed digests (u8 alg, u8-prefixed value)…, [32] SHA-256 of the Submission
//	governance: u16-prefixed governance entry
type Leaf struct {
	Type    EntryType
	TimeMS  uint64
	Height  uint64
	Digests []Digest // evidence only: the Submission's digests, in clear
	SubHash [32]byte // evidence only: SHA-256 of the canonical Submission
	Entry   []byte   // governance only: canonical governance entry
}

// Time returns the leader's received time.
func (l *Leaf) Time() time.Time { return time.UnixMilli(int64(l.TimeMS)).UTC() }

// Marshal returns the canonical encoding.
func (l *Leaf) Marshal() ([]byte, error) {
	b := cryptobyte.NewBuilder(make([]byte, 0, 96))
	b.AddUint8(LeafVersion)
	b.AddUint8(uint8(l.Type))
	b.AddUint64(l.TimeMS)
	b.AddUint64(l.Height)
	switch l.Type {
	case EntryEvidence:
		if err := validateDigests(l.Digests); err != nil {
			return nil, err
		}
		addDigests(b, l.Digests)
		b.AddBytes(l.SubHash[:])
	case EntryGovernance:
		if len(l.Entry) == 0 {
			return nil, fmt.Errorf("%w: empty governance entry", ErrMalformed)
		}
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(l.Entry) })
	default:
		return nil, fmt.Errorf("%w: entry type %d", ErrUnsupported, l.Type)
	}
	out, err := build(b, "leaf")
	if err == nil && len(out) > MaxLeafSize {
		return nil, fmt.Errorf("%w: leaf is %d bytes", ErrTooLarge, len(out))
	}
	return out, err
}

// ParseLeaf strictly decodes a canonical leaf.
func ParseLeaf(data []byte) (*Leaf, error) {
	if len(data) > MaxLeafSize {
		return nil, fmt.Errorf("%w: leaf is %d bytes", ErrTooLarge, len(data))
	}
	s := cryptobyte.String(data)
	var version, typ uint8
	var l Leaf
	if !s.ReadUint8(&version) {
		return nil, fmt.Errorf("%w: leaf version", ErrMalformed)
	}
	if version != LeafVersion {
		return nil, fmt.Errorf("%w: leaf version %d", ErrUnsupported, version)
	}
	if !s.ReadUint8(&typ) || !s.ReadUint64(&l.TimeMS) || !s.ReadUint64(&l.Height) {
		return nil, fmt.Errorf("%w: leaf header", ErrMalformed)
	}
	l.Type = EntryType(typ)
	switch l.Type {
	case EntryEvidence:
		if err := readDigests(&s, &l.Digests); err != nil {
			return nil, fmt.Errorf("leaf: %w", err)
		}
		var h []byte
		if !s.ReadBytes(&h, 32) {
			return nil, fmt.Errorf("%w: leaf submission hash", ErrMalformed)
		}
		copy(l.SubHash[:], h)
	case EntryGovernance:
		var e cryptobyte.String
		if !s.ReadUint16LengthPrefixed(&e) || len(e) == 0 {
			return nil, fmt.Errorf("%w: leaf governance entry", ErrMalformed)
		}
		l.Entry = append([]byte(nil), e...)
	default:
		return nil, fmt.Errorf("%w: entry type %d", ErrUnsupported, typ)
	}
	if !s.Empty() {
		return nil, fmt.Errorf("%w: %d trailing bytes after leaf", ErrMalformed, len(s))
	}
	return &l, nil
}

// EvidenceLeaf builds the leaf for a Submission received at timeMS in block
// height.
func EvidenceLeaf(sub *Submission, encodedSub []byte, timeMS, height uint64) *Leaf {
	return &Leaf{
		Type:    EntryEvidence,
		TimeMS:  timeMS,
		Height:  height,
		Digests: cloneDigests(sub.Digests),
		SubHash: SubmissionHash(encodedSub),
	}
}
