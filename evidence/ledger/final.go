package ledger

import (
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/cunzheng/cunzheng/chain/checkpoint"
	"github.com/cunzheng/cunzheng/chain/store"
	"github.com/cunzheng/cunzheng/evidence"
)

// finalCache remembers the latest final checkpoint, which covers every
// record of the newest block: the receipts handed out right after a commit
// need no store lookup for it.
type finalCache struct {
	prevSize, size uint64 // the final checkpoint of size covers [prevSize, size)
	signed         []byte
	token          []byte // its first timestamp token, once committed
}

// covering returns the first final checkpoint with size > index.
func (l *Ledger) covering(index uint64) (uint64, []byte, error) {
	l.cacheMu.RLock()
	f := l.final
	l.cacheMu.RUnlock()
	if f.signed != nil && index >= f.prevSize && index < f.size {
		return f.size, f.signed, nil
	}
	return l.st.CheckpointCovering(index)
}

// Record is a preserved entry with its proof against the first final
// checkpoint that covers it, so every replica hands out the same bytes.
type Record struct {
	Index          uint64
	Leaf           []byte
	Submission     []byte // set by Receipt only; nil for governance entries
	CheckpointSize uint64
	Checkpoint     []byte // signed note
	Proof          []byte // C2SP tlog-proof@v1 text
}

// Record returns entry index with its proof, or ErrNotFound / ErrNotFinal.
func (l *Ledger) Record(index uint64) (*Record, error) {
	return l.record(index, l.st.HashReader())
}

// memoHashes remembers hashes read for one request: the receipts of a batch
// share most of their inclusion proofs.
type memoHashes struct {
	r    tlog.HashReader
	seen map[int64]tlog.Hash
}

func (m *memoHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var missing []int64
	for _, x := range indexes {
		if _, ok := m.seen[x]; !ok {
			missing = append(missing, x)
		}
	}
	if len(missing) > 0 {
		hs, err := m.r.ReadHashes(missing)
		if err != nil {
			return nil, err
		}
		for i, x := range missing {
			m.seen[x] = hs[i]
		}
	}
	for i, x := range indexes {
		out[i] = m.seen[x]
	}
	return out, nil
}

func (l *Ledger) record(index uint64, hr tlog.HashReader) (*Record, error) {
	if index >= l.st.TreeSize() {
		return nil, fmt.Errorf("%w: no record %d (log size %d)", ErrNotFound, index, l.st.TreeSize())
	}
	size, signed, err := l.covering(index)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNotFinal
	}
	if err != nil {
		return nil, err
	}
	leaf, err := l.st.Leaf(index)
	if err != nil {
		return nil, err
	}
	hashes, err := tlog.ProveRecord(int64(size), int64(index), hr)
	if err != nil {
		return nil, fmt.Errorf("inclusion proof %d in %d: %w", index, size, err)
	}
	p := checkpoint.Proof{Index: int64(index), Hashes: hashes, Checkpoint: signed}
	return &Record{Index: index, Leaf: leaf, CheckpointSize: size, Checkpoint: signed, Proof: p.Format()}, nil
}

// Receipt returns the receipt of evidence record index, without an opening
// (only the submitter holds that).
func (l *Ledger) Receipt(index uint64) (*evidence.Receipt, error) {
	return l.receipt(index, l.st.HashReader())
}

// Receipts returns the receipts of several records, sharing the tree reads
// their proofs have in common.
func (l *Ledger) Receipts(indexes []uint64) ([]*evidence.Receipt, error) {
	hr := &memoHashes{r: l.st.HashReader(), seen: map[int64]tlog.Hash{}}
	out := make([]*evidence.Receipt, len(indexes))
	for i, idx := range indexes {
		rc, err := l.receipt(idx, hr)
		if err != nil {
			return nil, err
		}
		out[i] = rc
	}
	return out, nil
}

func (l *Ledger) receipt(index uint64, hr tlog.HashReader) (*evidence.Receipt, error) {
	rec, err := l.record(index, hr)
	if err != nil {
		return nil, err
	}
	// Submissions live beside the log and name the submitter: only
	// receipts read them.
	if rec.Submission, err = l.st.Sidecar(index); err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if len(rec.Submission) == 0 {
		return nil, fmt.Errorf("%w: record %d is a governance entry, not evidence", ErrNotFound, index)
	}
	rc := &evidence.Receipt{
		Network: l.fp, Manifests: l.ManifestsFor(rec.CheckpointSize), Submission: rec.Submission,
		Leaf: rec.Leaf, Proof: rec.Proof,
	}
	tok, err := l.FirstToken(rec.CheckpointSize)
	if err != nil {
		return nil, err
	}
	if tok != nil {
		rc.Timestamps = [][]byte{tok}
	}
	return rc, nil
}

// LookupDigest returns the indexes of evidence records whose primary
// (SHA-256) digest is digest, in log order.
func (l *Ledger) LookupDigest(digest []byte) ([]uint64, error) {
	if len(digest) != 32 {
		return nil, fmt.Errorf("%w: a sha256 digest is 32 bytes", ErrInvalid)
	}
	var out []uint64
	err := l.st.ScanPrefix(store.DigestPrefix(digest), func(key, _ []byte) error {
		idx, err := store.DigestKeyIndex(key)
		out = append(out, idx)
		return err
	})
	return out, err
}

// CommittedReceipt returns the committed receipt of evidence record index:
// durable and committed, no final checkpoint yet, so no proof; `cunzheng
// receipt refresh` later fetches the final one.
func (l *Ledger) CommittedReceipt(index uint64) (*evidence.Receipt, error) {
	if index >= l.st.TreeSize() {
		return nil, fmt.Errorf("%w: no record %d (log size %d)", ErrNotFound, index, l.st.TreeSize())
	}
	leaf, err := l.st.Leaf(index)
	if err != nil {
		return nil, err
	}
	sub, err := l.st.Sidecar(index)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if len(sub) == 0 {
		return nil, fmt.Errorf("%w: record %d is a governance entry, not evidence", ErrNotFound, index)
	}
	return &evidence.Receipt{
		Network: l.fp, Manifests: l.ManifestsFor(index + 1), Submission: sub, Leaf: leaf, Committed: &index,
	}, nil
}

// ReceiptNow returns the best receipt there is for record index: final
// (with its token when one is committed), else committed.
func (l *Ledger) ReceiptNow(index uint64) (rc *evidence.Receipt, final bool, err error) {
	rc, err = l.Receipt(index)
	if errors.Is(err, ErrNotFinal) {
		rc, err = l.CommittedReceipt(index)
		return rc, false, err
	}
	return rc, err == nil, err
}
