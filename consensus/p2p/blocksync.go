package p2p

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// BlockSyncProtocol serves ranges of blocks to replicas catching up.
//
// The client sends one request frame, {from uint64, count uint32} big
// endian (12 bytes), and half-closes. The server answers with one frame
// per block, kind 0x01 then the height (uint64) then the block, heights
// consecutive from `from`; then either an end frame (kind 0x02 alone) or
// an error frame (kind 0x03 then UTF-8 text); then closes. It sends fewer
// than count blocks when it holds fewer, or after MaxBlockSyncResponse
// bytes.
const BlockSyncProtocol protocol.ID = "/cunzheng/blocksync/1.0.0"

// Block sync limits.
const (
	// MaxBlocksPerRequest bounds count in one request.
	MaxBlocksPerRequest = 256
	// MaxBlockSyncResponse is how many block bytes a server sends for one
	// request before ending it early; the client asks again from there.
	MaxBlockSyncResponse = 256 << 20
	// BlockSyncIdleTimeout bounds the wait for each frame, both ways.
	BlockSyncIdleTimeout = 30 * time.Second
)

const blockRequestLen = 12

// Block-sync frame kinds.
const (
	blockFrameBlock = 0x01
	blockFrameEnd   = 0x02
	blockFrameError = 0x03
)

// BlockSource is what ServeBlocks serves from.
type BlockSource interface {
	// Height returns the highest height the source holds.
	Height() uint64
	// Block returns the block at height; the caller does not modify it.
	Block(height uint64) ([]byte, error)
}

// ServeBlocks answers block-sync requests on h from src until h closes.
func ServeBlocks(h *Host, src BlockSource) {
	h.setHandler(BlockSyncProtocol, func(s network.Stream) { serveBlockStream(h, src, s) })
}

func serveBlockStream(h *Host, src BlockSource, s network.Stream) {
	_ = s.SetReadDeadline(time.Now().Add(BlockSyncIdleTimeout))
	fr := NewFrameReader(s, blockRequestLen)
	req, err := fr.Next()
	if err == nil {
		err = fr.ExpectEOF()
	}
	if err != nil {
		h.resetStream(s, "bad block-sync request", err)
		return
	}
	from, count, err := parseBlockRequest(req)
	if err != nil {
		h.resetStream(s, "bad block-sync request", err)
		return
	}
	write := func(head, body []byte) error {
		_ = s.SetWriteDeadline(time.Now().Add(BlockSyncIdleTimeout))
		return writeFrame(s, MaxBlockFrame, head, body)
	}
	tip := src.Height()
	var sent int
	for i := uint64(0); i < uint64(count) && sent < MaxBlockSyncResponse; i++ {
		height := from + i
		if height < from || height > tip { // wrapped, or past what we hold
			break
		}
		block, err := src.Block(height)
		if err == nil && len(block) > MaxBlockSize {
			err = fmt.Errorf("block of %d bytes exceeds %d", len(block), MaxBlockSize)
		}
		if err != nil {
			h.log.Error("block sync: cannot serve block", "peer", s.Conn().RemotePeer(), "height", height, "err", err)
			if werr := write([]byte{blockFrameError}, errorText(fmt.Errorf("block %d: %w", height, err))); werr != nil {
				_ = s.Reset()
				return
			}
			_ = s.Close()
			return
		}
		var head [9]byte
		head[0] = blockFrameBlock
		binary.BigEndian.PutUint64(head[1:], height)
		if err := write(head[:], block); err != nil {
			h.log.Debug("block sync: peer went away", "peer", s.Conn().RemotePeer(), "err", err)
			_ = s.Reset()
			return
		}
		sent += len(block)
	}
	if err := write([]byte{blockFrameEnd}, nil); err != nil {
		_ = s.Reset()
		return
	}
	_ = s.Close()
}

