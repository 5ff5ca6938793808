// Package node assembles a cunzheng node from its directory: configuration,
// keys and genesis manifest (written by Init), the Pebble log store under a
// directory named by the genesis fingerprint, the evidence ledger, and the
// HTTP server (Run).
package node

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/multiformats/go-multiaddr"
	"golang.org/x/mod/sumdb/note"

	"github.com/cunzheng/cunzheng/api"
	"github.com/cunzheng/cunzheng/api/web"
	"github.com/cunzheng/cunzheng/chain/checkpoint"
	"github.com/cunzheng/cunzheng/chain/store"
	"github.com/cunzheng/cunzheng/chain/witness"
	"github.com/cunzheng/cunzheng/consensus"
	"github.com/cunzheng/cunzheng/consensus/p2p"
	"github.com/cunzheng/cunzheng/evidence"
	"github.com/cunzheng/cunzheng/evidence/ledger"
	"github.com/cunzheng/cunzheng/evidence/tsa"
)

// File names inside a node directory.
const (
	ConfigFile   = "node.conf"
	GenesisFile  = "genesis.json"
	NoteKeyFile  = "note.key"
	NotePubFile  = "note.pub"
	AdminKeyFile = "admin.key"
	AdminPubFile = "admin.pub"
	TokenFile    = "api.token"
	P2PKeyFile   = "p2p.key"
	// WitnessKeyFile is the key this node cosigns other logs' checkpoints
	// with, as a witness; WitnessPubFile is its cosignature/v1 verifier
	// key and WitnessFile the manifest entry another network lists it
	// with (cunzheng genesis --witness).
	WitnessKeyFile = "witness.key"
	WitnessPubFile = "witness.pub"
	WitnessFile    = "witness.json"
	// DescriptorFile is the node's public description, sent to the other
	// institutions for `cunzheng genesis`.
	DescriptorFile = "descriptor.json"
	// TSACertFile and TSAKeyFile hold a time service's RFC 3161
	// certificate chain and key.
	TSACertFile = "tsa.crt"
	TSAKeyFile  = "tsa.key"
)

// ConfigPath returns the configuration file of a node directory.
func ConfigPath(dir string) string { return filepath.Join(dir, ConfigFile) }

// InitOptions says what institution a new node directory is for.
type InitOptions struct {
	Dir    string
	Name   string // signed-note key name, e.g. court.example
	Role   string // court, notary, time-service, appraisal, observer
	Origin string // "" = <name>/log
	Listen string // "" = DefaultListen
	// P2PListen is the libp2p multiaddr the other institutions dial
	// ("" = DefaultP2PListen).
	P2PListen string
	// TSACert and TSAKey, for a time service, name an existing RFC 3161
	// certificate chain (PEM, e.g. issued by an external CA) and its key
	// to use; empty = a new self-signed certificate.
	TSACert, TSAKey string
}

// InitResult reports what Init wrote.
type InitResult struct {
	Fingerprint                                         evidence.Fingerprint
	Origin                                              string
	ConfigPath, GenesisPath, AdminKeyPath, AdminPubPath string
	NoteKeyPath, TokenPath                              string
	DescriptorPath                                      string
	WitnessKey                                          string // cosignature/v1 verifier key
	PeerID                                              string
	RaftID                                              uint64
}

