package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	etcdraft "go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/cunzheng/cunzheng/consensus"
	"github.com/cunzheng/cunzheng/consensus/p2p"
	"github.com/cunzheng/cunzheng/consensus/raft"
	"github.com/cunzheng/cunzheng/evidence"
	"github.com/cunzheng/cunzheng/evidence/ledger"
)

// replication wires a replica of a network of several institutions: the
// libp2p host (only the manifest's peers may connect), the raft transport
// over it, the raft orderer, and the RPCs by which followers forward
// submissions and send checkpoint signatures to the leader.
type replication struct {
	host     *p2p.Host
	tr       *p2p.RaftTransport
	node     atomic.Pointer[raft.Node]
	self     evidence.Member
	peers    map[uint64]peer.ID // raft ID → peer ID, every member but self
	log      *slog.Logger
	l        atomic.Pointer[ledger.Ledger]
	fwd      *forwarder
	fp       evidence.Fingerprint
	cfg      *Config
	dataDir  string
	manifest *evidence.Manifest
	// sameNetwork holds the raft IDs of peers that answered the genesis
	// probe with this network's fingerprint; raft messages from others
	// are dropped until they do.
	sameNetwork sync.Map
	probing     sync.Map
}

// RPC names.
const (
	rpcCosign  = "cosign"
	rpcGenesis = "genesis"
)

// member finds this node in the manifest and checks its keys are the ones
// listed there.
func member(m *evidence.Manifest, name, noteVerifierKey string, pid peer.ID) (evidence.Member, error) {
	for _, mem := range m.Members {
		if mem.Name != name {
			continue
		}
		if pid != "" && mem.PeerID != pid.String() {
			return mem, fmt.Errorf("this node's libp2p identity %s is not the one the manifest lists for %s (%s)", pid, name, mem.PeerID)
		}
		if noteVerifierKey != "" && mem.NoteKey != noteVerifierKey {
			return mem, fmt.Errorf("this node's checkpoint key is not the one the manifest lists for %s", name)
		}
		return mem, nil
	}
	return evidence.Member{}, fmt.Errorf("%s is not a member of the network %s", name, m.Origin)
}

func readPSK(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read PSK: %w", err)
	}
	psk, err := hex.DecodeString(strings.TrimSpace(string(data)))
	if err != nil || len(psk) != p2p.PSKSize {
		return nil, fmt.Errorf("PSK file %s must hold %d bytes in hex", path, p2p.PSKSize)
	}
	return psk, nil
}

func startReplication(cfg *Config, dir, dataDir string, m *evidence.Manifest, fp evidence.Fingerprint, log *slog.Logger) (*replication, error) {
	key, err := p2p.ReadKeyFile(resolve(dir, cfg.P2PKey))
	if err != nil {
		return nil, err
	}
	pid, err := p2p.PeerIDFromKey(key)
	if err != nil {
		return nil, err
	}
	self, err := member(m, cfg.Name, "", pid)
	if err != nil {
		return nil, err
	}
	psk, err := readPSK(resolveOpt(dir, cfg.PSKFile))
	if err != nil {
		return nil, err
	}
	r := &replication{self: self, peers: map[uint64]peer.ID{}, log: log, fp: fp, cfg: cfg, dataDir: dataDir, manifest: m}
	r.fwd = newForwarder(r)
	var allowed []peer.ID
	for _, mem := range m.Members {
		if mem.Name == self.Name {
			continue
		}
		id, err := peer.Decode(mem.PeerID)
		if err != nil {
			return nil, fmt.Errorf("manifest member %s: peer ID: %w", mem.Name, err)
		}
		r.peers[mem.RaftID] = id
		allowed = append(allowed, id)
	}
	r.host, err = p2p.NewHost(p2p.HostConfig{PrivateKey: key, ListenAddrs: []string{cfg.P2PListen}, PSK: psk, Allowed: allowed, Logger: log})
	if err != nil {
		return nil, err
	}
	for _, mem := range m.Members {
		if id, ok := r.peers[mem.RaftID]; ok {
			if err := r.host.AddPeer(id, mem.Addrs); err != nil {
				r.host.Close()
				return nil, fmt.Errorf("manifest member %s: %w", mem.Name, err)
			}
		}
	}
	r.tr, err = p2p.NewRaftTransport(r.host, self.RaftID, r.peers, r.deliver, log)
	if err != nil {
		r.host.Close()
		return nil, err
	}
	r.tr.Unreachable = func(id uint64) {
		if n := r.node.Load(); n != nil {
			n.ReportUnreachable(id)
		}
	}
	r.tr.SnapshotStatus = func(id uint64, failed bool) {
		if n := r.node.Load(); n != nil {
			st := etcdraft.SnapshotFinish
			if failed {
				st = etcdraft.SnapshotFailure
			}
			n.ReportSnapshot(id, st)
		}
	}
	if err := p2p.Handle(r.host, rpcGenesis, func(context.Context, peer.ID, []byte) ([]byte, error) {
		return fp[:], nil
	}); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

// configure points the ledger at the raft orderer and the leader RPCs.
func (r *replication) configure(lc *ledger.Config) {
	var peers []raft.Peer
	for _, mem := range r.manifest.Members {
		peers = append(peers, raft.Peer{ID: mem.RaftID, Learner: !mem.Role.Voting()})
	}
	// Keep half a snapshot interval of entries for slow followers (at most
	// the raft package's default), so a small interval still compacts.
	keep := min(r.cfg.SnapshotEntries/2, raft.DefaultCompactKeep)
	lc.NewOrderer = func(fsm consensus.FSM) (consensus.Orderer, error) {
		n, err := raft.Start(context.Background(), raft.Config{
			ID: r.self.RaftID, Dir: filepath.Join(r.dataDir, "raft"), Peers: peers,
			Transport: r.tr, FSM: fsm, Logger: r.log, SnapshotEntries: r.cfg.SnapshotEntries, CompactKeep: keep,
		})
		if err != nil {
			return nil, err
		}
		r.node.Store(n)
		return n, nil
	}
	lc.IsLeader = func() bool {
		n := r.node.Load()
		return n != nil && n.Status().IsLeader
	}
	lc.CaughtUp = func() bool {
		n := r.node.Load()
		if n == nil {
			return false
		}
		st := n.Status()
		return st.Applied >= st.Commit
	}
	lc.Forward = r.forward
	lc.SendCosignature = r.sendCosignature
	lc.FetchBlocks = r.fetchBlocks
}

// probeWait bounds how long start-up waits for peers to answer the genesis
// probe; unreachable peers are checked when they first speak.
const probeWait = 3 * time.Second

// probeGenesis asks every reachable peer for its genesis fingerprint and
// fails if one is on another network: two networks must never mix logs.
func (r *replication) probeGenesis(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, probeWait)
	defer cancel()
	type answer struct {
		id  uint64
		err error
	}
	out := make(chan answer, len(r.peers))
	for id := range r.peers {
		go func() { out <- answer{id, r.checkPeer(ctx, id)} }()
	}
	for range r.peers {
		if a := <-out; errors.Is(a.err, errOtherNetwork) {
			return a.err
		}
	}
	return nil
}

