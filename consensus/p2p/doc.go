// Package p2p carries one institution's traffic to the others over libp2p:
// a host that only lets the peers named in the manifest in force connect,
// a raft transport, block sync for replicas that fell behind, and a small
// request/response RPC.
//
// Every protocol speaks the same strict framing (see [FrameReader]): an
// unsigned LEB128 length, minimally encoded, then that many payload bytes,
// with a per-protocol maximum. A peer that sends a malformed or oversized
// frame has its stream reset and the event is logged; nothing it sends can
// stop the node. Blocks are opaque bytes here: the caller verifies them.
//
// Protocols:
//
//	/cunzheng/raft/1.0.0       raft messages, one frame each, one way
//	/cunzheng/blocksync/1.0.0  a block range request and its blocks
//	/cunzheng/rpc/<name>/1.0.0 one request frame, one response frame
//
// The host uses TCP with Noise and yamux only: no relay, NAT traversal,
// mDNS or DHT, because the members of a network and their addresses come
// from the manifest.
package p2p
