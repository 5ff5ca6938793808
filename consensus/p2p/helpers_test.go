package p2p

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// logBuffer collects a host's log lines for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// hasLine reports whether one log line contains every part.
func (b *logBuffer) hasLine(parts ...string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for line := range strings.Lines(b.buf.String()) {
		all := true
		for _, p := range parts {
			if !strings.Contains(line, p) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

type testHost struct {
	*Host
	logs   *logBuffer
	logger *slog.Logger
}

// newTestHost starts a host on loopback that allows nobody yet.
func newTestHost(t *testing.T, psk []byte) *testHost {
	t.Helper()
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h, err := NewHost(HostConfig{
		PrivateKey:  key,
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
		PSK:         psk,
		Logger:      logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return &testHost{Host: h, logs: logs, logger: logger}
}

// mesh lets every host reach every other one.
func mesh(t *testing.T, hosts ...*testHost) {
	t.Helper()
	var ids []peer.ID
	for _, h := range hosts {
		ids = append(ids, h.ID())
	}
	for _, h := range hosts {
		h.SetAllowed(ids)
		for _, o := range hosts {
			if o != h {
				if err := h.AddPeer(o.ID(), o.ListenAddrs()); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rawStream opens a stream on which the test speaks the protocol by hand.
func rawStream(t *testing.T, from *testHost, to peer.ID, p protocol.ID) network.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := from.openStream(ctx, to, p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Reset() })
	return s
}

// expectReset checks that the far end resets s.
func expectReset(t *testing.T, s network.Stream) {
	t.Helper()
	_ = s.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64)
	for {
		_, err := s.Read(buf)
		if err == nil {
			continue
		}
		if !isReset(err) {
			t.Fatalf("stream ended with %v, want a reset", err)
		}
		return
	}
}

func isReset(err error) bool {
	var se *network.StreamError
	return err != nil && (errors.Is(err, network.ErrReset) || errors.As(err, &se))
}
