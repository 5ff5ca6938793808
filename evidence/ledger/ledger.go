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
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/cunzheng/cunzheng/chain/checkpoint"
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
)

// Defaults for Config fields left zero.
const (
	DefaultBatchMaxRecords = 4096
	DefaultBatchInterval   = 2 * time.Millisecond
	DefaultMaxPending      = 100000
)

// Config configures a Ledger. Zero values of optional fields take defaults.
type Config struct {
	Store           *store.Store
	Genesis         []byte                                // canonical genesis manifest
	Signer          note.Signer                           // this institution's checkpoint key
	Now             func() time.Time                      // nil = time.Now
	Logger          *slog.Logger                          // nil = discard
	SpaceCheck      func() error                          // nil = no check; returns ErrInsufficientDisk-wrapping errors
	NewOrderer      func(consensus.FSM) consensus.Orderer // nil = consensus.NewSolo
	BatchMaxRecords int
	BatchInterval   time.Duration
	MaxPending      int
}

// Ledger is one replica's evidence state machine. Its methods are safe for
// concurrent use.
type Ledger struct {
	st       *store.Store
	manifest *evidence.Manifest
	genesis  []byte
	fp       evidence.Fingerprint
	policy   checkpoint.Policy
	signer   note.Signer
	now      func() time.Time
	log      *slog.Logger
	space    func() error
	orderer  consensus.Orderer
	maxBatch int
	interval time.Duration

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
	submitters map[string]byte // submitter key → registry state (absent = look in store)
	final      finalCache

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
	key      string // dedup key in the store's index namespace
	done     chan struct{}
	index    uint64
	err      error
}

// Open starts a ledger over an opened store.
func Open(cfg Config) (*Ledger, error) {
	m, err := evidence.ParseManifest(cfg.Genesis)
	if err != nil {
		return nil, fmt.Errorf("ledger: genesis: %w", err)
	}
	vs, err := m.Verifiers()
	if err != nil {
		return nil, err
	}
	if cfg.Store == nil || cfg.Signer == nil {
		return nil, errors.New("ledger: Store and Signer are required")
	}
	if _, err := vs.Verifier(cfg.Signer.Name(), cfg.Signer.KeyHash()); err != nil {
		return nil, fmt.Errorf("ledger: checkpoint key %q is not a voting member's key in the manifest", cfg.Signer.Name())
	}
	l := &Ledger{
		st: cfg.Store, manifest: m, genesis: cfg.Genesis, fp: sha256.Sum256(cfg.Genesis),
		policy:     checkpoint.Policy{Origin: m.Origin, Verifiers: vs, Threshold: int(m.Threshold)},
		signer:     cfg.Signer,
		now:        cfg.Now,
		log:        cfg.Logger,
		space:      cfg.SpaceCheck,
		maxBatch:   cfg.BatchMaxRecords,
		interval:   cfg.BatchInterval,
		inQueue:    map[string]*pending{},
		submitters: map[string]byte{},
		done:       make(chan struct{}),
	}
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
	if cfg.NewOrderer != nil {
		l.orderer = cfg.NewOrderer(l)
	} else {
		l.orderer = consensus.NewSolo(l)
	}
	// A crash between applying a block and storing its checkpoint leaves a
	// head without a final checkpoint; finish that work before serving.
	if err := l.finalizeHead(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	go l.sequence(ctx)
	return l, nil
}

// Close stops the sequencer; queued entries fail with ErrClosed. The store
// stays open (its owner closes it).
func (l *Ledger) Close() error {
	l.cancel()
	<-l.done
	return l.orderer.Close()
}

// Manifest returns the manifest in force.
func (l *Ledger) Manifest() *evidence.Manifest { return l.manifest }

// Fingerprint returns the genesis fingerprint.
func (l *Ledger) Fingerprint() evidence.Fingerprint { return l.fp }

// Manifests returns the canonical manifest chain from genesis.
func (l *Ledger) Manifests() [][]byte { return [][]byte{l.genesis} }

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
	g, err := evidence.ParseGovernance(entry)
	if err != nil {
		return 0, false, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := l.checkGovernance(g, nil); err != nil {
		return 0, false, err
	}
	key := governanceDedupKey(g, entry)
	if idx, ok, err := l.committedIndex(key); err != nil || ok {
		return idx, ok, err
	}
	return l.enqueue(ctx, &pending{typ: evidence.EntryGovernance, gov: g, govBytes: entry, key: key})
}

func (l *Ledger) enqueue(ctx context.Context, p *pending) (uint64, bool, error) {
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
	if err := sub.Verify(l.manifest.Origin); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := l.submitterAllowed(sub.Submitter, nil); err != nil {
		return nil, err
	}
	return &Prepared{sub: sub, bytes: subBytes}, nil
}

// SubmitPrepared preserves a prepared Submission; see Submit.
func (l *Ledger) SubmitPrepared(ctx context.Context, p *Prepared) (index uint64, existing bool, err error) {
	key := evidenceDedupKey(p.sub)
	if idx, ok, err := l.committedIndex(key); err != nil || ok {
		return idx, ok, err
	}
	return l.enqueue(ctx, &pending{typ: evidence.EntryEvidence, sub: p.sub, subBytes: p.bytes, key: key})
}
