package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/cunzheng/cunzheng/api/client"
	"github.com/cunzheng/cunzheng/evidence"
	"github.com/cunzheng/cunzheng/evidence/verify"
)

// extendReceipt upgrades a complete receipt to the node's latest final
// checkpoint (receipt refresh --extend). Whatever the node sends is only
// written once the extended receipt verifies offline against the pinned
// genesis.
func (a *app) extendReceipt(ctx context.Context, cl *client.Client, o receiptRefreshOptions,
	rc *evidence.Receipt, old *verify.Result, pinned evidence.Fingerprint) error {
	latest, err := cl.Timestamps(ctx)
	if err != nil {
		return err
	}
	c1 := old.TreeSize
	switch {
	case int64(latest.TreeSize) < c1:
		fmt.Fprintf(a.stdout, "node %s's latest final checkpoint (tree size %d) is older than the receipt's (tree size %d): it is behind; %s is unchanged, try again later or ask another node\n",
			cl.URL(), latest.TreeSize, c1, o.receipt)
		return &exitError{code: exitPending}
	case int64(latest.TreeSize) == c1:
		fmt.Fprintf(a.stdout, "the receipt's checkpoint (tree size %d) is still the latest final one: nothing newer to extend it to; %s is unchanged, try again later\n", c1, o.receipt)
		return &exitError{code: exitPending}
	case old.Extended != nil && old.Extended.TreeSize == int64(latest.TreeSize) && (old.Extended.Timestamp != nil || len(latest.Tokens) == 0):
		fmt.Fprintf(a.stdout, "%s is already extended to the latest final checkpoint (tree size %d): nothing newer; try again later\n", o.receipt, latest.TreeSize)
		return &exitError{code: exitPending}
	}
	cons, err := cl.Consistency(ctx, uint64(c1), latest.TreeSize)
	if err != nil {
		return err
	}
	if cons.Old != uint64(c1) || cons.New != latest.TreeSize || len(cons.Proof) > evidence.MaxConsistencyHashes {
		return fmt.Errorf("node %s answered a consistency proof %d→%d of %d hashes, asked for %d→%d", cl.URL(), cons.Old, cons.New, len(cons.Proof), c1, latest.TreeSize)
	}
	hashes := make([]tlog.Hash, len(cons.Proof))
	for i, h := range cons.Proof {
		if len(h) != tlog.HashSize {
			return fmt.Errorf("node %s's consistency proof hash %d is %d bytes", cl.URL(), i+1, len(h))
		}
		hashes[i] = tlog.Hash(h)
	}
	ext := &evidence.Extension{Checkpoint: []byte(latest.Checkpoint), Consistency: hashes}
	if len(latest.Tokens) > 0 {
		// The first token is the one that dates the checkpoint soonest;
		// re-stamps of an idle network add nothing to it.
		ext.Timestamps = latest.Tokens[:1]
	}
	enc, err := ext.Marshal()
	if err != nil {
		return fmt.Errorf("node %s's checkpoint: %w", cl.URL(), err)
	}
	chainFile, err := cl.ManifestChain(ctx)
	if err != nil {
		return err
	}
	chain, err := evidence.ParseChainFile(chainFile, pinned)
	if err != nil {
		return fmt.Errorf("node %s's manifest chain: %w", cl.URL(), err)
	}
	if len(chain) < len(rc.Manifests) {
		return fmt.Errorf("node %s's manifest chain has %d versions, the receipt's %d", cl.URL(), len(chain), len(rc.Manifests))
	}
	for i, m := range rc.Manifests {
		if !bytes.Equal(chain[i].Encoded, m) {
			return fmt.Errorf("node %s's manifest chain differs from the receipt's at version %d", cl.URL(), i+1)
		}
	}
	// The chain a node serves may already hold an update that took effect
	// after its latest final checkpoint: the receipt takes the longest
	// prefix under which that checkpoint verifies as final, the version in
	// force there.
	var (
		receipt []byte
		res     *verify.Result
	)
	for n := len(chain); n >= len(rc.Manifests); n-- {
		next := *rc
		next.Manifests = make([][]byte, n)
		for i := range n {
			next.Manifests[i] = chain[i].Encoded
		}
		next.Extension = enc
		receipt = next.Marshal()
		if res = verify.Receipt(receipt, old.Submission.Primary(), pinned); res.OK() {
			break
		}
	}
	if !res.OK() {
		return fmt.Errorf("the receipt extended with node %s's checkpoint does not verify, not writing it: %s", cl.URL(), oneLine(res.Reason))
	}
	if res.Index != old.Index || res.TreeSize != c1 || res.Extended == nil {
		return fmt.Errorf("the extended receipt is for index %d in a tree of size %d, the receipt for index %d in a tree of size %d", res.Index, res.TreeSize, old.Index, c1)
	}
	target, err := writeReceipt(o, receipt)
	if err != nil {
		return err
	}
	x := res.Extended
	fmt.Fprintf(a.stdout, "extended record %s, wrote %s\n", res.RecordID, target)
	fmt.Fprintf(a.stdout, "  tree of size %d → final tree of size %d (consistency proof: %d hash(es)), signed by %s\n",
		c1, x.TreeSize, len(hashes), strings.Join(x.Signers, ", "))
	if res.Manifest.Sequence > old.Manifest.Sequence {
		fmt.Fprintf(a.stdout, "  manifest chain now runs to version %d, in force at the newer checkpoint\n", res.Manifest.Sequence)
	}
	switch {
	case x.Timestamp != nil:
		fmt.Fprintf(a.stdout, "  newer checkpoint stamped %s, token serial %s by %s\n", formatTime(x.Timestamp.Time), x.Timestamp.Serial, x.Timestamp.Authority)
	case len(res.Manifest.TimeServices()) > 0:
		fmt.Fprintln(a.stdout, "  the newer checkpoint has no timestamp token yet: refresh --extend again later to add it")
	}
	if res.Timestamp != nil {
		fmt.Fprintf(a.stdout, "  存证时间 unchanged: %s, from the original token\n", formatTime(res.Timestamp.Time))
	}
	return nil
}
