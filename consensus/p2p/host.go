package p2p

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// PSKSize is the length of a private-network pre-shared key.
const PSKSize = 32

// DialTimeout bounds one attempt to connect to a peer.
const DialTimeout = 10 * time.Second

// ErrClosed is returned by a host or transport after Close.
var ErrClosed = errors.New("p2p: closed")

// Limits bound what this host's peers may make it hold, enforced by the
// libp2p resource manager. The zero value of a field means its default
// (the DefaultX constant beside it). The defaults are sized for a network
// of a few dozen institutions; streams and memory per peer are what one
// peer can take before its new streams are refused and its yamux windows
// stop growing, so one misbehaving member cannot starve the others.
type Limits struct {
	// Conns is the most connections held at once, both directions.
	Conns int
	// ConnsPerPeer is the most connections to one peer.
	ConnsPerPeer int
	// StreamsPerPeer is the most streams open with one peer, both
	// directions.
	StreamsPerPeer int
	// MemoryPerPeer is the most muxer buffer memory one peer may hold.
	MemoryPerPeer int64
	// Memory is the most muxer buffer memory the host holds in total.
	Memory int64
	// FD is the most file descriptors connections may use.
	FD int
}

// Defaults for Limits.
const (
	// DefaultConns leaves room for 64 members dialling each other at once.
	DefaultConns = 128
	// DefaultConnsPerPeer allows a simultaneous dial from both ends and a
	// reconnect overlapping a dying connection.
	DefaultConnsPerPeer = 4
	// DefaultStreamsPerPeer covers raft's two lanes each way, a few block
	// syncs and RPCs, and libp2p's identify, with margin.
	DefaultStreamsPerPeer = 64
	// DefaultMemoryPerPeer lets a bulk raft lane and a block sync both
	// open full 16 MiB yamux windows, with margin.
	DefaultMemoryPerPeer = 96 << 20
	// DefaultMemory bounds the muxer buffers of all peers together.
	DefaultMemory = 1 << 30
	// DefaultFD bounds connection file descriptors.
	DefaultFD = 256
)

// Per-protocol, per-peer stream limits, inbound: a peer needs no more
// at once, so more is a bug or an attack.
const (
	raftStreamsPerPeer      = 4 // a priority and a bulk lane, each possibly being replaced
	blockSyncStreamsPerPeer = 4
	otherStreamsPerPeer     = 16
)

func (l Limits) withDefaults() Limits {
	if l.Conns <= 0 {
		l.Conns = DefaultConns
	}
	if l.ConnsPerPeer <= 0 {
		l.ConnsPerPeer = DefaultConnsPerPeer
	}
	if l.StreamsPerPeer <= 0 {
		l.StreamsPerPeer = DefaultStreamsPerPeer
	}
	if l.MemoryPerPeer <= 0 {
		l.MemoryPerPeer = DefaultMemoryPerPeer
	}
	if l.Memory <= 0 {
		l.Memory = DefaultMemory
	}
	if l.FD <= 0 {
		l.FD = DefaultFD
	}
	return l
}

// resourceLimits turns l into a resource-manager configuration: libp2p's
// own defaults scaled to l.Memory and l.FD (deterministic, unlike its
// autoscaling, which reads the machine), then l's numbers on top.
func (l Limits) resourceLimits() rcmgr.ConcreteLimitConfig {
	scaling := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&scaling)
	base := scaling.Scale(l.Memory, l.FD)
	streams := rcmgr.LimitVal(l.StreamsPerPeer)
	perProto := func(n int) rcmgr.ResourceLimits {
		return rcmgr.ResourceLimits{StreamsInbound: rcmgr.LimitVal(n), Streams: rcmgr.LimitVal(2 * n)}
	}
	partial := rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{
			Conns:         rcmgr.LimitVal(l.Conns),
			ConnsInbound:  rcmgr.LimitVal(l.Conns),
			ConnsOutbound: rcmgr.LimitVal(l.Conns),
			FD:            rcmgr.LimitVal(l.FD),
			Memory:        rcmgr.LimitVal64(l.Memory),
		},
		PeerDefault: rcmgr.ResourceLimits{
			Conns:           rcmgr.LimitVal(l.ConnsPerPeer),
			ConnsInbound:    rcmgr.LimitVal(l.ConnsPerPeer),
			ConnsOutbound:   rcmgr.LimitVal(l.ConnsPerPeer),
			Streams:         streams,
			StreamsInbound:  streams,
			StreamsOutbound: streams,
			Memory:          rcmgr.LimitVal64(l.MemoryPerPeer),
		},
		ProtocolPeerDefault: perProto(otherStreamsPerPeer),
		ProtocolPeer: map[protocol.ID]rcmgr.ResourceLimits{
			RaftProtocol:      perProto(raftStreamsPerPeer),
			BlockSyncProtocol: perProto(blockSyncStreamsPerPeer),
		},
	}
	return partial.Build(base)
}

