package testnet

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/cunzheng/cunzheng/chain/checkpoint"
	"github.com/cunzheng/cunzheng/evidence"
	"github.com/cunzheng/cunzheng/evidence/verify"
)

// TestCrashSIGKILL kills the node with SIGKILL at random moments while
// clients submit concurrently, restarts it, and checks after every round:
// every acknowledged record verifies and is still in the log exactly once,
// every checkpoint ever published is consistent with the current one, and
// the log never shrank.
func TestCrashSIGKILL(t *testing.T) {
	rounds := 20
	if os.Getenv("CUNZHENG_SOAK") != "" {
		rounds = 200
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	n := initNetwork(t, t.TempDir())
	p := startNode(t, n)
	key := registerSubmitter(t, n, p.client(t))

	type ack struct {
		digest  [32]byte
		sub     []byte
		index   uint64
		receipt []byte
	}
	var acks []ack
	var seen [][]byte // every checkpoint observed
	var maxSize uint64
	next := 0
	for round := 0; round < rounds; round++ {
		c := p.client(t)
		var mu sync.Mutex
		var newAcks []ack
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for w := 0; w < 6; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 2000 && ctx.Err() == nil; i++ {
					mu.Lock()
					next++
					file := fmt.Appendf(nil, "crash test evidence %d", next)
					mu.Unlock()
					sub, d := presign(t, n.origin, key, file)
					resp, err := c.Submit(ctx, sub)
					if err != nil {
						return // the node is gone
					}
					mu.Lock()
					newAcks = append(newAcks, ack{d, sub, resp.Index, []byte(resp.Receipt)})
					mu.Unlock()
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if cp, err := c.Checkpoint(ctx); err == nil {
					mu.Lock()
					seen = append(seen, cp)
					mu.Unlock()
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
		time.Sleep(time.Duration(20+rng.IntN(250)) * time.Millisecond)
		p.kill()
		cancel()
		wg.Wait()
		acks = append(acks, newAcks...)

		p = startNode(t, n)
		c = p.client(t)
		st, err := c.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.TreeSize < maxSize {
			t.Fatalf("round %d: log shrank from %d to %d", round, maxSize, st.TreeSize)
		}
		maxSize = st.TreeSize
		cur := mustOpen(t, n, []byte(st.Checkpoint))
		for _, a := range newAcks {
			if r := verify.Receipt(a.receipt, a.digest[:], n.fp); !r.OK() {
				t.Fatalf("round %d: acknowledged receipt %d does not verify: %s", round, a.index, r.Reason)
			}
			lr, err := c.Lookup(context.Background(), a.digest[:])
			if err != nil {
				t.Fatalf("round %d: acknowledged record %d lost after SIGKILL: %v", round, a.index, err)
			}
			if len(lr.Records) != 1 || lr.Records[0].Index != a.index {
				t.Fatalf("round %d: digest of record %d found %d times", round, a.index, len(lr.Records))
			}
		}
		// Retrying acknowledged submissions never makes a duplicate.
		for i := 0; i < 3 && len(acks) > 0; i++ {
			a := acks[rng.IntN(len(acks))]
			resp, err := c.Submit(context.Background(), a.sub)
			if err != nil || !resp.Existing || resp.Index != a.index {
				t.Fatalf("round %d: retry of record %d: %+v %v", round, a.index, resp, err)
			}
		}
		for _, cp := range seen {
			old := mustOpen(t, n, cp)
			if old.Size > cur.Size {
				t.Fatalf("round %d: checkpoint of size %d was published, now size %d", round, old.Size, cur.Size)
			}
			if old.Size == cur.Size {
				if old.Root != cur.Root {
					t.Fatalf("round %d: two roots for size %d", round, old.Size)
				}
				continue
			}
			cr, err := c.Consistency(context.Background(), uint64(old.Size), uint64(cur.Size))
			if err != nil {
				t.Fatal(err)
			}
			proof := make(tlog.TreeProof, len(cr.Proof))
			for i, h := range cr.Proof {
				copy(proof[i][:], h)
			}
			if err := tlog.CheckTree(proof, cur.Size, cur.Root, old.Size, old.Root); err != nil {
				t.Fatalf("round %d: published checkpoint %d is not consistent with %d: %v", round, old.Size, cur.Size, err)
			}
		}
		seen = [][]byte{[]byte(st.Checkpoint)}
		t.Logf("round %d: %d acknowledged (total %d), log size %d", round, len(newAcks), len(acks), st.TreeSize)
	}
	if len(acks) == 0 {
		t.Fatal("no submission was ever acknowledged; the test proved nothing")
	}
}

func mustOpen(t *testing.T, n *network, signed []byte) checkpoint.Checkpoint {
	t.Helper()
	mf, _ := os.ReadFile(n.dir + "/genesis.json")
	m, _, _ := evidence.ParseManifestFile(mf)
	vs, _ := m.Verifiers()
	f, err := checkpoint.Open(signed, checkpoint.Policy{Origin: m.Origin, Verifiers: vs, Threshold: int(m.Threshold)})
	if err != nil {
		t.Fatalf("published checkpoint does not open: %v\n%s", err, signed)
	}
	return f.Checkpoint
}