var errOtherNetwork = errors.New("peer is on another network")

// checkPeer asks one peer for its genesis fingerprint.
func (r *replication) checkPeer(ctx context.Context, id uint64) error {
	pid := r.peers[id]
	resp, err := p2p.Call(ctx, r.host, pid, rpcGenesis, nil)
	if err != nil {
		return err
	}
	if string(resp) != string(r.fp[:]) {
		name := pid.String()
		for _, mem := range r.manifest.Members {
			if mem.RaftID == id {
				name = mem.Name + " (" + name + ")"
			}
		}
		return fmt.Errorf("%w: %s has genesis %x, this node %s; compare genesis fingerprints out of band and give every node the same genesis.json",
			errOtherNetwork, name, resp, r.fp)
	}
	r.sameNetwork.Store(id, true)
	return nil
}
func resolveOpt(dir, p string) string {
	if p == "" {
		return ""
	}
	return resolve(dir, p)
}

func (r *replication) deliver(ctx context.Context, m *raftpb.Message) error {
	n := r.node.Load()
	if n == nil {
		return errors.New("raft is not running yet")
	}
	if _, ok := r.sameNetwork.Load(m.GetFrom()); !ok {
		// First word from this peer: drop it (raft resends) until the peer
		// has shown it is on this network.
		if _, busy := r.probing.LoadOrStore(m.GetFrom(), true); !busy {
			from := m.GetFrom()
			go func() {
				defer r.probing.Delete(from)
				ctx, cancel := context.WithTimeout(context.Background(), probeWait)
				defer cancel()
				if err := r.checkPeer(ctx, from); errors.Is(err, errOtherNetwork) {
					r.log.Error("ALARM: refusing raft messages from a peer of another network", "err", err)
				}
			}()
		}
		return nil
	}
	return n.Step(ctx, m)
}

// serve registers the RPCs and block sync once the ledger exists.
func (r *replication) serve(l *ledger.Ledger) error {
	r.l.Store(l)
	p2p.ServeBlocks(r.host, syncSource{l})
	if err := p2p.Handle(r.host, rpcSubmitBatch, handleSubmitBatch(l)); err != nil {
		return err
	}
	return p2p.Handle(r.host, rpcCosign, func(_ context.Context, _ peer.ID, req []byte) ([]byte, error) {
		return nil, l.AddCosignature(req)
	})
}

