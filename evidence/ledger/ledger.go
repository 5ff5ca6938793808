// Package ledger is the evidence state machine of a cunzheng node: it
// accepts signed Submissions and governance entries, batches them into
// blocks, has the orderer commit each block, applies committed blocks to
// the log store (checking every entry again, so a replica never trusts the
// proposer), signs checkpoints, and hands back receipts.
//
// The order of one submission: Submit checks form, signature, registration
// and dedup → the sequencer cuts a block (by count or time) → the orderer
// commits it → Apply re-validates and writes it in one synced batch → the
// node signs the new checkpoint and, when the manifest's policy is met,
// stores it as final → Submit returns a receipt against that checkpoint.
package ledger

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/cunzheng/cunzheng/chain/store"
	"github.com/cunzheng/cunzheng/consensus"
	"github.com/cunzheng/cunzheng/evidence"
)

// Errors callers branch on (the API maps them to status codes).
var (
	ErrInvalid          = errors.New("ledger: invalid entry")
	ErrNotRegistered    = errors.New("ledger: submitter key is not registered")
	ErrRevoked          = errors.New("ledger: submitter key is revoked")
	ErrUnauthorized     = errors.New("ledger: signer is not an administrator of this network")
	ErrConflict         = errors.New("ledger: conflicts with the log")
	ErrNotFound         = errors.New("ledger: not found")
	ErrNotFinal         = errors.New("ledger: no final checkpoint covers this record yet")
	ErrClosed           = errors.New("ledger: closed")
	ErrInsufficientDisk = errors.New("ledger: not enough free disk space")
	ErrOverloaded       = errors.New("ledger: too many pending submissions")
	ErrNotLeader        = errors.New("ledger: not the leader")
	ErrSyncing          = errors.New("ledger: catching up with the network")
)

// Defaults for Config fields left zero.
const (
	DefaultBatchMaxRecords = 4096
	DefaultBatchInterval   = 2 * time.Millisecond
	DefaultMaxPending      = 100000
)

// BlockFetcher fetches committed blocks with their final checkpoints from
// other replicas, calling fn in height order from height from.
type BlockFetcher func(ctx context.Context, from uint64, fn func(height uint64, item []byte) error) error

// Config configures a Ledger. Zero values of optional fields take defaults.
type Config struct {
	Store      *store.Store
	Genesis    []byte           // canonical genesis manifest
	Signer     note.Signer      // this institution's checkpoint key
	Now        func() time.Time // nil = time.Now
	Logger     *slog.Logger     // nil = discard
	SpaceCheck func() error     // nil = no check; returns ErrInsufficientDisk-wrapping errors
	// SendCosignature delivers this replica's checkpoint signature to the
	// collector (the leader); nil = this replica collects itself.
	SendCosignature func(ctx context.Context, signed []byte) error
	// IsLeader reports whether this replica sequences blocks; nil = always.
	IsLeader func() bool
	// CaughtUp reports whether this replica has applied everything
	// committed; a new leader sequences only then, so its blocks extend
	// the real head (nil = always).
	CaughtUp func() bool
	// Forward hands a submission ("submission") or governance entry
	// ("governance") to the leader and returns its index once final there;
	// needed when IsLeader can be false.
	Forward func(ctx context.Context, kind string, payload []byte) (index uint64, existing bool, err error)
	// FetchBlocks pulls blocks from other replicas to catch up (block
	// sync); nil in a network of one.
	FetchBlocks BlockFetcher
	// NewOrderer starts the orderer that commits this replica's proposals
	// and applies committed entries to the FSM it is given (the ledger);
	// nil = consensus.NewSolo, a network of one.
	NewOrderer func(consensus.FSM) (consensus.Orderer, error)
	// Chain is the manifest chain this replica was given (genesis first,
	// then update entries), checked against Genesis; nil = genesis only.
	// It only lets a member that a later version added start before its
	// log holds that version: the versions in force come from the log.
	Chain [][]byte
	// OnManifest is called (on the applying goroutine; it must not block)
	// each time a manifest update takes force.
	OnManifest func(*evidence.Manifest)
	// AskWitness asks an external witness to cosign a checkpoint (see
	// witness.go); nil = witnesses are never asked, so a manifest that
	// requires one never has a final checkpoint.
	AskWitness AskWitnessFunc
	// WitnessTimeout bounds each witness's answer (0 = DefaultWitnessTimeout).
	WitnessTimeout time.Duration
	// Stamper is set on a time service's node: its RFC 3161 authority,
	// which stamps each final checkpoint body (nil = not a time service).
	Stamper Stamper
	// SendTimestamp delivers a timestamp entry payload to the leader
	// (AddTimestamp there); nil = this replica proposes it itself.
	SendTimestamp func(ctx context.Context, payload []byte) error
	// RestampInterval is how often an unchanged latest checkpoint is
	// stamped again for freshness (DefaultRestampInterval when zero).
	RestampInterval time.Duration
	// ReceiptDeadline bounds how long Submit waits for a final,
	// timestamped receipt once the record is durable here
	// (DefaultReceiptDeadline when zero).
	ReceiptDeadline time.Duration
	BatchMaxRecords int
	BatchInterval   time.Duration
	MaxPending      int
}

