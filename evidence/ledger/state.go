package ledger

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"

	"github.com/cunzheng/cunzheng/chain/store"
	"github.com/cunzheng/cunzheng/evidence"
)

// Submitter registry values: one state byte then the 8-byte index of the
// governance entry that set it.
const (
	stateRegistered byte = 1
	stateRevoked    byte = 2
)

// overlay holds index writes of a block being built or applied, so entries
// later in a block see the effect of earlier ones before anything is stored.
type overlay map[string][]byte

func evidenceDedupKey(sub *evidence.Submission) string {
	return string(store.DedupKey(sha256.Sum256(sub.Submitter.Key), sub.Primary()))
}

func governanceDedupKey(g *evidence.Governance, entry []byte) string {
	h := sha256.Sum256(entry)
	return string(store.DedupKey(sha256.Sum256(g.Admin.Key), h[:]))
}

// get reads key from the overlay, then from the store.
func (l *Ledger) get(ov overlay, key string) ([]byte, bool, error) {
	if v, ok := ov[key]; ok {
		return v, true, nil
	}
	v, err := l.st.Get([]byte(key))
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, nil
	}
	return v, err == nil, err
}

func (l *Ledger) submitterState(ov overlay, k evidence.PublicKey) (byte, error) {
	key := string(store.SubmitterKey(k.Key))
	if v, ok := ov[key]; ok {
		return v[0], nil
	}
	l.cacheMu.RLock()
	st, ok := l.submitters[key]
	l.cacheMu.RUnlock()
	if ok {
		return st, nil
	}
	v, ok, err := l.get(nil, key)
	if err != nil {
		return 0, err
	}
	if ok {
		if len(v) != 9 {
			return 0, fmt.Errorf("ledger: corrupt submitter state")
		}
		st = v[0]
	}
	// Cache unregistered keys too: a registration updates the cache after
	// it is applied (see cacheApplied).
	l.cacheMu.Lock()
	if len(l.submitters) > maxCachedSubmitters {
		clear(l.submitters)
	}
	l.submitters[key] = st
	l.cacheMu.Unlock()
	return st, nil
}

// maxCachedSubmitters bounds the registry cache (unregistered keys sent by
// anyone are cached too).
const maxCachedSubmitters = 100000

// cacheApplied updates the caches with the writes of a block the store has
// just made durable.
func (l *Ledger) cacheApplied(kvs []storeKV) {
	prefix := string(store.SubmitterPrefix())
	l.cacheMu.Lock()
	for _, kv := range kvs {
		if k := string(kv.Key); strings.HasPrefix(k, prefix) {
			l.submitters[k] = kv.Value[0]
		}
	}
	l.cacheMu.Unlock()
	l.installVersions(kvs)
}

func (l *Ledger) submitterAllowed(k evidence.PublicKey, ov overlay) error {
	st, err := l.submitterState(ov, k)
	if err != nil {
		return err
	}
	switch st {
	case stateRegistered:
		return nil
	case stateRevoked:
		return ErrRevoked
	}
	return ErrNotRegistered
}

// checkGovernance checks a governance entry's signature, signer and effect
// against the registry (with ov applied).
func (l *Ledger) checkGovernance(g *evidence.Governance, ov overlay) error {
	if g.Action == evidence.ActionManifestUpdate {
		_, err := l.checkUpdate(g, ov)
		return err
	}
	if err := g.Verify(l.origin); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if !l.current().m.IsAdmin(g.Admin) {
		return ErrUnauthorized
	}
	st, err := l.submitterState(ov, g.Subject)
	if err != nil {
		return err
	}
	switch {
	case g.Action == evidence.ActionRegisterSubmitter && st == stateRegistered:
		return fmt.Errorf("%w: submitter key is already registered", ErrConflict)
	case g.Action == evidence.ActionRegisterSubmitter && st == stateRevoked:
		return fmt.Errorf("%w: a revoked submitter key cannot be registered again; issue a new key", ErrConflict)
	case g.Action == evidence.ActionRevokeSubmitter && st != stateRegistered:
		return fmt.Errorf("%w: submitter key is not registered", ErrConflict)
	}
	return nil
}

// entryWrites returns the index writes of one entry at index.
func entryWrites(p *pending, index uint64) []store.KV {
	kvs := []store.KV{{Key: []byte(p.key), Value: store.EncodeIndex(index)}}
	switch p.typ {
	case evidence.EntryEvidence:
		kvs = append(kvs, store.KV{Key: store.DigestKey(p.sub.Primary(), index), Value: nil})
	case evidence.EntryGovernance:
		if p.gov.Action == evidence.ActionManifestUpdate {
			kvs = append(kvs, store.KV{Key: store.ManifestKey(p.next.Sequence), Value: encodeManifestValue(index, p.govBytes)})
			break
		}
		state := stateRegistered
		if p.gov.Action == evidence.ActionRevokeSubmitter {
			state = stateRevoked
		}
		kvs = append(kvs, store.KV{Key: store.SubmitterKey(p.gov.Subject.Key), Value: append([]byte{state}, store.EncodeIndex(index)...)})
	}
	return kvs
}

// admit checks one entry against the log and the block so far (ov), and
// records its writes in ov. It is the single rule both the sequencer (to
// leave bad entries out) and Apply (to reject bad blocks) use.
func (l *Ledger) admit(p *pending, index uint64, ov overlay, kvs *[]store.KV) error {
	if _, dup, err := l.get(ov, p.key); err != nil {
		return err
	} else if dup {
		return fmt.Errorf("%w: duplicate record", ErrConflict)
	}
	switch p.typ {
	case evidence.EntryEvidence:
		if err := l.submitterAllowed(p.sub.Submitter, ov); err != nil {
			return err
		}
	case evidence.EntryGovernance:
		if p.gov.Action == evidence.ActionManifestUpdate {
			next, err := l.checkUpdate(p.gov, ov)
			if err != nil {
				return err
			}
			p.next = next
		} else if err := l.checkGovernance(p.gov, ov); err != nil {
			return err
		}
	}
	for _, kv := range entryWrites(p, index) {
		ov[string(kv.Key)] = kv.Value
		*kvs = append(*kvs, kv)
	}
	return nil
}