func parseBlockRequest(b []byte) (from uint64, count uint32, err error) {
	if len(b) != blockRequestLen {
		return 0, 0, fmt.Errorf("%w: request of %d bytes, want %d", ErrProtocol, len(b), blockRequestLen)
	}
	from = binary.BigEndian.Uint64(b)
	count = binary.BigEndian.Uint32(b[8:])
	if count == 0 || count > MaxBlocksPerRequest {
		return 0, 0, fmt.Errorf("%w: count %d outside 1..%d", ErrProtocol, count, MaxBlocksPerRequest)
	}
	return from, count, nil
}

// FetchBlocks asks peer p for count blocks starting at height from and
// calls fn with each, in height order, as it arrives; block is fn's to
// keep. fn does the caller's verification: an error from fn aborts the
// fetch and is returned (wrapped). FetchBlocks returns nil after the
// peer's end frame, which may come after fewer than count blocks (the
// peer holds fewer, or capped its answer): the caller counts fn's calls
// and asks again from there. A refusal by the peer is a *RemoteError.
func FetchBlocks(ctx context.Context, h *Host, p peer.ID, from uint64, count uint32,
	fn func(height uint64, block []byte) error) (err error) {
	if count == 0 || count > MaxBlocksPerRequest {
		return fmt.Errorf("fetch blocks: count %d outside 1..%d", count, MaxBlocksPerRequest)
	}
	s, err := h.openStream(ctx, p, BlockSyncProtocol)
	if err != nil {
		return fmt.Errorf("fetch blocks %d+%d: %w", from, count, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	clean := false
	defer func() {
		if !clean {
			_ = s.Reset()
		}
		if err != nil && ctx.Err() != nil {
			err = fmt.Errorf("fetch blocks %d+%d from %s: %w", from, count, p, ctx.Err())
		}
	}()
	var req [blockRequestLen]byte
	binary.BigEndian.PutUint64(req[:], from)
	binary.BigEndian.PutUint32(req[8:], count)
	_ = s.SetWriteDeadline(time.Now().Add(BlockSyncIdleTimeout))
	if err := WriteFrame(s, req[:], blockRequestLen); err != nil {
		return fmt.Errorf("fetch blocks %d+%d from %s: %w", from, count, p, err)
	}
	if err := s.CloseWrite(); err != nil {
		return fmt.Errorf("fetch blocks %d+%d from %s: %w", from, count, p, err)
	}
	fr := NewFrameReader(s, MaxBlockFrame)
	next := from
	for got := uint32(0); ; {
		_ = s.SetReadDeadline(time.Now().Add(BlockSyncIdleTimeout))
		b, err := fr.Next()
		if err != nil {
			return fmt.Errorf("fetch blocks %d+%d from %s: after %d blocks: %w", from, count, p, got, err)
		}
		if len(b) == 0 {
			return fmt.Errorf("fetch blocks from %s: %w: empty frame", p, ErrProtocol)
		}
		switch b[0] {
		case blockFrameBlock:
			if len(b) < 9 {
				return fmt.Errorf("fetch blocks from %s: %w: short block frame", p, ErrProtocol)
			}
			height := binary.BigEndian.Uint64(b[1:9])
			if got == count || height != next {
				return fmt.Errorf("fetch blocks from %s: %w: block %d, want %d (%d of %d received)",
					p, ErrProtocol, height, next, got, count)
			}
			if err := fn(height, b[9:]); err != nil {
				return fmt.Errorf("fetch blocks from %s: block %d: %w", p, height, err)
			}
			next++
			got++
		case blockFrameEnd:
			if len(b) != 1 {
				return fmt.Errorf("fetch blocks from %s: %w: long end frame", p, ErrProtocol)
			}
			if err := fr.ExpectEOF(); err != nil {
				return fmt.Errorf("fetch blocks from %s: %w: %v", p, ErrProtocol, err)
			}
			clean = true
			_ = s.Close()
			return nil
		case blockFrameError:
			if len(b)-1 > maxErrorMessage {
				return fmt.Errorf("fetch blocks from %s: %w: long error frame", p, ErrProtocol)
			}
			return &RemoteError{Peer: p, Protocol: BlockSyncProtocol, Message: string(b[1:])}
		default:
			return fmt.Errorf("fetch blocks from %s: %w: frame kind %#x", p, ErrProtocol, b[0])
		}
	}
}