// Init creates a node directory for a one-institution network: keys (0600),
// a commented configuration file and a genesis manifest. It refuses to touch
// a directory that already holds a configuration.
func Init(opts InitOptions) (*InitResult, error) {
	if opts.Dir == "" {
		return nil, errors.New("init: --dir is required")
	}
	if err := evidence.ValidKeyName(opts.Name); err != nil {
		return nil, fmt.Errorf("init: --name: %w", err)
	}
	role, err := evidence.ParseRole(opts.Role)
	if err != nil {
		return nil, fmt.Errorf("init: --role: %w", err)
	}
	if opts.Origin == "" {
		opts.Origin = opts.Name + "/log"
	}
	if err := evidence.ValidOrigin(opts.Origin); err != nil {
		return nil, fmt.Errorf("init: --origin: %w", err)
	}
	if opts.Listen == "" {
		opts.Listen = DefaultListen
	}
	if strings.ContainsAny(opts.Listen, " \n\"#") {
		return nil, fmt.Errorf("init: --listen %q is not an address", opts.Listen)
	}
	if opts.P2PListen == "" {
		opts.P2PListen = DefaultP2PListen
	}
	if _, err := multiaddr.NewMultiaddr(opts.P2PListen); err != nil || strings.ContainsAny(opts.P2PListen, " \n\"#") {
		return nil, fmt.Errorf("init: --p2p-listen %q is not a multiaddr", opts.P2PListen)
	}
	if _, err := os.Stat(ConfigPath(opts.Dir)); err == nil {
		return nil, fmt.Errorf("init: %s already exists; refusing to overwrite a node", ConfigPath(opts.Dir))
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, opts.Name)
	if err != nil {
		return nil, fmt.Errorf("init: note key: %w", err)
	}
	adminPub, adminPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	p2pKey, err := p2p.GenerateKey()
	if err != nil {
		return nil, err
	}
	p2pKeyBytes, err := p2p.MarshalKey(p2pKey)
	if err != nil {
		return nil, err
	}
	peerID, err := p2p.PeerIDFromKey(p2pKey)
	if err != nil {
		return nil, err
	}
	_, witnessPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	witnessSigner, err := checkpoint.NewCosignatureSigner(opts.Name+"/witness", witnessPriv, nil)
	if err != nil {
		return nil, fmt.Errorf("init: witness key: %w", err)
	}
	witnessKey := witnessSigner.Verifier().String()
	witnessEntry, err := json.MarshalIndent(evidence.Witness{Key: witnessKey, URL: "http://" + opts.Listen}, "", "  ")
	if err != nil {
		return nil, err
	}
	// Raft IDs are never reused: a random 63-bit ID per node directory, so
	// a wiped or restored node necessarily rejoins as a new member.
	var idb [8]byte
	rand.Read(idb[:])
	raftID := binary.BigEndian.Uint64(idb[:])>>1 | 1
	self := evidence.Member{
		Name: opts.Name, Role: role, RaftID: raftID, PeerID: peerID.String(),
		Addrs: []string{opts.P2PListen}, NoteKey: vkey, AdminKey: adminPub,
	}
	var tsaCertPEM, tsaKeyPEM []byte
	if role == evidence.RoleTimeService {
		certs, key, err := initTSA(opts)
		if err != nil {
			return nil, fmt.Errorf("init: timestamp authority: %w", err)
		}
		a, err := tsa.New(tsa.Config{Certs: certs, Key: key})
		if err != nil {
			return nil, fmt.Errorf("init: timestamp authority: %w", err)
		}
		self.TSACerts = a.CertChain()
		if tsaCertPEM, tsaKeyPEM, err = tsa.EncodePEM(certs, key); err != nil {
			return nil, err
		}
	} else if opts.TSACert != "" || opts.TSAKey != "" {
		return nil, errors.New("init: --tsa-cert and --tsa-key are for the time-service role")
	}
	descriptor, err := evidence.MarshalDescriptor(&self)
	if err != nil {
		return nil, err
	}
	// A voting institution can run alone at once: it gets a genesis
	// manifest of a network of one. An observer only follows a network, so
	// it waits for the manifest `cunzheng genesis` makes.
	var manifestFile []byte
	var fp evidence.Fingerprint
	if role.Voting() {
		m := &evidence.Manifest{
			Origin: opts.Origin, Sequence: 1,
			Members:   []evidence.Member{self},
			CreatedAt: uint64(time.Now().Unix()),
		}
		m.Threshold = evidence.DefaultThreshold(m.Members)
		if manifestFile, err = evidence.MarshalManifestFile(m); err != nil {
			return nil, fmt.Errorf("init: manifest: %w", err)
		}
		fp, _ = m.Fingerprint()
	}
	token := make([]byte, 24)
	rand.Read(token)
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{NoteKeyFile, []byte(skey + "\n"), 0o600},
		{NotePubFile, []byte(vkey + "\n"), 0o644},
		{AdminKeyFile, evidence.MarshalPrivateKey(adminPriv), 0o600},
		{AdminPubFile, evidence.MarshalPublicKey(adminPub), 0o644},
		{TokenFile, []byte(hex.EncodeToString(token) + "\n"), 0o600},
		{P2PKeyFile, p2pKeyBytes, 0o600},
		{DescriptorFile, descriptor, 0o644},
		{WitnessKeyFile, evidence.MarshalPrivateKey(witnessPriv), 0o600},
		{WitnessPubFile, []byte(witnessKey + "\n"), 0o644},
		{WitnessFile, append(witnessEntry, '\n'), 0o644},
		{TSACertFile, tsaCertPEM, 0o644},
		{TSAKeyFile, tsaKeyPEM, 0o600},
		{GenesisFile, manifestFile, 0o644},
		// The configuration goes last: its presence marks a complete node.
		{ConfigFile, fmt.Appendf(nil, configTemplate, opts.Name, opts.Role, opts.Listen, opts.P2PListen, opts.Name+"/witness"), 0o644},
	}
	for _, f := range files {
		if f.data == nil {
			continue
		}
		if err := WriteNewFile(filepath.Join(opts.Dir, f.name), f.data, f.mode); err != nil {
			return nil, fmt.Errorf("init: %w", err)
		}
	}
	return &InitResult{
		Fingerprint: fp, Origin: opts.Origin,
		ConfigPath:     ConfigPath(opts.Dir),
		GenesisPath:    filepath.Join(opts.Dir, GenesisFile),
		AdminKeyPath:   filepath.Join(opts.Dir, AdminKeyFile),
		AdminPubPath:   filepath.Join(opts.Dir, AdminPubFile),
		NoteKeyPath:    filepath.Join(opts.Dir, NoteKeyFile),
		TokenPath:      filepath.Join(opts.Dir, TokenFile),
		DescriptorPath: filepath.Join(opts.Dir, DescriptorFile),
		WitnessKey:     witnessKey,
		PeerID:         peerID.String(),
		RaftID:         raftID,
	}, nil
}