// Ledger is one replica's evidence state machine. Its methods are safe for
// concurrent use.
type Ledger struct {
	st     *store.Store
	origin string // the same in every manifest version
	fp     evidence.Fingerprint
	// versions is the manifest chain as far as the log goes.
	versions   atomic.Pointer[[]*version]
	onManifest func(*evidence.Manifest)
	signer     note.Signer
	now        func() time.Time
	log        *slog.Logger
	space      func() error
	orderer    consensus.Orderer
	maxBatch   int
	interval   time.Duration

	queue chan *pending

	mu      sync.Mutex
	inQueue map[string]*pending // dedup key → queued entry, so concurrent twins share one record

	// cacheMu guards proposed and the caches below, which mirror applied
	// state and are updated only after the store has synced it.
	cacheMu sync.RWMutex
	// proposed holds the index writes the sequencer computed for the block
	// it is proposing, so Apply of that same block (header hash) need not
	// repeat the checks.
	proposed struct {
		hash [32]byte
		kvs  []storeKV
	}
	submitters  map[string]byte // submitter key → registry state (absent = look in store)
	final       finalCache
	finalNotify chan struct{} // closed and replaced when a final checkpoint or token is applied
	// appliedNotify is closed and replaced when a block is applied.
	appliedNotify chan struct{}
	alarms        []alarmEntry

	// Finality: signatures gathered per tree size (sigMu), the newest size
	// with a quorum handed to the finalizer.
	sigMu       sync.Mutex
	sigs        map[uint64]map[string]string // size → signer name → signature line
	quorum      chan uint64
	headChanged chan struct{}
	sendCosig   func(ctx context.Context, signed []byte) error
	isLeader    func() bool
	caughtUp    func() bool
	forward     func(ctx context.Context, kind string, payload []byte) (uint64, bool, error)
	syncingFlag atomic.Bool
	fetch       BlockFetcher
	wit         witnesses
	// Trusted time (timestamps.go). stampedSize and stampedAt, the latest
	// stamped checkpoint and when, are guarded by cacheMu.
	stamper       Stamper
	sendTimestamp func(ctx context.Context, payload []byte) error
	restamp       time.Duration
	deadline      time.Duration
	stampedSize   uint64
	stampedAt     time.Time
	// applyMu orders applying (writer) against checking proposals (readers).
	applyMu sync.RWMutex
	wg      sync.WaitGroup

	cancel context.CancelFunc
	done   chan struct{}
}

// pending is one entry waiting for its block to become final.
type pending struct {
	typ      evidence.EntryType
	sub      *evidence.Submission
	subBytes []byte
	gov      *evidence.Governance
	govBytes []byte
	next     *evidence.Manifest // a manifest update's next version, set by admit
	key      string             // dedup key in the store's index namespace
	done     chan struct{}
	index    uint64
	err      error
}

// isMemberKey reports whether signer is the checkpoint key of a member of
// m, of any role.
func isMemberKey(m *evidence.Manifest, signer note.Signer) bool {
	for _, mem := range m.Members {
		if v, err := note.NewVerifier(mem.NoteKey); err == nil && v.Name() == signer.Name() && v.KeyHash() == signer.KeyHash() {
			return true
		}
	}
	return false
}

