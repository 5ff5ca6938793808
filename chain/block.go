package chain

import (
	"crypto/sha256"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// Errors returned by the parsers; callers branch with errors.Is.
var (
	// ErrMalformed reports bytes that are not exactly one canonical encoding.
	ErrMalformed = errors.New("chain: malformed")
	// ErrInvalid reports a value that cannot be encoded canonically, such as
	// a block whose leaf count disagrees with its header.
	ErrInvalid = errors.New("chain: invalid")
)

// Limits on what one block may hold. They bound the memory a parser spends
// on untrusted input.
const (
	// BlockHeaderVersion is the only header encoding version this code writes
	// or accepts.
	BlockHeaderVersion = 1
	// MaxOriginLen is the longest origin an encoded header can carry
	// (u8 length prefix).
	MaxOriginLen = 255
	// MaxLeafLen is the longest leaf: the tlog-tiles entry bundle length
	// field is two bytes.
	MaxLeafLen = 65535
	// MaxSidecarLen is the longest per-leaf sidecar (u16 length prefix).
	MaxSidecarLen = 65535
	// MaxBlockLeaves bounds the number of leaves in one block.
	MaxBlockLeaves = 100000
	// MaxBlockBytes bounds the encoded size of one block.
	MaxBlockBytes = 64 << 20
)

// BlockHeader is the hash-chained header of one batch of leaves. Its hash
// ([BlockHeader.Hash]) is what the next header names in Prev.
type BlockHeader struct {
	Origin     string   // network origin (the checkpoint origin line)
	Height     uint64   // 1 for the first block
	Prev       [32]byte // Hash() of the previous header; zero for height 1
	FirstIndex uint64   // log index of the first leaf in this block
	Count      uint32   // number of leaves (>= 1)
	TreeSize   uint64   // = FirstIndex + Count
	Root       [32]byte // RFC 6962 tree root (tlog.TreeHash) at TreeSize
	TimeMS     uint64   // leader time, unix milliseconds
}

// Validate reports whether h satisfies every rule [ParseBlockHeader]
// enforces, so that a header that validates round-trips through Marshal.
func (h *BlockHeader) Validate() error {
	switch {
	case len(h.Origin) == 0 || len(h.Origin) > MaxOriginLen:
		return fmt.Errorf("%w: origin length %d not in 1..%d", ErrInvalid, len(h.Origin), MaxOriginLen)
	case h.Height < 1:
		return fmt.Errorf("%w: height 0", ErrInvalid)
	case h.Count < 1:
		return fmt.Errorf("%w: block %d has no leaves", ErrInvalid, h.Height)
	case h.FirstIndex+uint64(h.Count) < h.FirstIndex || h.TreeSize != h.FirstIndex+uint64(h.Count):
		return fmt.Errorf("%w: block %d tree size %d != first index %d + count %d",
			ErrInvalid, h.Height, h.TreeSize, h.FirstIndex, h.Count)
	case h.Height == 1 && (h.Prev != [32]byte{} || h.FirstIndex != 0):
		return fmt.Errorf("%w: first block must have zero prev and first index 0", ErrInvalid)
	}
	return nil
}

// Marshal returns the canonical encoding of h: a version byte (1), the
// u8-length-prefixed origin, then the fixed-width big-endian fields in
// declaration order. It panics if the origin is longer than [MaxOriginLen],
// which cannot be encoded at all; call [BlockHeader.Validate] on headers
// built from outside input.
func (h *BlockHeader) Marshal() []byte {
	b := cryptobyte.NewFixedBuilder(make([]byte, 0, 1+1+len(h.Origin)+8+32+8+4+8+32+8))
	b.AddUint8(BlockHeaderVersion)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(h.Origin)) })
	b.AddUint64(h.Height)
	b.AddBytes(h.Prev[:])
	b.AddUint64(h.FirstIndex)
	b.AddUint32(h.Count)
	b.AddUint64(h.TreeSize)
	b.AddBytes(h.Root[:])
	b.AddUint64(h.TimeMS)
	out, err := b.Bytes()
	if err != nil {
		panic(fmt.Sprintf("chain: marshal block header %d: %v", h.Height, err))
	}
	return out
}

