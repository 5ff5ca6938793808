package verify_test

import (
	"bytes"
	"testing"

	"github.com/cunzheng/cunzheng/evidence"
	"github.com/cunzheng/cunzheng/evidence/verify"
)

// FuzzReceipt: the verifier never panics, names every check, and verifies
// only the exact receipt bytes the network issued.
func FuzzReceipt(f *testing.F) {
	nw := newNetwork(f, "court.example", 5)
	good := nw.receipt(f, 3)
	f.Add(good.Marshal())
	good.Opening = nil
	f.Add(good.Marshal())
	ext := extend(f, nw.receiptAt(f, 3, 4, sign(f, nw.treeAt(f, 4), nw.signer)), &evidence.Extension{
		Checkpoint: nw.signedCheck, Consistency: nw.consistency(f, 4, 5)})
	f.Add(ext.Marshal())
	digest := sha(nw.files[3])
	f.Fuzz(func(t *testing.T, data []byte) {
		res := verify.Receipt(data, digest, nw.fp)
		if res == nil || len(res.Checks) != len(allChecks) {
			t.Fatalf("result %+v does not name every check", res)
		}
		if !res.OK() {
			return
		}
		r, err := evidence.ParseReceipt(data)
		if err != nil {
			t.Fatalf("verified a receipt that does not parse: %v", err)
		}
		if !bytes.Equal(r.Marshal(), data) {
			t.Fatalf("verified a non-canonical receipt %q", data)
		}
		if !bytes.Equal(r.Submission, nw.subs[3]) || !bytes.Equal(r.Leaf, nw.leaves[3]) {
			t.Fatalf("verified a receipt for another submission")
		}
	})
}