// Open starts a ledger over an opened store.
func Open(cfg Config) (*Ledger, error) {
	m, err := evidence.ParseManifest(cfg.Genesis)
	if err != nil {
		return nil, fmt.Errorf("ledger: genesis: %w", err)
	}
	if cfg.Store == nil || cfg.Signer == nil {
		return nil, errors.New("ledger: Store and Signer are required")
	}
	fp := evidence.Fingerprint(sha256.Sum256(cfg.Genesis))
	versions, err := loadVersions(cfg.Store, m, cfg.Genesis)
	if err != nil {
		return nil, err
	}
	// The signer must be a voting member of the newest version known: the
	// log's, or the chain this replica was given if that is longer.
	newest := versions[len(versions)-1].m
	if len(cfg.Chain) > len(versions) {
		given, err := evidence.CheckManifestChain(fp, cfg.Chain)
		if err != nil {
			return nil, fmt.Errorf("ledger: manifest chain: %w", err)
		}
		newest = given[len(given)-1].Manifest
	}
	// Voting members sign checkpoints with this key; an observer's node
	// replicates and serves proofs but never signs.
	if !isMemberKey(newest, cfg.Signer) {
		return nil, fmt.Errorf("ledger: checkpoint key %q is not a member's key in the manifest (version %d)", cfg.Signer.Name(), newest.Sequence)
	}
	l := &Ledger{
		st: cfg.Store, origin: m.Origin, fp: fp,
		onManifest:    cfg.OnManifest,
		signer:        cfg.Signer,
		now:           cfg.Now,
		log:           cfg.Logger,
		space:         cfg.SpaceCheck,
		maxBatch:      cfg.BatchMaxRecords,
		interval:      cfg.BatchInterval,
		inQueue:       map[string]*pending{},
		submitters:    map[string]byte{},
		done:          make(chan struct{}),
		sigs:          map[uint64]map[string]string{},
		quorum:        make(chan uint64, 1),
		headChanged:   make(chan struct{}, 1),
		finalNotify:   make(chan struct{}),
		appliedNotify: make(chan struct{}),
		sendCosig:     cfg.SendCosignature,
		isLeader:      cfg.IsLeader,
		caughtUp:      cfg.CaughtUp,
		forward:       cfg.Forward,
		fetch:         cfg.FetchBlocks,
		stamper:       cfg.Stamper,
		sendTimestamp: cfg.SendTimestamp,
		restamp:       cfg.RestampInterval,
		wit:           witnesses{ask: cfg.AskWitness, timeout: cfg.WitnessTimeout, sizes: map[string]int64{}},
	}
	if l.wit.timeout <= 0 {
		l.wit.timeout = DefaultWitnessTimeout
	}
	if l.deadline = cfg.ReceiptDeadline; l.deadline <= 0 {
		l.deadline = DefaultReceiptDeadline
	}
	if l.restamp <= 0 {
		l.restamp = DefaultRestampInterval
	}
	l.versions.Store(&versions)
	if l.now == nil {
		l.now = time.Now
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if l.maxBatch <= 0 {
		l.maxBatch = DefaultBatchMaxRecords
	}
	if l.interval <= 0 {
		l.interval = DefaultBatchInterval
	}
	maxPending := cfg.MaxPending
	if maxPending <= 0 {
		maxPending = DefaultMaxPending
	}
	l.queue = make(chan *pending, maxPending)
	if size, signed, err := l.st.LatestCheckpoint(); err == nil {
		l.final = finalCache{size: size, signed: signed}
		// With prevSize = size the cache covers no index yet: covering()
		// consults the store until the next final checkpoint arrives.
		l.final.prevSize = size
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if _, syncing, err := l.st.SyncTarget(); err != nil {
		return nil, err
	} else if syncing {
		// A block sync was interrupted: neither sign nor serve until
		// ResumeSync finishes it.
		l.syncingFlag.Store(true)
	}
	// The orderer starts last: it may apply entries at once.
	if cfg.NewOrderer != nil {
		if l.orderer, err = cfg.NewOrderer(l); err != nil {
			return nil, fmt.Errorf("ledger: start orderer: %w", err)
		}
	} else {
		l.orderer = consensus.NewSolo(l)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	l.wg.Add(2)
	go l.signTrees(ctx)
	go l.finalizeTrees(ctx)
	if l.stamper != nil {
		// A restart does not re-stamp a checkpoint that already has a
		// token until the freshness interval is up.
		if tok, err := l.FirstToken(l.final.size); err == nil && tok != nil {
			l.stampedSize, l.stampedAt = l.final.size, l.now()
		}
		l.wg.Add(1)
		go l.stampCheckpoints(ctx)
	}
	// A crash between applying a block and finalizing it leaves a head
	// without a final checkpoint; sign it again now.
	l.kickSigner()
	go l.sequence(ctx)
	return l, nil
}

// Close stops the sequencer; queued entries fail with ErrClosed. The store
// stays open (its owner closes it).
func (l *Ledger) Close() error {
	l.cancel()
	<-l.done
	l.wg.Wait()
	return l.orderer.Close()
}

// syncing reports whether the replica is catching up (block sync); it then
// neither signs nor serves.
func (l *Ledger) syncing() bool { return l.syncingFlag.Load() }

// Syncing reports whether the replica is catching up by block sync; while
// it is, it neither signs checkpoints nor serves reads.
func (l *Ledger) Syncing() bool { return l.syncing() }

// Manifest returns the newest manifest version in the log.
func (l *Ledger) Manifest() *evidence.Manifest { return l.current().m }

// Fingerprint returns the genesis fingerprint.
func (l *Ledger) Fingerprint() evidence.Fingerprint { return l.fp }

// Manifests returns the manifest chain as far as the log goes: the
// canonical genesis manifest, then each update's governance entry.
func (l *Ledger) Manifests() [][]byte {
	c := l.chain()
	out := make([][]byte, len(c))
	for i, v := range c {
		out[i] = v.enc
	}
	return out
}

// Store returns the log store (read access for the API).
func (l *Ledger) Store() *store.Store { return l.st }

// Submit preserves a signed Submission and returns its index once a final
// checkpoint covers it. Re-submitting an already preserved (submitter,
// digest) returns the existing index with existing == true.
func (l *Ledger) Submit(ctx context.Context, subBytes []byte) (index uint64, existing bool, err error) {
	p, err := l.Prepare(subBytes)
	if err != nil {
		return 0, false, err
	}
	return l.SubmitPrepared(ctx, p)
}

// SubmitGovernance applies a signed governance entry and returns its index
// once final. An identical entry already in the log returns its index.
func (l *Ledger) SubmitGovernance(ctx context.Context, entry []byte) (index uint64, existing bool, err error) {
	return l.submitGovernance(ctx, entry, fromClient)
}

// SubmitGovernanceHere takes a governance entry another replica forwarded:
// it never forwards again and returns once the entry is committed (the
// asking replica waits for finality itself).
func (l *Ledger) SubmitGovernanceHere(ctx context.Context, entry []byte) (uint64, bool, error) {
	return l.submitGovernance(ctx, entry, fromReplica)
}

// arrival says where an entry came from.
type arrival int

const (
	// fromClient: may be forwarded to the leader; returns once final.
	fromClient arrival = iota
	// fromReplica: forwarded by another replica; never forwarded again,
	// returns once committed.
	fromReplica
)

func (l *Ledger) submitGovernance(ctx context.Context, entry []byte, from arrival) (uint64, bool, error) {
	g, err := evidence.ParseGovernance(entry)
	if err != nil {
		return 0, false, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := l.checkGovernance(g, nil); err != nil {
		return 0, false, err
	}
	return l.submitEntry(ctx, &pending{typ: evidence.EntryGovernance, gov: g, govBytes: entry, key: governanceDedupKey(g, entry)}, "governance", entry, from)
}

// submitEntry returns the index of an already committed twin, forwards to
// the leader, or queues the entry for the next block, then waits as from
// says.
func (l *Ledger) submitEntry(ctx context.Context, p *pending, kind string, payload []byte, from arrival) (uint64, bool, error) {
	idx, existing, err := l.committedIndex(p.key)
	switch {
	case err != nil:
		return 0, false, err
	case existing:
	case !l.leader() && from == fromReplica:
		return 0, false, fmt.Errorf("%w: this replica is not the leader", ErrNotLeader)
	case !l.leader() && l.forward == nil:
		return 0, false, fmt.Errorf("%w: this replica is not the leader", ErrNotLeader)
	case !l.leader():
		idx, existing, err = l.forward(ctx, kind, payload)
	default:
		idx, existing, err = l.enqueueWait(ctx, p)
	}
	if err != nil || from == fromReplica {
		return idx, existing, err
	}
	return idx, existing, l.waitReceipt(ctx, idx)
}

// DefaultReceiptDeadline is how long a submit waits for its final,
// timestamped receipt before answering with a committed one.
const DefaultReceiptDeadline = 2 * time.Second

// waitReceipt waits, within ctx, until record idx is applied and synced
// here, then up to the receipt deadline for a final checkpoint covering it
// and, where the manifest lists a time service, that checkpoint's token.
// Past the deadline, or when ctx ends after the record is durable here, it
// returns nil all the same: the caller answers with what there is
// (ReceiptNow: final, or committed).
func (l *Ledger) waitReceipt(ctx context.Context, idx uint64) error {
	if err := l.waitUntil(ctx, &l.appliedNotify, func() bool { return idx < l.st.TreeSize() }); err != nil {
		return fmt.Errorf("record %d is committed but not yet applied here; retry for its receipt: %w", idx, err)
	}
	dctx, cancel := context.WithTimeout(ctx, l.deadline)
	defer cancel()
	l.waitUntil(dctx, &l.finalNotify, func() bool {
		if idx >= l.finalSize() {
			return false // cheap: thousands of waiters may re-check
		}
		size, _, err := l.covering(idx)
		if err != nil {
			return false
		}
		if !l.NeedsTimestamp(size) {
			return true
		}
		tok, err := l.FirstToken(size)
		return err != nil || tok != nil
	})
	return nil // durable here; the caller answers with the best receipt there is
}

// waitUntil waits until cond holds, re-checking whenever *notify (one of
// appliedNotify or finalNotify) is closed.
func (l *Ledger) waitUntil(ctx context.Context, notify *chan struct{}, cond func() bool) error {
	for {
		l.cacheMu.RLock()
		ch := *notify
		l.cacheMu.RUnlock()
		if cond() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// leader reports whether this replica sequences blocks.
func (l *Ledger) leader() bool { return l.isLeader == nil || l.isLeader() }

func (l *Ledger) enqueueWait(ctx context.Context, p *pending) (uint64, bool, error) {
	if l.space != nil {
		if err := l.space(); err != nil {
			return 0, false, err
		}
	}
	l.mu.Lock()
	if twin, ok := l.inQueue[p.key]; ok {
		l.mu.Unlock()
		return l.wait(ctx, twin)
	}
	p.done = make(chan struct{})
	select {
	case l.queue <- p:
		l.inQueue[p.key] = p
		l.mu.Unlock()
	default:
		l.mu.Unlock()
		return 0, false, ErrOverloaded
	}
	return l.wait(ctx, p)
}

func (l *Ledger) wait(ctx context.Context, p *pending) (uint64, bool, error) {
	select {
	case <-p.done:
		return p.index, false, p.err
	case <-ctx.Done():
		// The entry may still be preserved; a retry returns it.
		return 0, false, ctx.Err()
	}
}

func (l *Ledger) committedIndex(key string) (uint64, bool, error) {
	v, err := l.st.Get([]byte(key))
	if errors.Is(err, store.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	idx, err := store.DecodeIndex(v)
	return idx, err == nil, err
}

// Prepared is a Submission that passed every check that does not depend on
// the order of the log: form, signature and the submitter's registration.
type Prepared struct {
	sub   *evidence.Submission
	bytes []byte
}

// Prepare parses and checks a Submission without submitting it. Batches are
// prepared whole before any of them is submitted, so a bad item changes
// nothing.
func (l *Ledger) Prepare(subBytes []byte) (*Prepared, error) {
	sub, err := evidence.ParseSubmission(subBytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := sub.Verify(l.origin); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := l.submitterAllowed(sub.Submitter, nil); err != nil {
		return nil, err
	}
	return &Prepared{sub: sub, bytes: subBytes}, nil
}

// SubmitPrepared preserves a prepared Submission; see Submit.
func (l *Ledger) SubmitPrepared(ctx context.Context, p *Prepared) (index uint64, existing bool, err error) {
	return l.submitEntry(ctx, &pending{typ: evidence.EntryEvidence, sub: p.sub, subBytes: p.bytes, key: evidenceDedupKey(p.sub)}, "submission", p.bytes, fromClient)
}

// SubmitHere takes a submission another replica forwarded: it never
// forwards again and returns once the record is committed (the asking
// replica waits for finality itself).
func (l *Ledger) SubmitHere(ctx context.Context, subBytes []byte) (uint64, bool, error) {
	p, err := l.Prepare(subBytes)
	if err != nil {
		return 0, false, err
	}
	return l.submitEntry(ctx, &pending{typ: evidence.EntryEvidence, sub: p.sub, subBytes: p.bytes, key: evidenceDedupKey(p.sub)}, "submission", p.bytes, fromReplica)
}
