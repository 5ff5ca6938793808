package p2p

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// RPCTimeout bounds a call that brings no deadline of its own, and every
// handler's run.
const RPCTimeout = 10 * time.Second

// maxRPCName bounds an RPC name.
const maxRPCName = 32

// RPC response status bytes.
const (
	rpcOK    = 0x00
	rpcError = 0x01
)

// ErrRPCName is returned for an RPC name that is not 1–32 characters of
// lower-case letters, digits and inner hyphens.
var ErrRPCName = errors.New("p2p: invalid RPC name")

// RPCProtocol returns the protocol ID of the RPC called name:
// /cunzheng/rpc/<name>/1.0.0. On it the caller sends one request frame
// and half-closes; the handler answers with one frame, a status byte
// (0x00 success, 0x01 error) then the response or the error text, and
// closes. Frames are at most MaxRPCFrame bytes.
func RPCProtocol(name string) protocol.ID {
	return protocol.ID("/cunzheng/rpc/" + name + "/1.0.0")
}

func checkRPCName(name string) error {
	if len(name) == 0 || len(name) > maxRPCName || name[0] == '-' || name[len(name)-1] == '-' {
		return fmt.Errorf("%w: %q", ErrRPCName, name)
	}
	for _, c := range []byte(name) {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return fmt.Errorf("%w: %q", ErrRPCName, name)
		}
	}
	return nil
}

// Handle answers calls of the RPC name on h with fn. fn runs with a
// context that ends after RPCTimeout or when h closes; remote is the
// authenticated caller. The text of an error fn returns is sent to the
// caller (truncated to 1 KiB), so it must not carry secrets.
func Handle(h *Host, name string, fn func(ctx context.Context, remote peer.ID, req []byte) ([]byte, error)) error {
	if err := checkRPCName(name); err != nil {
		return err
	}
	proto := RPCProtocol(name)
	h.setHandler(proto, func(s network.Stream) {
		remote := s.Conn().RemotePeer()
		_ = s.SetReadDeadline(time.Now().Add(RPCTimeout))
		fr := NewFrameReader(s, MaxRPCFrame)
		req, err := fr.Next()
		if err == nil {
			err = fr.ExpectEOF()
		}
		if err != nil {
			h.resetStream(s, "bad RPC request", err)
			return
		}
		ctx, cancel := context.WithTimeout(h.ctx, RPCTimeout)
		resp, err := fn(ctx, remote, req)
		cancel()
		if err == nil && len(resp) > MaxRPCFrame-1 {
			h.log.Error("RPC response too large", "rpc", name, "peer", remote, "bytes", len(resp))
			err = fmt.Errorf("response of %d bytes exceeds %d", len(resp), MaxRPCFrame-1)
		}
		status, body := []byte{rpcOK}, resp
		if err != nil {
			status, body = []byte{rpcError}, errorText(err)
		}
		_ = s.SetWriteDeadline(time.Now().Add(RPCTimeout))
		if err := writeFrame(s, MaxRPCFrame, status, body); err != nil {
			h.log.Debug("RPC caller went away", "rpc", name, "peer", remote, "err", err)
			_ = s.Reset()
			return
		}
		_ = s.Close()
	})
	return nil
}

// Call sends req to the RPC name on peer p and returns the response,
// which the caller owns. An error the handler returned comes back as a
// *RemoteError. Without a deadline in ctx the call is bounded by
// RPCTimeout.
func Call(ctx context.Context, h *Host, p peer.ID, name string, req []byte) (resp []byte, err error) {
	if err := checkRPCName(name); err != nil {
		return nil, err
	}
	if len(req) > MaxRPCFrame {
		return nil, fmt.Errorf("call %s on %s: request: %w: %d bytes, limit %d", name, p, ErrFrameTooLarge, len(req), MaxRPCFrame)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, RPCTimeout)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	s, err := h.openStream(ctx, p, RPCProtocol(name))
	if err != nil {
		return nil, fmt.Errorf("call %s: %w", name, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	clean := false
	defer func() {
		if !clean {
			_ = s.Reset()
		}
		switch {
		case err != nil && ctx.Err() != nil:
			err = fmt.Errorf("call %s on %s: %w", name, p, ctx.Err())
		case err != nil && !time.Now().Before(deadline):
			// The stream's deadline is the context's: the stream may time
			// out a moment before the context's own timer fires.
			err = fmt.Errorf("call %s on %s: %w: %v", name, p, context.DeadlineExceeded, err)
		}
	}()
	_ = s.SetDeadline(deadline)
	if err := WriteFrame(s, req, MaxRPCFrame); err != nil {
		return nil, fmt.Errorf("call %s on %s: %w", name, p, err)
	}
	if err := s.CloseWrite(); err != nil {
		return nil, fmt.Errorf("call %s on %s: %w", name, p, err)
	}
	fr := NewFrameReader(s, MaxRPCFrame)
	b, err := fr.Next()
	if err != nil {
		return nil, fmt.Errorf("call %s on %s: %w", name, p, err)
	}
	if err := fr.ExpectEOF(); err != nil {
		return nil, fmt.Errorf("call %s on %s: %w: %v", name, p, ErrProtocol, err)
	}
	clean = true
	_ = s.Close()
	switch {
	case len(b) >= 1 && b[0] == rpcOK:
		return b[1:], nil
	case len(b) >= 1 && b[0] == rpcError && len(b)-1 <= maxErrorMessage:
		return nil, &RemoteError{Peer: p, Protocol: RPCProtocol(name), Message: string(b[1:])}
	default:
		return nil, fmt.Errorf("call %s on %s: %w: malformed response", name, p, ErrProtocol)
	}
}