// Hash returns SHA-256 of h.Marshal().
func (h *BlockHeader) Hash() [32]byte {
	return sha256.Sum256(h.Marshal())
}

// ParseBlockHeader decodes a header encoded by [BlockHeader.Marshal]. It
// rejects unknown versions, trailing bytes and any header that fails
// [BlockHeader.Validate].
func ParseBlockHeader(data []byte) (*BlockHeader, error) {
	s := cryptobyte.String(data)
	var (
		version uint8
		origin  cryptobyte.String
		h       BlockHeader
	)
	if !s.ReadUint8(&version) {
		return nil, fmt.Errorf("%w: block header: empty", ErrMalformed)
	}
	if version != BlockHeaderVersion {
		return nil, fmt.Errorf("%w: block header: unknown version %d", ErrMalformed, version)
	}
	if !s.ReadUint8LengthPrefixed(&origin) ||
		!s.ReadUint64(&h.Height) ||
		!s.CopyBytes(h.Prev[:]) ||
		!s.ReadUint64(&h.FirstIndex) ||
		!s.ReadUint32(&h.Count) ||
		!s.ReadUint64(&h.TreeSize) ||
		!s.CopyBytes(h.Root[:]) ||
		!s.ReadUint64(&h.TimeMS) {
		return nil, fmt.Errorf("%w: block header: truncated", ErrMalformed)
	}
	if !s.Empty() {
		return nil, fmt.Errorf("%w: block header: %d trailing bytes", ErrMalformed, len(s))
	}
	h.Origin = string(origin)
	if err := h.Validate(); err != nil {
		return nil, fmt.Errorf("%w: block header: %w", ErrMalformed, err)
	}
	return &h, nil
}

// Block is one batch of leaves as consensus orders and replicates it.
type Block struct {
	Header BlockHeader
	// Leaves are the log entries, each 1..MaxLeafLen bytes.
	Leaves [][]byte
	// Sidecars holds per-leaf data stored beside the log but never in tiles
	// (for example the signed Submission). If non-nil it has one entry per
	// leaf; an entry may be empty. A nil Sidecars means every entry is empty.
	Sidecars [][]byte
}

// Validate reports whether b can be encoded canonically: a valid header
// whose Count matches the leaves, leaf and sidecar lengths within limits, and
// the whole encoding within MaxBlockBytes.
func (b *Block) Validate() error {
	if err := b.Header.Validate(); err != nil {
		return err
	}
	if len(b.Leaves) != int(b.Header.Count) {
		return fmt.Errorf("%w: block %d header count %d != %d leaves", ErrInvalid, b.Header.Height, b.Header.Count, len(b.Leaves))
	}
	if len(b.Leaves) > MaxBlockLeaves {
		return fmt.Errorf("%w: block %d has %d leaves, limit %d", ErrInvalid, b.Header.Height, len(b.Leaves), MaxBlockLeaves)
	}
	if b.Sidecars != nil && len(b.Sidecars) != len(b.Leaves) {
		return fmt.Errorf("%w: block %d has %d sidecars for %d leaves", ErrInvalid, b.Header.Height, len(b.Sidecars), len(b.Leaves))
	}
	size := 2 + len(b.Header.Origin) + 1 + 8 + 32 + 8 + 4 + 8 + 32 + 8 + 4
	for i, leaf := range b.Leaves {
		if len(leaf) < 1 || len(leaf) > MaxLeafLen {
			return fmt.Errorf("%w: block %d leaf %d length %d not in 1..%d", ErrInvalid, b.Header.Height, i, len(leaf), MaxLeafLen)
		}
		size += 4 + len(leaf)
		if b.Sidecars != nil {
			if len(b.Sidecars[i]) > MaxSidecarLen {
				return fmt.Errorf("%w: block %d sidecar %d length %d over %d", ErrInvalid, b.Header.Height, i, len(b.Sidecars[i]), MaxSidecarLen)
			}
			size += len(b.Sidecars[i])
		}
	}
	if size > MaxBlockBytes {
		return fmt.Errorf("%w: block %d encodes to %d bytes, limit %d", ErrInvalid, b.Header.Height, size, MaxBlockBytes)
	}
	return nil
}

