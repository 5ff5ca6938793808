package p2p

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestRPC(t *testing.T) {
	client, server := newTestHost(t, nil), newTestHost(t, nil)
	mesh(t, client, server)
	var caller peer.ID
	if err := Handle(server.Host, "echo", func(_ context.Context, remote peer.ID, req []byte) ([]byte, error) {
		caller = remote
		return append([]byte("echo: "), req...), nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := Handle(server.Host, "forward-submission", func(context.Context, peer.ID, []byte) ([]byte, error) {
		return nil, errors.New("not the leader; leader is 3")
	}); err != nil {
		t.Fatal(err)
	}
	if err := Handle(server.Host, "slow", func(ctx context.Context, _ peer.ID, _ []byte) ([]byte, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}); err != nil {
		t.Fatal(err)
	}
	if err := Handle(server.Host, "big", func(context.Context, peer.ID, []byte) ([]byte, error) {
		return make([]byte, MaxRPCFrame), nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	resp, err := Call(ctx, client.Host, server.ID(), "echo", []byte("hi"))
	if err != nil || string(resp) != "echo: hi" {
		t.Fatalf("echo: %q, %v", resp, err)
	}
	if caller != client.ID() {
		t.Errorf("handler saw caller %s, want %s", caller, client.ID())
	}
	if resp, err := Call(ctx, client.Host, server.ID(), "echo", bytes.Repeat([]byte("x"), MaxRPCFrame-100)); err != nil || len(resp) != MaxRPCFrame-100+6 {
		t.Errorf("near-limit request: %d bytes, %v", len(resp), err)
	}

	_, err = Call(ctx, client.Host, server.ID(), "forward-submission", nil)
	var re *RemoteError
	if !errors.As(err, &re) || re.Message != "not the leader; leader is 3" || re.Peer != server.ID() {
		t.Fatalf("handler error: got %v", err)
	}

	_, err = Call(ctx, client.Host, server.ID(), "big", nil)
	if !errors.As(err, &re) || !strings.Contains(re.Message, "exceeds") {
		t.Fatalf("oversized response: got %v", err)
	}

	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := Call(short, client.Host, server.ID(), "slow", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow handler: got %v, want deadline exceeded", err)
	}

	if _, err := Call(ctx, client.Host, server.ID(), "missing", nil); err == nil {
		t.Fatal("call to an unregistered RPC succeeded")
	}
	if _, err := Call(ctx, client.Host, server.ID(), "echo", make([]byte, MaxRPCFrame+1)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oversized request: got %v", err)
	}
}

func TestRPCNames(t *testing.T) {
	h := newTestHost(t, nil)
	fn := func(context.Context, peer.ID, []byte) ([]byte, error) { return nil, nil }
	for _, name := range []string{"", "-a", "a-", "Upper", "a/b", "a b", strings.Repeat("a", 33), "../x"} {
		if err := Handle(h.Host, name, fn); !errors.Is(err, ErrRPCName) {
			t.Errorf("Handle(%q): got %v", name, err)
		}
		if _, err := Call(context.Background(), h.Host, h.ID(), name, nil); !errors.Is(err, ErrRPCName) {
			t.Errorf("Call(%q): got %v", name, err)
		}
	}
	for _, name := range []string{"a", "cosign", "forward-submission", strings.Repeat("a", 32)} {
		if err := Handle(h.Host, name, fn); err != nil {
			t.Errorf("Handle(%q): %v", name, err)
		}
	}
}