// HostConfig configures NewHost.
type HostConfig struct {
	// PrivateKey is the node's Ed25519 identity; its peer ID is what the
	// manifest lists.
	PrivateKey crypto.PrivKey
	// ListenAddrs are TCP multiaddrs such as /ip4/0.0.0.0/tcp/4001.
	ListenAddrs []string
	// PSK, if set, is the 32-byte private-network key: peers without the
	// same key cannot complete a connection.
	PSK []byte
	// Allowed are the peer IDs that may connect, in either direction.
	Allowed []peer.ID
	// Logger receives rejections and protocol errors; nil discards them.
	Logger *slog.Logger
	// Limits bound the resources peers may use.
	Limits Limits
}

// Host is one node's libp2p endpoint.
type Host struct {
	h      host.Host
	gater  *allowGater
	log    *slog.Logger
	ctx    context.Context // cancelled by Close; parent of handler contexts
	cancel context.CancelFunc

	mu       sync.Mutex
	handlers []protocol.ID
}

// NewHost starts a host listening on cfg.ListenAddrs.
func NewHost(cfg HostConfig) (*Host, error) {
	if cfg.PrivateKey == nil || cfg.PrivateKey.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("new host: %w: need an Ed25519 private key", ErrKeyFormat)
	}
	if len(cfg.ListenAddrs) == 0 {
		return nil, errors.New("new host: no listen addresses")
	}
	for _, a := range cfg.ListenAddrs {
		m, err := ma.NewMultiaddr(a)
		if err != nil {
			return nil, fmt.Errorf("new host: listen address %q: %w", a, err)
		}
		if _, err := m.ValueForProtocol(ma.P_TCP); err != nil {
			return nil, fmt.Errorf("new host: listen address %q: not TCP", a)
		}
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "p2p")
	gater := newAllowGater(logger)
	gater.set(cfg.Allowed)

	rm, err := rcmgr.NewResourceManager(
		rcmgr.NewFixedLimiter(cfg.Limits.withDefaults().resourceLimits()),
		rcmgr.WithMetricsDisabled(),
	)
	if err != nil {
		return nil, fmt.Errorf("new host: resource manager: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(cfg.PrivateKey),
		libp2p.ListenAddrStrings(cfg.ListenAddrs...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ConnectionGater(gater),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(connmgr.NullConnMgr{}),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
		libp2p.DisableIdentifyAddressDiscovery(),
		libp2p.Ping(false),
		libp2p.WithDialTimeout(DialTimeout),
	}
	if cfg.PSK != nil {
		if len(cfg.PSK) != PSKSize {
			rm.Close()
			return nil, fmt.Errorf("new host: private-network key is %d bytes, want %d", len(cfg.PSK), PSKSize)
		}
		opts = append(opts, libp2p.PrivateNetwork(pnet.PSK(cfg.PSK)))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("new host: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Host{h: h, gater: gater, log: logger, ctx: ctx, cancel: cancel}, nil
}

// ID returns the host's peer ID.
func (h *Host) ID() peer.ID { return h.h.ID() }

// ListenAddrs returns the addresses the host listens on, with the ports
// actually bound (a listen address with port 0 gets one assigned).
func (h *Host) ListenAddrs() []string {
	var out []string
	for _, a := range h.h.Network().ListenAddresses() {
		out = append(out, a.String())
	}
	return out
}

// LibP2P returns the underlying libp2p host, for what this package does
// not wrap. Protocols registered on it directly are the caller's to
// remove.
func (h *Host) LibP2P() host.Host { return h.h }

// AddPeer records addrs as where peer id listens. It does not connect and
// does not allow the peer: that is SetAllowed's job.
func (h *Host) AddPeer(id peer.ID, addrs []string) error {
	var ms []ma.Multiaddr
	for _, a := range addrs {
		m, err := ma.NewMultiaddr(a)
		if err != nil {
			return fmt.Errorf("add peer %s: address %q: %w", id, a, err)
		}
		ms = append(ms, m)
	}
	h.h.Peerstore().ClearAddrs(id)
	h.h.Peerstore().AddAddrs(id, ms, peerstore.PermanentAddrTTL)
	return nil
}

// Connect dials peer id at its recorded addresses unless already
// connected.
func (h *Host) Connect(ctx context.Context, id peer.ID) error {
	if err := h.h.Connect(ctx, peer.AddrInfo{ID: id}); err != nil {
		return fmt.Errorf("connect %s: %w", id, err)
	}
	return nil
}

// Connected reports whether the host has a live connection to id.
func (h *Host) Connected(id peer.ID) bool {
	return h.h.Network().Connectedness(id) == network.Connected
}

// SetAllowed replaces the allowlist, as when a new manifest takes force.
// Connections to peers no longer allowed are closed.
func (h *Host) SetAllowed(ids []peer.ID) {
	h.gater.set(ids)
	for _, id := range h.h.Network().Peers() {
		if !h.gater.allowed(id) {
			h.log.Warn("closing connection to peer no longer allowed", "peer", id)
			_ = h.h.Network().ClosePeer(id)
		}
	}
}

// Allowed reports whether id is on the current allowlist.
func (h *Host) Allowed(id peer.ID) bool { return h.gater.allowed(id) }

// setHandler registers a stream handler that Close removes.
func (h *Host) setHandler(p protocol.ID, handler network.StreamHandler) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.h.SetStreamHandler(p, handler)
	h.handlers = append(h.handlers, p)
}

// Close stops the host: handlers' contexts are cancelled, connections
// closed.
func (h *Host) Close() error {
	h.cancel()
	h.mu.Lock()
	for _, p := range h.handlers {
		h.h.RemoveStreamHandler(p)
	}
	h.handlers = nil
	h.mu.Unlock()
	return h.h.Close()
}

// openStream opens a stream to id. When there is no connection yet it
// dials directly, bypassing libp2p's dial backoff (which grows to
// minutes): callers here pace their own retries, and a member that comes
// back must be reachable again at once.
func (h *Host) openStream(ctx context.Context, id peer.ID, p protocol.ID) (network.Stream, error) {
	if h.ctx.Err() != nil {
		return nil, ErrClosed
	}
	if !h.Connected(id) {
		if err := h.h.Connect(network.WithForceDirectDial(ctx, "cunzheng member"), peer.AddrInfo{ID: id}); err != nil {
			return nil, fmt.Errorf("open %s stream to %s: %w", p, id, err)
		}
	}
	s, err := h.h.NewStream(ctx, id, p)
	if err != nil {
		return nil, fmt.Errorf("open %s stream to %s: %w", p, id, err)
	}
	return s, nil
}

// resetStream discards a stream after a protocol violation and logs why.
func (h *Host) resetStream(s network.Stream, reason string, err error) {
	h.log.Warn("resetting stream", "peer", s.Conn().RemotePeer(), "protocol", s.Protocol(),
		"reason", reason, "err", err)
	_ = s.Reset()
}

// allowGater admits only the peers on an allowlist that can be swapped
// atomically while connections come and go.
type allowGater struct {
	ids atomic.Pointer[map[peer.ID]struct{}]
	log *slog.Logger
}

var _ connmgr.ConnectionGater = (*allowGater)(nil)

func newAllowGater(log *slog.Logger) *allowGater { return &allowGater{log: log} }

func (g *allowGater) set(ids []peer.ID) {
	m := make(map[peer.ID]struct{}, len(ids))
	for _, id := range ids {
		m[id] = struct{}{}
	}
	g.ids.Store(&m)
}

func (g *allowGater) allowed(id peer.ID) bool {
	m := g.ids.Load()
	if m == nil {
		return false
	}
	_, ok := (*m)[id]
	return ok
}

// InterceptPeerDial refuses to dial peers not on the allowlist.
func (g *allowGater) InterceptPeerDial(id peer.ID) bool {
	if g.allowed(id) {
		return true
	}
	g.log.Warn("refusing to dial peer not on allowlist", "peer", id)
	return false
}

// InterceptAddrDial is as InterceptPeerDial, per address.
func (g *allowGater) InterceptAddrDial(id peer.ID, addr ma.Multiaddr) bool {
	if g.allowed(id) {
		return true
	}
	g.log.Warn("refusing to dial peer not on allowlist", "peer", id, "addr", addr)
	return false
}

// InterceptAccept admits every inbound connection for now: the peer's
// identity is known only after the security handshake.
func (g *allowGater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

// InterceptSecured refuses authenticated connections from or to peers not
// on the allowlist, before any protocol runs.
func (g *allowGater) InterceptSecured(dir network.Direction, id peer.ID, addrs network.ConnMultiaddrs) bool {
	if g.allowed(id) {
		return true
	}
	g.log.Warn("rejected connection with peer not on allowlist", "peer", id,
		"direction", dir.String(), "remote", addrs.RemoteMultiaddr())
	return false
}

// InterceptUpgraded admits what InterceptSecured admitted.
func (g *allowGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}
