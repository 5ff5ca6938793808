package p2p

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Frame limits, one per protocol. A frame longer than its protocol's limit
// is refused before any of its payload is read.
const (
	// MaxRaftFrame bounds one marshalled raft message. The raft driver's
	// MaxSizePerMsg must stay well below it: a message that does not fit
	// is dropped and its peer reported unreachable.
	MaxRaftFrame = 32 << 20
	// MaxBlockSize bounds one block served over block sync.
	MaxBlockSize = 64 << 20
	// MaxBlockFrame bounds one block-sync frame: a block plus its
	// one-byte kind and eight-byte height.
	MaxBlockFrame = MaxBlockSize + 9
	// MaxRPCFrame bounds an RPC request or response.
	MaxRPCFrame = 1 << 20
)

// Errors of the frame codec.
var (
	// ErrFrameTooLarge is returned for a frame whose length exceeds the
	// reader's or writer's limit.
	ErrFrameTooLarge = errors.New("p2p: frame too large")
	// ErrFrameLength is returned for a length prefix that is not a
	// minimally encoded unsigned varint.
	ErrFrameLength = errors.New("p2p: malformed frame length")
)

// frameChunk is how much of a frame is allocated before its bytes arrive:
// a peer that announces a large frame must send it to make us hold it.
const frameChunk = 64 << 10

// maxVarintLen is the longest length prefix accepted (enough for 2^63-1).
const maxVarintLen = binary.MaxVarintLen64

// FrameReader reads length-prefixed frames: an unsigned LEB128 varint
// length in its minimal encoding, then that many bytes. It rejects
// non-minimal and overlong prefixes and lengths above its limit.
type FrameReader struct {
	br  *bufio.Reader
	max int
}

// NewFrameReader returns a reader of frames of at most max bytes from r.
func NewFrameReader(r io.Reader, max int) *FrameReader {
	return &FrameReader{br: bufio.NewReaderSize(r, 4096), max: max}
}

// Next returns the next frame's payload in a new slice that the caller
// owns. It returns io.EOF when r ends cleanly between frames and
// io.ErrUnexpectedEOF when r ends inside one.
func (fr *FrameReader) Next() ([]byte, error) {
	n, err := fr.readLength()
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 0, min(n, frameChunk))
	for len(buf) < n {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(n, 2*cap(buf)))
			copy(grown, buf)
			buf = grown
		}
		m, err := io.ReadFull(fr.br, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("read frame of %d bytes: %w", n, err)
		}
	}
	return buf, nil
}

// ExpectEOF reports an error unless the stream ends here, for protocols
// whose peer must half-close after its last frame.
func (fr *FrameReader) ExpectEOF() error {
	if _, err := fr.br.ReadByte(); err != io.EOF {
		if err == nil {
			return fmt.Errorf("p2p: unexpected bytes after last frame")
		}
		return err
	}
	return nil
}

func (fr *FrameReader) readLength() (int, error) {
	var x uint64
	for i := 0; i < maxVarintLen; i++ {
		b, err := fr.br.ReadByte()
		if err != nil {
			if i > 0 && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		x |= uint64(b&0x7f) << (7 * i)
		// Higher groups only add, so a prefix already over the limit is
		// refused without waiting for the rest of it.
		if x > uint64(fr.max) {
			return 0, fmt.Errorf("%w: over %d bytes", ErrFrameTooLarge, fr.max)
		}
		if b < 0x80 {
			if i > 0 && b == 0 {
				return 0, fmt.Errorf("%w: non-minimal varint", ErrFrameLength)
			}
			return int(x), nil
		}
	}
	return 0, fmt.Errorf("%w: varint too long", ErrFrameLength)
}

// WriteFrame writes payload as one frame, refusing payloads over max.
func WriteFrame(w io.Writer, payload []byte, max int) error {
	return writeFrame(w, max, nil, payload)
}

// writeFrame writes the frame whose payload is head followed by body.
func writeFrame(w io.Writer, max int, head, body []byte) error {
	n := len(head) + len(body)
	if n > max {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, max)
	}
	buf := make([]byte, 0, maxVarintLen+len(head)+min(len(body), 4096))
	buf = binary.AppendUvarint(buf, uint64(n))
	buf = append(buf, head...)
	// Small frames go out in one write (one muxer frame); large bodies
	// are not copied.
	if len(body) <= 4096 {
		_, err := w.Write(append(buf, body...))
		return err
	}
	if _, err := w.Write(buf); err != nil {
		return err
	}
	_, err := w.Write(body)
	return err
}