// initTSA returns the time service's certificate chain and key: the
// operator's (from opts) or a new self-signed one valid for ten years.
func initTSA(opts InitOptions) ([]*x509.Certificate, crypto.Signer, error) {
	if (opts.TSACert == "") != (opts.TSAKey == "") {
		return nil, nil, errors.New("--tsa-cert and --tsa-key go together")
	}
	if opts.TSACert != "" {
		return tsa.ReadFiles(opts.TSACert, opts.TSAKey)
	}
	cert, key, err := tsa.SelfSigned(opts.Name, rand.Reader, time.Now(), 10*365*24*time.Hour)
	if err != nil {
		return nil, nil, err
	}
	return []*x509.Certificate{cert}, key, nil
}

// WriteNewFile creates path with perm and syncs it, refusing to overwrite
// an existing file. The mode is set explicitly too, so a permissive umask
// cannot widen a private key.
func WriteNewFile(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s already exists; refusing to overwrite", path)
	}
	if err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// RunOptions adjusts Run.
type RunOptions struct {
	Listen string       // "" = from the configuration
	Logger *slog.Logger // nil = text logs to stderr at the configured level
	// Ready is called with the bound address once the node serves.
	Ready func(addr string)
	// Started, if set, is given the running node's parts once it serves:
	// for tests and programs that embed a node.
	Started func(Running)
}

// Running exposes a serving node's parts to Started.
type Running struct {
	Ledger  *ledger.Ledger
	Orderer consensus.Orderer // nil in a network of one
	// Cosign sends a signed checkpoint to the named member over this
	// node's libp2p host, by the RPC that carries checkpoint signatures to
	// the leader, and returns the member's answer (nil in a network of
	// one). Tests use it to play a compromised institution: it does
	// nothing a member cannot do with its own peer key.
	Cosign func(ctx context.Context, member string, signed []byte) error
}

