package p2p

import (
	"context"
	"encoding/binary"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// TestGarbageResetsStream speaks nonsense on every protocol: the server
// must reset the stream, log it, and go on serving.
func TestGarbageResetsStream(t *testing.T) {
	client, server := newTestHost(t, nil), newTestHost(t, nil)
	mesh(t, client, server)
	peers := map[uint64]peer.ID{1: client.ID(), 2: server.ID()}
	in := &inbox{}
	srvRaft, err := NewRaftTransport(server.Host, 2, peers, in.deliver, server.logger)
	if err != nil {
		t.Fatal(err)
	}
	defer srvRaft.Close()
	cliRaft, err := NewRaftTransport(client.Host, 1, peers, (&inbox{}).deliver, client.logger)
	if err != nil {
		t.Fatal(err)
	}
	defer cliRaft.Close()
	ServeBlocks(server.Host, tenBlocks())
	if err := Handle(server.Host, "echo", func(_ context.Context, _ peer.ID, req []byte) ([]byte, error) { return req, nil }); err != nil {
		t.Fatal(err)
	}

	withPayload := func(payload string) []byte {
		return append(binary.AppendUvarint(nil, uint64(len(payload))), payload...)
	}
	prefix := func(n uint64) []byte { return binary.AppendUvarint(nil, n) }

	tests := []struct {
		name  string
		proto protocol.ID
		send  []byte
		half  bool // half-close after sending
	}{
		{"raft: not protobuf", RaftProtocol, withPayload("\xff\xff\xff\xff"), false},
		{"raft: oversized prefix", RaftProtocol, prefix(MaxRaftFrame + 1), false},
		{"raft: varint overflow", RaftProtocol, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, false},
		{"raft: non-minimal prefix", RaftProtocol, []byte{0x80, 0x00}, false},
		{"raft: truncated frame", RaftProtocol, append(prefix(100), "short"...), true},
		{"blocksync: short request", BlockSyncProtocol, withPayload("12345"), true},
		{"blocksync: zero count", BlockSyncProtocol, withPayload("\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00"), true},
		{"blocksync: oversized prefix", BlockSyncProtocol, prefix(MaxBlockFrame), false},
		{"blocksync: bytes after request", BlockSyncProtocol, append(withPayload("\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x01"), 'x'), true},
		{"rpc: oversized prefix", RPCProtocol("echo"), prefix(MaxRPCFrame + 1), false},
		{"rpc: two requests", RPCProtocol("echo"), append(withPayload("a"), withPayload("b")...), true},
		{"rpc: non-minimal prefix", RPCProtocol("echo"), []byte{0x81, 0x00}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := rawStream(t, client, server.ID(), tt.proto)
			if _, err := s.Write(tt.send); err != nil {
				t.Fatal(err)
			}
			if tt.half {
				_ = s.CloseWrite()
			}
			expectReset(t, s)
			waitFor(t, "the reset to be logged", func() bool {
				return server.logs.hasLine("resetting stream", client.ID().String(), string(tt.proto))
			})
		})
	}

	// The server still works on every protocol.
	cliRaft.Send([]*raftpb.Message{raftMsg(raftpb.MsgHeartbeat, 1, 2)})
	waitFor(t, "a heartbeat after the garbage", func() bool { return in.count() == 1 })
	if err := FetchBlocks(context.Background(), client.Host, server.ID(), 1, 2, func(uint64, []byte) error { return nil }); err != nil {
		t.Fatalf("block sync after the garbage: %v", err)
	}
	if resp, err := Call(context.Background(), client.Host, server.ID(), "echo", []byte("ok")); err != nil || string(resp) != "ok" {
		t.Fatalf("RPC after the garbage: %q %v", resp, err)
	}
}

// TestResourceLimitsBoundRaftStreams checks that the resource manager
// enforces the per-peer raft stream limit: a member holding that many
// inbound raft streams open cannot open one more.
func TestResourceLimitsBoundRaftStreams(t *testing.T) {
	nodes := raftCluster(t, 2)
	a, b := nodes[0], nodes[1]
	hb, err := proto.Marshal(raftMsg(raftpb.MsgHeartbeat, 1, 2))
	if err != nil {
		t.Fatal(err)
	}
	for i := range raftStreamsPerPeer {
		s := rawStream(t, a.testHost, b.ID(), RaftProtocol)
		if err := WriteFrame(s, hb, MaxRaftFrame); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "heartbeat on the stream", func() bool { return b.in.count() == i+1 })
	}
	s := rawStream(t, a.testHost, b.ID(), RaftProtocol)
	_ = WriteFrame(s, hb, MaxRaftFrame)
	expectReset(t, s)
	if n := b.in.count(); n != raftStreamsPerPeer {
		t.Fatalf("%d heartbeats delivered, want %d: the stream over the limit was served", n, raftStreamsPerPeer)
	}
}
