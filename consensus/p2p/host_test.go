package p2p

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func dialCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestHostsConnectWhenAllowed(t *testing.T) {
	a, b, c := newTestHost(t, nil), newTestHost(t, nil), newTestHost(t, nil)
	mesh(t, a, b, c)
	for _, pair := range [][2]*testHost{{a, b}, {b, c}, {c, a}} {
		if err := pair[0].Connect(dialCtx(t), pair[1].ID()); err != nil {
			t.Fatalf("%s → %s: %v", pair[0].ID(), pair[1].ID(), err)
		}
	}
	for _, h := range []*testHost{a, b, c} {
		for _, o := range []*testHost{a, b, c} {
			if h != o && !h.Connected(o.ID()) {
				t.Errorf("%s not connected to %s", h.ID(), o.ID())
			}
		}
	}
}

func TestGaterRejectsUnlistedPeer(t *testing.T) {
	a, b, intruder := newTestHost(t, nil), newTestHost(t, nil), newTestHost(t, nil)
	mesh(t, a, b)
	// The intruder knows a's address and would accept a; a does not list it.
	intruder.SetAllowed([]peer.ID{a.ID()})
	if err := intruder.AddPeer(a.ID(), a.ListenAddrs()); err != nil {
		t.Fatal(err)
	}
	expectRefused(t, intruder, a)
	waitFor(t, "rejection in a's log", func() bool {
		return a.logs.hasLine("rejected connection", intruder.ID().String())
	})
	if a.Connected(intruder.ID()) {
		t.Fatal("a holds a connection to the unlisted peer")
	}
	// a refuses to dial it too, before touching the network.
	if err := a.AddPeer(intruder.ID(), intruder.ListenAddrs()); err != nil {
		t.Fatal(err)
	}
	if err := a.Connect(dialCtx(t), intruder.ID()); err == nil {
		t.Fatal("a dialled an unlisted peer")
	}
	if !a.logs.hasLine("refusing to dial", intruder.ID().String()) {
		t.Error("dial refusal not logged")
	}
	// a keeps serving its members.
	if err := b.Connect(dialCtx(t), a.ID()); err != nil {
		t.Fatalf("member cannot connect after a rejection: %v", err)
	}
}

func TestSetAllowedClosesRevokedPeer(t *testing.T) {
	a, b := newTestHost(t, nil), newTestHost(t, nil)
	mesh(t, a, b)
	if err := b.Connect(dialCtx(t), a.ID()); err != nil {
		t.Fatal(err)
	}
	a.SetAllowed([]peer.ID{a.ID()})
	waitFor(t, "revoked peer disconnected", func() bool { return !a.Connected(b.ID()) && !b.Connected(a.ID()) })
	expectRefused(t, b, a)
	a.SetAllowed([]peer.ID{a.ID(), b.ID()})
	if err := b.Connect(dialCtx(t), a.ID()); err != nil {
		t.Fatalf("re-allowed peer cannot connect: %v", err)
	}
}

func TestPrivateNetworkKey(t *testing.T) {
	k1 := bytes.Repeat([]byte{1}, PSKSize)
	k2 := bytes.Repeat([]byte{2}, PSKSize)
	tests := []struct {
		name    string
		a, b    []byte
		connect bool
	}{
		{"same key", k1, k1, true},
		{"different keys", k1, k2, false},
		{"key and none", k1, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := newTestHost(t, tt.a), newTestHost(t, tt.b)
			mesh(t, a, b)
			// A refused handshake can stall until the deadline; a short
			// one is enough to tell.
			timeout := 10 * time.Second
			if !tt.connect {
				timeout = time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			err := a.Connect(ctx, b.ID())
			if tt.connect && err != nil {
				t.Fatalf("connect: %v", err)
			}
			if !tt.connect && err == nil {
				t.Fatal("connected across private networks")
			}
		})
	}
}

func TestNewHostRejectsBadConfig(t *testing.T) {
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	secp, _, err := crypto.GenerateSecp256k1Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  HostConfig
	}{
		{"no key", HostConfig{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}}},
		{"no addresses", HostConfig{PrivateKey: key}},
		{"not TCP", HostConfig{PrivateKey: key, ListenAddrs: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}}},
		{"garbage address", HostConfig{PrivateKey: key, ListenAddrs: []string{"127.0.0.1:4001"}}},
		{"short PSK", HostConfig{PrivateKey: key, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, PSK: []byte("short")}},
		{"secp256k1 key", HostConfig{PrivateKey: secp, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := NewHost(tt.cfg)
			if err == nil {
				h.Close()
				t.Fatal("accepted")
			}
		})
	}
}

func TestKeyFile(t *testing.T) {
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "node.key")
	if err := WriteKeyFile(path, key); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	got, err := ReadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equals(key) {
		t.Fatal("key changed in the round trip")
	}
	id1, _ := PeerIDFromKey(key)
	id2, _ := PeerIDFromKey(got)
	if id1 != id2 || id1 == "" {
		t.Fatalf("peer IDs %s and %s", id1, id2)
	}
	other, _ := GenerateKey()
	if err := WriteKeyFile(path, other); !errors.Is(err, os.ErrExist) {
		t.Fatalf("overwriting an identity: got %v, want ErrExist", err)
	}
	if again, _ := ReadKeyFile(path); !again.Equals(key) {
		t.Fatal("existing identity was replaced")
	}
}

func TestUnmarshalKeyRejects(t *testing.T) {
	key, _ := GenerateKey()
	good, err := MarshalKey(key)
	if err != nil {
		t.Fatal(err)
	}
	secp, _, err := crypto.GenerateSecp256k1Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	secpDER, _ := crypto.MarshalPrivateKey(secp)
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"not PEM", []byte("hello")},
		{"trailing data", append(append([]byte{}, good...), "junk"...)},
		{"two blocks", append(append([]byte{}, good...), good...)},
		{"wrong type", bytes.Replace(good, []byte("LIBP2P PRIVATE KEY"), []byte("PRIVATE KEY"), 2)},
		{"secp256k1", pemBlock(secpDER)},
		{"garbage body", pemBlock([]byte{1, 2, 3})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := UnmarshalKey(tt.in); !errors.Is(err, ErrKeyFormat) {
				t.Fatalf("got %v, want ErrKeyFormat", err)
			}
		})
	}
	if _, err := UnmarshalKey(append(good, "\n\n"...)); err != nil {
		t.Fatalf("trailing whitespace refused: %v", err)
	}
}

// expectRefused checks that from cannot talk to to. With Noise the dialer
// may finish its half of the handshake before the listener's gater
// rejects the connection, so Connect can briefly succeed; what must fail
// is using it.
func expectRefused(t *testing.T, from, to *testHost) {
	t.Helper()
	if err := Handle(to.Host, "ping", func(context.Context, peer.ID, []byte) ([]byte, error) {
		return []byte("pong"), nil
	}); err != nil {
		t.Fatal(err)
	}
	_ = from.Connect(dialCtx(t), to.ID())
	if resp, err := Call(dialCtx(t), from.Host, to.ID(), "ping", nil); err == nil {
		t.Fatalf("refused peer got an answer: %q", resp)
	}
	waitFor(t, "refused connection to close", func() bool { return !from.Connected(to.ID()) && !to.Connected(from.ID()) })
}

func pemBlock(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: keyPEMType, Bytes: der})
}