func resolve(dir, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// Run serves the node in dir until ctx is done.
func Run(ctx context.Context, dir string, opts RunOptions) error {
	cfg, err := LoadConfig(dir)
	if err != nil {
		return err
	}
	if opts.Listen != "" {
		cfg.Listen = opts.Listen
	}
	log := opts.Logger
	if log == nil {
		var lvl slog.Level
		lvl.UnmarshalText([]byte(cfg.LogLevel))
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	}
	manifestFile, err := os.ReadFile(resolve(dir, cfg.Genesis))
	if err != nil {
		return fmt.Errorf("read genesis manifest: %w", err)
	}
	m, fp, err := evidence.ParseManifestFile(manifestFile)
	if err != nil {
		return fmt.Errorf("genesis manifest %s: %w", cfg.Genesis, err)
	}
	skey, err := os.ReadFile(resolve(dir, cfg.NoteKey))
	if err != nil {
		return fmt.Errorf("read note key: %w", err)
	}
	signer, err := note.NewSigner(strings.TrimSpace(string(skey)))
	if err != nil {
		return fmt.Errorf("note key %s: %w", cfg.NoteKey, err)
	}
	if signer.Name() != cfg.Name {
		return fmt.Errorf("note key is for %q but the configuration names %q", signer.Name(), cfg.Name)
	}
	var token string
	if cfg.APITokenFile != "" {
		t, err := os.ReadFile(resolve(dir, cfg.APITokenFile))
		if err != nil {
			return fmt.Errorf("read API token: %w", err)
		}
		token = strings.TrimSpace(string(t))
	}
	genesis, _ := m.Marshal()
	// The newest manifest this node is given (a member added after genesis
	// starts with the chain `cunzheng member add` wrote); its log may hold
	// a newer one, applied once the store is open.
	given, err := givenChain(dir, cfg, fp, genesis)
	if err != nil {
		return err
	}
	latest := given[len(given)-1].Manifest
	if _, err := member(latest, cfg.Name, noteVerifierKey(latest, signer), ""); err != nil {
		return err
	}
	dataDir := filepath.Join(resolve(dir, cfg.DataDir), fp.String())
	var rep *replication
	if len(m.Members) > 1 || len(latest.Members) > 1 {
		// Before anything is written: the libp2p host starts, and every
		// reachable peer must be on this very network.
		if rep, err = startReplication(cfg, dir, dataDir, m, latest, fp, log); err != nil {
			return fmt.Errorf("replication: %w", err)
		}
		defer rep.close()
		if err := rep.probeGenesis(ctx); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	st, err := store.Open(dataDir, fp, store.Options{Logger: log})
	if err != nil {
		return fmt.Errorf("open store %s: %w", dataDir, err)
	}
	defer st.Close()
	stored, err := ledger.StoredManifests(st, genesis)
	if err != nil {
		return err
	}
	chain, err := newestChain(given, stored, fp)
	if err != nil {
		return err
	}
	if rep != nil && len(chain) > len(given) {
		rep.onManifest(chain[len(chain)-1].Manifest)
	}
	var chainEnc [][]byte
	for _, v := range chain {
		chainEnc = append(chainEnc, v.Encoded)
	}
	disk := diskSpace{dir: dataDir, headroom: cfg.DiskHeadroom}
	witnessClient := &witness.Client{HTTP: &http.Client{}}
	lc := ledger.Config{
		Store: st, Genesis: genesis, Signer: signer, Logger: log, Chain: chainEnc,
		SpaceCheck: disk.check, BatchMaxRecords: cfg.BatchMaxRecords, BatchInterval: cfg.BatchInterval,
		ReceiptDeadline: cfg.ReceiptDeadline, RestampInterval: cfg.TSARestamp,
		AskWitness: witnessClient.AddCheckpoint,
	}
	if cfg.Role == evidence.RoleTimeService.String() {
		if lc.Stamper, err = startAuthority(dir, cfg, chain[len(chain)-1].Manifest, log); err != nil {
			return err
		}
	}
	witnessServer, closeWitness, err := startWitness(dir, cfg, log)
	if err != nil {
		return err
	}
	defer closeWitness()
	if rep != nil {
		rep.configure(&lc)
	}
	l, err := ledger.Open(lc)
	if err != nil {
		return err
	}
	defer l.Close()
	if rep != nil {
		if err := rep.serve(l); err != nil {
			return err
		}
		go rep.fwd.run(ctx)
		defer rep.stopReconciler()
		go func() {
			if err := l.ResumeSync(ctx); err != nil && ctx.Err() == nil {
				log.Error("block sync did not finish", "err", err)
			}
		}()
	}
	pages, err := web.New(web.Options{Network: web.Network{Fingerprint: fp, Manifest: m}, Logger: log})
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler: api.NewServer(api.Config{
			Ledger: l, Node: cfg.Name, Role: cfg.Role, Token: token, Logger: log,
			Manifest: manifestFile, DiskFree: disk.free, Extra: pages.Register,
			Consensus: rep.status, Witness: witnessServer,
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log.Info("serving", "addr", ln.Addr().String(), "origin", m.Origin, "network", fp.String(), "tree_size", st.TreeSize())
	if opts.Ready != nil {
		opts.Ready(ln.Addr().String())
	}
	if opts.Started != nil {
		run := Running{Ledger: l}
		if rep != nil {
			if n := rep.node.Load(); n != nil {
				run.Orderer = n
			}
			run.Cosign = rep.cosignTo
		}
		opts.Started(run)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}

// startAuthority loads the time service's RFC 3161 authority and checks
// that its certificate is the one the manifest pins for this member.
func startAuthority(dir string, cfg *Config, m *evidence.Manifest, log *slog.Logger) (ledger.Stamper, error) {
	certs, key, err := tsa.ReadFiles(resolve(dir, cfg.TSACert), resolve(dir, cfg.TSAKey))
	if err != nil {
		return nil, fmt.Errorf("timestamp authority: %w", err)
	}
	var ref tsa.Reference
	if addr, ok := strings.CutPrefix(cfg.TSAReference, "sntp://"); ok {
		ref = tsa.SNTP{Addr: addr}
	}
	a, err := tsa.New(tsa.Config{Certs: certs, Key: key, Reference: ref, MaxSkew: cfg.TSAMaxSkew})
	if err != nil {
		return nil, fmt.Errorf("timestamp authority: %w", err)
	}
	pinned := false
	for _, mem := range m.Members {
		if mem.Name == cfg.Name && len(mem.TSACerts) > 0 && bytes.Equal(mem.TSACerts[0], certs[0].Raw) {
			pinned = true
		}
	}
	if !pinned {
		return nil, fmt.Errorf("timestamp authority: %s is not the certificate the manifest (version %d) lists for %s; its tokens would not verify", cfg.TSACert, m.Sequence, cfg.Name)
	}
	if off, err := a.CheckClock(context.Background()); err != nil {
		log.Error("ALARM: timestamp authority will not stamp until its clock agrees with the reference", "err", err)
	} else {
		log.Info("timestamp authority ready", "reference", cfg.TSAReference, "offset", off, "max_skew", cfg.TSAMaxSkew)
	}
	return func(ctx context.Context, body []byte) ([]byte, error) {
		tok, err := a.Stamp(ctx, body)
		if errors.Is(err, tsa.ErrSkew) || errors.Is(err, tsa.ErrReference) {
			return nil, fmt.Errorf("%w: %w", ledger.ErrClockSkew, err)
		}
		return tok, err
	}, nil
}

// givenChain returns the manifest chain in the node's configuration
// (manifest_chain, written by `cunzheng member add` for a member added
// after genesis), or the genesis alone; checked from the genesis
// fingerprint.
func givenChain(dir string, cfg *Config, fp evidence.Fingerprint, genesis []byte) ([]evidence.ManifestEntry, error) {
	if cfg.ManifestChain == "" {
		return evidence.CheckManifestChain(fp, [][]byte{genesis})
	}
	data, err := os.ReadFile(resolve(dir, cfg.ManifestChain))
	if err != nil {
		return nil, fmt.Errorf("read manifest chain: %w", err)
	}
	chain, err := evidence.ParseChainFile(data, fp)
	if err != nil {
		return nil, fmt.Errorf("manifest chain %s: %w", cfg.ManifestChain, err)
	}
	return chain, nil
}

// newestChain returns the longer of the given chain and the one the log
// holds; one must extend the other, as both come from the same network.
func newestChain(given []evidence.ManifestEntry, stored [][]byte, fp evidence.Fingerprint) ([]evidence.ManifestEntry, error) {
	fromLog, err := evidence.CheckManifestChain(fp, stored)
	if err != nil {
		return nil, fmt.Errorf("stored manifest chain: %w", err)
	}
	short, long := fromLog, given
	if len(given) < len(fromLog) {
		short, long = given, fromLog
	}
	for i := range short {
		if !bytes.Equal(short[i].Encoded, long[i].Encoded) {
			return nil, fmt.Errorf("the manifest chain in the configuration disagrees with this node's log at version %d", i+1)
		}
	}
	return long, nil
}

// noteVerifierKey returns the manifest's verifier key for signer's name and
// key hash, so a node started with another institution's key is refused.
func noteVerifierKey(m *evidence.Manifest, signer note.Signer) string {
	for _, mem := range m.Members {
		if v, err := note.NewVerifier(mem.NoteKey); err == nil && v.Name() == signer.Name() && v.KeyHash() == signer.KeyHash() {
			return mem.NoteKey
		}
	}
	return "\x00 no manifest key matches this node's checkpoint key"
}

// diskSpace keeps the node off a full disk: below headroom free bytes,
// submissions are refused (507) and resume once space returns.
type diskSpace struct {
	dir      string
	headroom uint64
}

func (d diskSpace) free() (uint64, bool) {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(d.dir, &fs); err != nil {
		return 0, true
	}
	free := fs.Bavail * uint64(fs.Bsize)
	return free, free < d.headroom
}

func (d diskSpace) check() error {
	if free, low := d.free(); low {
		return fmt.Errorf("%w: %d bytes free at %s, headroom is %d", ledger.ErrInsufficientDisk, free, d.dir, d.headroom)
	}
	return nil
}

// startWitness opens the witness role if the configuration names logs to
// witness: the log list, the witness key and its state under
// data_dir/witness (shared by every network this node directory serves,
// since a witness's word must never depend on which log it runs beside).
// It returns a nil handler when the node is not a witness.
func startWitness(dir string, cfg *Config, log *slog.Logger) (http.Handler, func(), error) {
	if cfg.WitnessLogs == "" {
		return nil, func() {}, nil
	}
	list, err := os.ReadFile(resolve(dir, cfg.WitnessLogs))
	if err != nil {
		return nil, nil, fmt.Errorf("read witness log list: %w", err)
	}
	logs, err := witness.ParseLogList(list)
	if err != nil {
		return nil, nil, fmt.Errorf("witness log list %s: %w", cfg.WitnessLogs, err)
	}
	keyFile, err := os.ReadFile(resolve(dir, cfg.WitnessKey))
	if err != nil {
		return nil, nil, fmt.Errorf("read witness key: %w", err)
	}
	priv, err := evidence.ParsePrivateKey(keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("witness key %s: %w", cfg.WitnessKey, err)
	}
	signer, err := checkpoint.NewCosignatureSigner(cfg.WitnessName, priv, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("witness_name: %w", err)
	}
	stateDir := filepath.Join(resolve(dir, cfg.DataDir), "witness")
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("witness state: %w", err)
	}
	state, err := witness.OpenPebbleState(stateDir)
	if err != nil {
		return nil, nil, err
	}
	srv, err := witness.NewServer(witness.Config{Logs: logs, Signer: signer, State: state, Logger: log})
	if err != nil {
		state.Close()
		return nil, nil, err
	}
	log.Info("witnessing other logs", "logs", len(logs), "witness_key", signer.Verifier().String())
	return srv, func() { state.Close() }, nil
}