// Sidecar returns the sidecar of leaf i, or nil when it has none.
func (b *Block) Sidecar(i int) []byte {
	if b.Sidecars == nil {
		return nil
	}
	return b.Sidecars[i]
}

// Marshal returns the canonical encoding of b: the u16-length-prefixed
// header, a u32 leaf count, then for each leaf the u16-length-prefixed leaf
// and the u16-length-prefixed sidecar. It fails if b does not pass
// [Block.Validate].
func (b *Block) Marshal() ([]byte, error) {
	if err := b.Validate(); err != nil {
		return nil, fmt.Errorf("marshal block: %w", err)
	}
	bb := cryptobyte.NewBuilder(nil)
	bb.AddUint16LengthPrefixed(func(bb *cryptobyte.Builder) { bb.AddBytes(b.Header.Marshal()) })
	bb.AddUint32(uint32(len(b.Leaves)))
	for i, leaf := range b.Leaves {
		bb.AddUint16LengthPrefixed(func(bb *cryptobyte.Builder) { bb.AddBytes(leaf) })
		bb.AddUint16LengthPrefixed(func(bb *cryptobyte.Builder) { bb.AddBytes(b.Sidecar(i)) })
	}
	out, err := bb.Bytes()
	if err != nil {
		return nil, fmt.Errorf("marshal block %d: %w", b.Header.Height, err)
	}
	return out, nil
}

// ParseBlock decodes a block encoded by [Block.Marshal]. It is strict: it
// enforces every [Block.Validate] rule, MaxBlockBytes before reading, and no
// trailing bytes. The returned block always has a non-nil Sidecars with one
// entry per leaf, nil for an empty sidecar. Leaves and Sidecars alias data;
// the caller must not modify data while the block is in use.
func ParseBlock(data []byte) (*Block, error) {
	if len(data) > MaxBlockBytes {
		return nil, fmt.Errorf("%w: block of %d bytes, limit %d", ErrMalformed, len(data), MaxBlockBytes)
	}
	s := cryptobyte.String(data)
	var (
		hdr   cryptobyte.String
		count uint32
	)
	if !s.ReadUint16LengthPrefixed(&hdr) || !s.ReadUint32(&count) {
		return nil, fmt.Errorf("%w: block: truncated", ErrMalformed)
	}
	h, err := ParseBlockHeader(hdr)
	if err != nil {
		return nil, fmt.Errorf("parse block: %w", err)
	}
	if count != h.Count || count > MaxBlockLeaves {
		return nil, fmt.Errorf("%w: block %d: %d leaves, header count %d", ErrMalformed, h.Height, count, h.Count)
	}
	// Every leaf takes at least 5 bytes, so a count the data cannot hold is
	// rejected before allocating for it.
	if uint64(count)*5 > uint64(len(s)) {
		return nil, fmt.Errorf("%w: block %d: %d leaves in %d bytes", ErrMalformed, h.Height, count, len(s))
	}
	b := &Block{Header: *h, Leaves: make([][]byte, count), Sidecars: make([][]byte, count)}
	for i := range b.Leaves {
		var leaf, side cryptobyte.String
		if !s.ReadUint16LengthPrefixed(&leaf) || !s.ReadUint16LengthPrefixed(&side) {
			return nil, fmt.Errorf("%w: block %d: leaf %d truncated", ErrMalformed, h.Height, i)
		}
		if len(leaf) == 0 {
			return nil, fmt.Errorf("%w: block %d: leaf %d is empty", ErrMalformed, h.Height, i)
		}
		b.Leaves[i] = leaf
		if len(side) > 0 {
			b.Sidecars[i] = side
		}
	}
	if !s.Empty() {
		return nil, fmt.Errorf("%w: block %d: %d trailing bytes", ErrMalformed, h.Height, len(s))
	}
	return b, nil
}
