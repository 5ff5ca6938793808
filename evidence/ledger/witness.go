package ledger

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/cunzheng/cunzheng/chain/checkpoint"
	"github.com/cunzheng/cunzheng/evidence"
)

// External witnesses. Once the institutions' signatures on a tree meet the
// threshold, the collector sends the signed checkpoint with a consistency
// proof to every witness the manifest lists (C2SP tlog-witness), all at
// once and each bounded by WitnessTimeout, and adds the cosignature lines
// that verify under the witness's manifest key. The finalize entry is
// proposed only if every required witness cosigned; an optional witness
// that failed is simply absent, and is asked again with the next tree. A
// tree held back for a required witness is tried again every witnessRetry
// until the witness answers or a newer tree is final.

// AskWitnessFunc sends a signed checkpoint to the witness at url with a
// consistency proof from oldSize (proof returns it for any old size) and
// returns the witness's cosignature lines, and the size the witness is
// known to hold afterwards (-1 if unknown). The node fills it with
// chain/witness's client, so the ledger does no I/O of its own.
type AskWitnessFunc func(ctx context.Context, url string, oldSize int64,
	proof func(ctx context.Context, oldSize int64) (tlog.TreeProof, error), signed []byte) (cosigs []byte, witnessSize int64, err error)

// DefaultWitnessTimeout bounds one witness's answer (Config.WitnessTimeout).
const DefaultWitnessTimeout = 2 * time.Second

// witnessRetry is how soon a tree held back for a required witness is
// offered to the witnesses again.
const witnessRetry = 500 * time.Millisecond

// witnesses is the collector's view of the external witnesses.
type witnesses struct {
	ask     AskWitnessFunc
	timeout time.Duration
	mu      sync.Mutex
	sizes   map[string]int64 // witness key → size it last cosigned, as far as known
}

func (w *witnesses) size(key string) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sizes[key]
}

func (w *witnesses) setSize(key string, size int64) {
	if size < 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sizes[key] = size
}

// institutionsOnly is the policy without its witness requirement: what the
// collector checks before it asks the witnesses.
func institutionsOnly(p checkpoint.Policy) checkpoint.Policy {
	p.RequiredWitnesses = nil
	return p
}

// witnessCheckpoint returns signed with the manifest's witnesses'
// cosignatures added, or nil when a required witness did not cosign (a
// retry is then scheduled).
func (l *Ledger) witnessCheckpoint(ctx context.Context, size uint64, signed []byte) []byte {
	v := l.versionFor(size)
	if len(v.m.Witnesses) == 0 {
		return signed
	}
	lines := make([][]string, len(v.m.Witnesses))
	if l.wit.ask != nil {
		var wg sync.WaitGroup
		for i, w := range v.m.Witnesses {
			wg.Add(1)
			go func() {
				defer wg.Done()
				lines[i] = l.askWitness(ctx, w, size, signed)
			}()
		}
		wg.Wait()
	}
	body, sigs, _ := strings.Cut(string(signed), "\n\n")
	all := strings.SplitAfter(sigs, "\n")
	all = all[:len(all)-1] // SplitAfter leaves "" after the last newline
	for _, ls := range lines {
		all = append(all, ls...)
	}
	slices.Sort(all)
	out := []byte(body + "\n\n" + strings.Join(all, ""))
	if _, err := checkpoint.Open(out, v.policy); err != nil {
		l.log.Warn("checkpoint held back: a required witness did not cosign", "size", size, "err", err)
		time.AfterFunc(witnessRetry, func() {
			if ctx.Err() == nil {
				select {
				case l.quorum <- size:
				default:
				}
			}
		})
		return nil
	}
	return out
}

// askWitness asks one witness and returns its verified cosignature lines
// (none on any failure).
func (l *Ledger) askWitness(ctx context.Context, w evidence.Witness, size uint64, signed []byte) []string {
	verifier, err := checkpoint.NewCosignatureVerifier(w.Key)
	if err != nil {
		return nil // the manifest was validated; cannot happen
	}
	old := l.wit.size(w.Key)
	if old > int64(size) {
		return nil // the witness already cosigned a newer tree; ask again with a newer one
	}
	proof := func(_ context.Context, from int64) (tlog.TreeProof, error) {
		if from <= 0 || from > int64(size) {
			return nil, fmt.Errorf("no consistency proof from %d to %d", from, size)
		}
		return tlog.ProveTree(int64(size), from, l.st.HashReader())
	}
	cctx, cancel := context.WithTimeout(ctx, l.wit.timeout)
	defer cancel()
	cosigs, known, err := l.wit.ask(cctx, w.URL, old, proof, signed)
	l.wit.setSize(w.Key, known)
	if err != nil {
		l.log.Warn("witness did not cosign", "witness", w.Name(), "size", size, "err", err)
		return nil
	}
	n, err := note.Open(append(append([]byte(nil), signed...), cosigs...), note.VerifierList(verifier))
	if err != nil {
		l.log.Warn("witness answered with a bad cosignature", "witness", w.Name(), "size", size, "err", err)
		return nil
	}
	var out []string
	for _, s := range n.Sigs {
		out = append(out, "\u2014 "+s.Name+" "+s.Base64+"\n")
	}
	return out
}
