package api_test

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/cunzheng/cunzheng/api"
)

// c2spTileReader reads tiles over HTTP at the C2SP tlog-tiles paths. The
// path formatting here is written independently of the node's own code.
type c2spTileReader struct {
	n *testNode
}

func (r c2spTileReader) Height() int { return 8 }

func c2spIndex(n int64) string {
	s := fmt.Sprintf("%03d", n%1000)
	for n >= 1000 {
		n /= 1000
		s = fmt.Sprintf("x%03d/", n%1000) + s
	}
	return s
}

func c2spPath(t tlog.Tile) string {
	p := fmt.Sprintf("/tile/%d/%s", t.L, c2spIndex(t.N))
	if t.W < 256 {
		p += fmt.Sprintf(".p/%d", t.W)
	}
	return p
}

func (r c2spTileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		code, body := r.n.do("GET", c2spPath(t), nil)
		if code != 200 {
			return nil, fmt.Errorf("GET %s: %d %s", c2spPath(t), code, body)
		}
		out[i] = body
	}
	return out, nil
}

func (r c2spTileReader) SaveTiles([]tlog.Tile, [][]byte) {}

// TestInteropIndependentClients reads a real node's checkpoint, tiles and
// proofs over HTTP with golang.org/x/mod/sumdb/note, sumdb/tlog and
// github.com/transparency-dev/merkle.
func TestInteropIndependentClients(t *testing.T) {
	n := newTestNode(t)
	alice := n.register()
	const records = 300 // crosses a full 256-entry tile
	subs := make([][]byte, records)
	for i := range subs {
		subs[i] = signedSubmission(t, n.origin, alice, fmt.Appendf(nil, "evidence %d", i))
	}
	for i := 0; i < records; i += 100 {
		if code, body := n.do("POST", "/v1/submissions/batch", api.BatchRequest{Submissions: subs[i : i+100]}); code != 200 {
			t.Fatalf("batch: %d %s", code, body)
		}
	}
	code, cp := n.do("GET", "/checkpoint", nil)
	if code != 200 {
		t.Fatalf("checkpoint: %d", code)
	}
	v, err := note.NewVerifier(n.m.Members[0].NoteKey)
	if err != nil {
		t.Fatal(err)
	}
	nt, err := note.Open(cp, note.VerifierList(v))
	if err != nil {
		t.Fatalf("note.Open: %v", err)
	}
	lines := strings.Split(nt.Text, "\n")
	if len(lines) != 4 || lines[0] != n.origin || lines[3] != "" {
		t.Fatalf("checkpoint body is not exactly three lines: %q", nt.Text)
	}
	tree, err := tlog.ParseTree([]byte("go.sum database tree\n" + lines[1] + "\n" + lines[2] + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if tree.N != records+1 {
		t.Fatalf("tree size %d, want %d", tree.N, records+1)
	}
	// Tiles: tlog's tile hash reader checks every tile against the root.
	hr := tlog.TileHashReader(tree, c2spTileReader{n})
	root, err := tlog.TreeHash(tree.N, hr)
	if err != nil || root != tree.Hash {
		t.Fatalf("tree hash from tiles: %v %v", root, err)
	}
	// Entry bundles: every entry hashes to the level-0 tile hash.
	for _, bundle := range []string{"/tile/entries/000", fmt.Sprintf("/tile/entries/001.p/%d", tree.N-256)} {
		code, data := n.do("GET", bundle, nil)
		if code != 200 {
			t.Fatalf("GET %s: %d", bundle, code)
		}
		base := int64(0)
		if strings.Contains(bundle, "001") {
			base = 256
		}
		for i := int64(0); len(data) > 0; i++ {
			l := int(binary.BigEndian.Uint16(data))
			entry := data[2 : 2+l]
			data = data[2+l:]
			hs, err := hr.ReadHashes([]int64{tlog.StoredHashIndex(0, base+i)})
			if err != nil || hs[0] != tlog.RecordHash(entry) {
				t.Fatalf("entry %d does not hash to its tile hash", base+i)
			}
		}
	}
	// Inclusion proofs from lookups verify with transparency-dev/merkle.
	for _, i := range []int{0, 1, 255, 256, records - 1} {
		d := sha256.Sum256(fmt.Appendf(nil, "evidence %d", i))
		code, body := n.do("GET", fmt.Sprintf("/v1/lookup/%x", d), nil)
		if code != 200 {
			t.Fatalf("lookup %d: %d", i, code)
		}
		var lr api.LookupResponse
		json.Unmarshal(body, &lr)
		rec := lr.Records[0]
		var hashes [][]byte
		plines := strings.Split(rec.Proof, "\n")
		for _, l := range plines[2:] {
			if l == "" {
				break
			}
			h, _ := tlog.ParseHash(l)
			hashes = append(hashes, h[:])
		}
		cpBody := strings.SplitN(strings.SplitN(rec.Proof, "\n\n", 2)[1], "\n\n", 2)[0]
		cl := strings.Split(cpBody, "\n")
		size := parseInt(t, cl[1])
		r, _ := tlog.ParseHash(cl[2])
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, rec.Index, size, rfc6962.DefaultHasher.HashLeaf(rec.Leaf), hashes, r[:]); err != nil {
			t.Fatalf("record %d: transparency-dev/merkle rejects the inclusion proof: %v", rec.Index, err)
		}
	}
	// Consistency proofs verify with transparency-dev/merkle.
	for _, old := range []uint64{1, 2, 100, 256, 257} {
		oldRoot, err := tlog.TreeHash(int64(old), hr)
		if err != nil {
			t.Fatal(err)
		}
		code, body := n.do("GET", fmt.Sprintf("/v1/consistency?old=%d&new=%d", old, tree.N), nil)
		if code != 200 {
			t.Fatalf("consistency: %d %s", code, body)
		}
		var cr api.ConsistencyResponse
		json.Unmarshal(body, &cr)
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, old, uint64(tree.N), cr.Proof, oldRoot[:], tree.Hash[:]); err != nil {
			t.Fatalf("consistency %d→%d rejected by transparency-dev/merkle: %v", old, tree.N, err)
		}
	}
}

func parseInt(t *testing.T, s string) uint64 {
	var n uint64
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}
