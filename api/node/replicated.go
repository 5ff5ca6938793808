package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
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
	host    *p2p.Host
	tr      *p2p.RaftTransport
	node    atomic.Pointer[raft.Node]
	self    evidence.Member
	log     *slog.Logger
	l       atomic.Pointer[ledger.Ledger]
	fp      evidence.Fingerprint
	cfg     *Config
	dataDir string
	genesis *evidence.Manifest
	fwd     *forwarder

	mu       sync.Mutex
	peers    map[uint64]peer.ID // raft ID → peer ID, every member of manifest but self
	manifest *evidence.Manifest // the newest version applied (or known at start)

	// The membership reconciler: the leader makes raft's configuration
	// follow the manifest, one conf change at a time.
	reconcileKick chan struct{}
	cancel        context.CancelFunc
	wg            sync.WaitGroup

	// sameNetwork holds the raft IDs of peers that answered the genesis
	// probe with this network's fingerprint; raft messages from others
	// are dropped until they do.
	sameNetwork sync.Map
	probing     sync.Map
}

// RPC names.
const (
	rpcCosign  = "cosign"
	rpcStamp   = "timestamp"
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

// startReplication starts the host and transport for the members of m, the
// newest manifest version this node knows (genesis, or the end of its
// manifest_chain). A founding member (listed in genesis) bootstraps raft
// with the genesis members; a member added later joins (raft Config.Join):
// the leader adds it and sends a snapshot, and it catches up from genesis
// by block sync.
func startReplication(cfg *Config, dir, dataDir string, genesis, m *evidence.Manifest, fp evidence.Fingerprint, log *slog.Logger) (*replication, error) {
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
	r := &replication{self: self, log: log, fp: fp, cfg: cfg, dataDir: dataDir, genesis: genesis, manifest: m,
		reconcileKick: make(chan struct{}, 1)}
	r.fwd = newForwarder(r)
	peers, allowed, err := peersOf(m, self.RaftID)
	if err != nil {
		return nil, err
	}
	r.peers = peers
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
	// Founders bootstrap with the genesis members (every founder the same
	// set); a member added later joins with none.
	var peers []raft.Peer
	join := true
	for _, mem := range r.genesis.Members {
		peers = append(peers, raft.Peer{ID: mem.RaftID, Learner: !mem.Role.Voting()})
		if mem.RaftID == r.self.RaftID {
			join = false
		}
	}
	if join {
		peers = nil
	}
	// Keep half a snapshot interval of entries for slow followers (at most
	// the raft package's default), so a small interval still compacts.
	keep := min(r.cfg.SnapshotEntries/2, raft.DefaultCompactKeep)
	lc.NewOrderer = func(fsm consensus.FSM) (consensus.Orderer, error) {
		n, err := raft.Start(context.Background(), raft.Config{
			ID: r.self.RaftID, Dir: filepath.Join(r.dataDir, "raft"), Peers: peers, Join: join,
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
		// Everything committed is applied, and this leader's own first
		// entry is committed: no block of a previous leader can still
		// commit under the one it is about to build.
		return st.Applied >= st.Commit && st.Commit >= st.LeaderSince
	}
	lc.Forward = r.forward
	lc.SendCosignature = r.sendCosignature
	lc.SendTimestamp = r.sendTimestamp
	lc.FetchBlocks = r.fetchBlocks
	lc.OnManifest = r.onManifest
}

// peersOf maps the members of m but self to their peer IDs.
func peersOf(m *evidence.Manifest, self uint64) (map[uint64]peer.ID, []peer.ID, error) {
	peers := map[uint64]peer.ID{}
	var allowed []peer.ID
	for _, mem := range m.Members {
		if mem.RaftID == self {
			continue
		}
		id, err := peer.Decode(mem.PeerID)
		if err != nil {
			return nil, nil, fmt.Errorf("manifest member %s: peer ID: %w", mem.Name, err)
		}
		peers[mem.RaftID] = id
		allowed = append(allowed, id)
	}
	return peers, allowed, nil
}

// onManifest follows a manifest version that took force in the log: only
// its members may connect, raft messages go to them, and the leader
// changes raft's configuration to match. It runs on the applying
// goroutine, so the conf change is left to the reconciler.
func (r *replication) onManifest(m *evidence.Manifest) {
	peers, allowed, err := peersOf(m, r.self.RaftID)
	if err != nil {
		r.log.Error("manifest in force has a bad peer ID; membership unchanged", "err", err)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.manifest != nil && m.Sequence < r.manifest.Sequence {
		return // replaying versions older than the one this node started with
	}
	for _, mem := range m.Members {
		if id, ok := peers[mem.RaftID]; ok {
			if err := r.host.AddPeer(id, mem.Addrs); err != nil {
				r.log.Warn("manifest member addresses", "member", mem.Name, "err", err)
			}
		}
	}
	r.host.SetAllowed(allowed)
	if err := r.tr.SetPeers(peers); err != nil {
		r.log.Error("raft transport peers", "err", err)
	}
	r.peers, r.manifest = peers, m
	r.log.Info("membership follows manifest", "sequence", m.Sequence, "members", len(m.Members))
	select {
	case r.reconcileKick <- struct{}{}:
	default:
	}
}

// reconcileInterval is how often the leader compares raft's configuration
// with the manifest even without a new version (e.g. after an election).
const reconcileInterval = time.Second

// reconcile runs until ctx is done: while this replica leads, has applied
// everything committed and is not catching up, it makes raft's
// configuration equal to the manifest's members, one change at a time
// (voters for voting roles, learners for observers). Raft IDs are never
// reused, so a removed ID is never added back.
func (r *replication) reconcile(ctx context.Context) {
	defer r.wg.Done()
	t := time.NewTicker(reconcileInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.reconcileKick:
		}
		for ctx.Err() == nil && r.reconcileOnce(ctx) {
		}
	}
}

// reconcileOnce makes at most one conf change; it reports whether it did.
func (r *replication) reconcileOnce(ctx context.Context) bool {
	n, l := r.node.Load(), r.l.Load()
	if n == nil || l == nil || l.Syncing() {
		return false
	}
	st := n.Status()
	if !st.IsLeader || st.Applied < st.Commit {
		return false
	}
	r.mu.Lock()
	m := r.manifest
	r.mu.Unlock()
	want := map[uint64]bool{} // raft ID → learner
	for _, mem := range m.Members {
		want[mem.RaftID] = !mem.Role.Voting()
	}
	change := func(what string, id uint64, f func(context.Context) error) bool {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := f(cctx); err != nil {
			r.log.Warn("raft membership change failed; will retry", "change", what, "raft_id", id, "err", err)
			return false
		}
		r.log.Info("raft membership changed to follow the manifest", "change", what, "raft_id", id)
		return true
	}
	for _, id := range append(slices.Clone(st.Voters), st.Learners...) {
		if _, ok := want[id]; !ok && id != st.ID {
			return change("remove", id, func(c context.Context) error { return n.RemoveMember(c, id) })
		}
	}
	for id, learner := range want {
		isVoter, isLearner := slices.Contains(st.Voters, id), slices.Contains(st.Learners, id)
		if learner && !isVoter && !isLearner || !learner && !isVoter {
			p := raft.Peer{ID: id, Learner: learner}
			what := "add voter"
			if learner {
				what = "add learner"
			}
			return change(what, id, func(c context.Context) error { return n.AddMember(c, p) })
		}
	}
	return false
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
	r.mu.Lock()
	ids := make([]uint64, 0, len(r.peers))
	for id := range r.peers {
		ids = append(ids, id)
	}
	r.mu.Unlock()
	out := make(chan answer, len(ids))
	for _, id := range ids {
		go func() { out <- answer{id, r.checkPeer(ctx, id)} }()
	}
	for range ids {
		if a := <-out; errors.Is(a.err, errOtherNetwork) {
			return a.err
		}
	}
	return nil
}

var errOtherNetwork = errors.New("peer is on another network")

// checkPeer asks one peer for its genesis fingerprint.
func (r *replication) checkPeer(ctx context.Context, id uint64) error {
	r.mu.Lock()
	pid, known := r.peers[id]
	m := r.manifest
	r.mu.Unlock()
	if !known {
		return fmt.Errorf("raft ID %d is not a member of the manifest in force", id)
	}
	resp, err := p2p.Call(ctx, r.host, pid, rpcGenesis, nil)
	if err != nil {
		return err
	}
	if string(resp) != string(r.fp[:]) {
		name := pid.String()
		for _, mem := range m.Members {
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
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.wg.Add(1)
	go r.reconcile(ctx)
	p2p.ServeBlocks(r.host, syncSource{l})
	if err := p2p.Handle(r.host, rpcSubmitBatch, handleSubmitBatch(l)); err != nil {
		return err
	}
	if err := p2p.Handle(r.host, rpcStamp, func(ctx context.Context, _ peer.ID, req []byte) ([]byte, error) {
		return nil, l.AddTimestamp(ctx, req)
	}); err != nil {
		return err
	}
	return p2p.Handle(r.host, rpcCosign, func(_ context.Context, _ peer.ID, req []byte) ([]byte, error) {
		return nil, l.AddCosignature(req)
	})
}

// sendTimestamp hands a time service's token to the leader, which has the
// network commit it.
func (r *replication) sendTimestamp(ctx context.Context, payload []byte) error {
	pid, self, err := r.leaderPeer()
	if err != nil {
		return err
	}
	if self {
		if l := r.l.Load(); l != nil {
			return l.AddTimestamp(ctx, payload)
		}
		return ledger.ErrNotLeader
	}
	_, err = p2p.Call(ctx, r.host, pid, rpcStamp, payload)
	return err
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
	r.mu.Lock()
	id, ok := r.peers[lead]
	r.mu.Unlock()
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

// cosignTo sends signed to the named member's cosign RPC (Running.Cosign).
func (r *replication) cosignTo(ctx context.Context, name string, signed []byte) error {
	r.mu.Lock()
	var pid peer.ID
	for _, mem := range r.manifest.Members {
		if mem.Name == name {
			pid = r.peers[mem.RaftID]
		}
	}
	r.mu.Unlock()
	if pid == "" {
		return fmt.Errorf("cosign: %q is not another member of the network", name)
	}
	_, err := p2p.Call(ctx, r.host, pid, rpcCosign, signed)
	return err
}

// fetchBlocks pulls blocks from the leader first, then any other member.
func (r *replication) fetchBlocks(ctx context.Context, from uint64, fn func(uint64, []byte) error) error {
	var order []peer.ID
	if pid, self, err := r.leaderPeer(); err == nil && !self {
		order = append(order, pid)
	}
	r.mu.Lock()
	for _, pid := range r.peers {
		order = append(order, pid)
	}
	r.mu.Unlock()
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

// stopReconciler stops the membership reconciler; it must stop before the
// ledger and raft close.
func (r *replication) stopReconciler() {
	if r.cancel != nil {
		r.cancel()
		r.wg.Wait()
	}
}

func (r *replication) close() {
	r.stopReconciler()
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