// leaderPeer returns the peer ID of the current leader, or ok=false when
// this replica leads or no leader is known.
func (r *replication) leaderPeer() (peer.ID, bool, error) {
	n := r.node.Load()
	if n == nil {
		return "", false, ledger.ErrNotLeader
	}
	lead := n.Leader()
	if lead == 0 {
		return "", false, fmt.Errorf("%w: no leader elected yet; retry", ledger.ErrNotLeader)
	}
	if lead == r.self.RaftID {
		return "", true, nil
	}
	id, ok := r.peers[lead]
	if !ok {
		return "", false, fmt.Errorf("%w: leader %d is not in the manifest", ledger.ErrNotLeader, lead)
	}
	return id, false, nil
}

func (r *replication) forward(ctx context.Context, kind string, payload []byte) (uint64, bool, error) {
	_, self, err := r.leaderPeer()
	if err != nil {
		return 0, false, err
	}
	l := r.l.Load()
	if self && l != nil {
		if kind == "governance" {
			return l.SubmitGovernanceHere(ctx, payload)
		}
		return l.SubmitHere(ctx, payload)
	}
	tag := byte('s')
	if kind == "governance" {
		tag = 'g'
	}
	return r.fwd.forward(ctx, tag, payload)
}

func (r *replication) sendCosignature(ctx context.Context, signed []byte) error {
	pid, self, err := r.leaderPeer()
	if err != nil {
		return err
	}
	if self {
		if l := r.l.Load(); l != nil {
			return l.AddCosignature(signed)
		}
		return nil
	}
	_, err = p2p.Call(ctx, r.host, pid, rpcCosign, signed)
	return err
}

// fetchBlocks pulls blocks from the leader first, then any other member.
func (r *replication) fetchBlocks(ctx context.Context, from uint64, fn func(uint64, []byte) error) error {
	order := make([]peer.ID, 0, len(r.peers))
	if pid, self, err := r.leaderPeer(); err == nil && !self {
		order = append(order, pid)
	}
	for _, pid := range r.peers {
		order = append(order, pid)
	}
	var last error = errors.New("no peer to sync from")
	for _, pid := range order {
		got := 0
		err := p2p.FetchBlocks(ctx, r.host, pid, from, p2p.MaxBlocksPerRequest, func(h uint64, b []byte) error {
			got++
			return fn(h, b)
		})
		if err == nil && got > 0 {
			return nil
		}
		if err != nil {
			last = err
			if ctx.Err() != nil {
				return err
			}
		}
	}
	return last
}

// status reports the raft state for /v1/status; nil receiver = a network
// of one.
func (r *replication) status() (leader uint64, isLeader bool, term uint64) {
	if r == nil {
		return 0, true, 0
	}
	n := r.node.Load()
	if n == nil {
		return 0, false, 0
	}
	st := n.Status()
	return st.Leader, st.IsLeader, st.Term
}

func (r *replication) close() {
	r.tr.Close()
	r.host.Close()
}

// syncSource serves block sync from the ledger.
type syncSource struct{ l *ledger.Ledger }

func (s syncSource) Height() uint64 {
	h, _ := s.l.Store().Head()
	return h.Height
}

func (s syncSource) Block(height uint64) ([]byte, error) { return s.l.SyncItem(height) }

// Errors cross the RPC as "code: message" so the follower's API answers
// with the status the leader's would have.
var remoteCodes = []struct {
	code string
	err  error
}{
	{"invalid", ledger.ErrInvalid}, {"not_registered", ledger.ErrNotRegistered}, {"revoked", ledger.ErrRevoked},
	{"not_admin", ledger.ErrUnauthorized}, {"conflict", ledger.ErrConflict}, {"not_final", ledger.ErrNotFinal},
	{"insufficient_storage", ledger.ErrInsufficientDisk}, {"overloaded", ledger.ErrOverloaded},
	{"not_leader", ledger.ErrNotLeader}, {"closed", ledger.ErrClosed},
}

func encodeRemoteErr(err error) error {
	for _, c := range remoteCodes {
		if errors.Is(err, c.err) {
			return fmt.Errorf("%s|%v", c.code, err)
		}
	}
	return fmt.Errorf("internal|%v", err)
}

func decodeRemoteErr(err error) error {
	var re *p2p.RemoteError
	if !errors.As(err, &re) {
		if strings.Contains(err.Error(), "resource limit") {
			return fmt.Errorf("%w: the link to the leader is saturated: %v", ledger.ErrOverloaded, err)
		}
		return fmt.Errorf("%w: forwarding to the leader: %v", ledger.ErrNotLeader, err)
	}
	return decodeCode(re.Message)
}

// decodeCode turns a "code|message" error from the leader back into the
// ledger error it stands for.
func decodeCode(text string) error {
	code, msg, _ := strings.Cut(text, "|")
	for _, c := range remoteCodes {
		if strings.HasSuffix(code, c.code) {
			return fmt.Errorf("%w (at the leader): %s", c.err, msg)
		}
	}
	return fmt.Errorf("leader: %s", text)
}
