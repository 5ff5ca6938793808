package chain

import (
	"bytes"
	"errors"
	"testing"
)

func testHeader() BlockHeader {
	return BlockHeader{
		Origin:     "evidence.court.example/v1",
		Height:     2,
		Prev:       [32]byte{1, 2, 3},
		FirstIndex: 10,
		Count:      2,
		TreeSize:   12,
		Root:       [32]byte{9, 9},
		TimeMS:     1700000000000,
	}
}

func TestBlockHeaderRoundTrip(t *testing.T) {
	h := testHeader()
	enc := h.Marshal()
	if enc[0] != BlockHeaderVersion {
		t.Fatalf("version byte = %d", enc[0])
	}
	got, err := ParseBlockHeader(enc)
	if err != nil {
		t.Fatal(err)
	}
	if *got != h {
		t.Fatalf("round trip: got %+v want %+v", got, h)
	}
	if got.Hash() != h.Hash() {
		t.Fatal("hash differs after round trip")
	}
	h2 := h
	h2.TimeMS++
	if h2.Hash() == h.Hash() {
		t.Fatal("hash ignores TimeMS")
	}
}

func TestParseBlockHeaderRejects(t *testing.T) {
	good := testHeader()
	tests := []struct {
		name string
		edit func(h *BlockHeader)
		raw  func(b []byte) []byte
	}{
		{name: "empty", raw: func([]byte) []byte { return nil }},
		{name: "version 0", raw: func(b []byte) []byte { b[0] = 0; return b }},
		{name: "version 2", raw: func(b []byte) []byte { b[0] = 2; return b }},
		{name: "trailing byte", raw: func(b []byte) []byte { return append(b, 0) }},
		{name: "truncated", raw: func(b []byte) []byte { return b[:len(b)-1] }},
		{name: "tree size mismatch", edit: func(h *BlockHeader) { h.TreeSize++ }},
		{name: "count zero", edit: func(h *BlockHeader) { h.Count = 0; h.TreeSize = h.FirstIndex }},
		{name: "height zero", edit: func(h *BlockHeader) { h.Height = 0 }},
		{name: "empty origin", edit: func(h *BlockHeader) { h.Origin = "" }},
		{name: "first block with prev", edit: func(h *BlockHeader) { h.Height = 1; h.FirstIndex = 0; h.TreeSize = 2 }},
		{name: "first block not at 0", edit: func(h *BlockHeader) { h.Height = 1; h.Prev = [32]byte{} }},
		{name: "overflow", edit: func(h *BlockHeader) { h.FirstIndex = ^uint64(0); h.TreeSize = 1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := good
			if tt.edit != nil {
				tt.edit(&h)
			}
			enc := h.Marshal()
			if tt.raw != nil {
				enc = tt.raw(enc)
			}
			if _, err := ParseBlockHeader(enc); !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseBlockHeader = %v, want ErrMalformed", err)
			}
		})
	}
}

func testBlock() *Block {
	h := testHeader()
	h.Count = 3
	h.TreeSize = h.FirstIndex + 3
	return &Block{
		Header:   h,
		Leaves:   [][]byte{[]byte("a"), bytes.Repeat([]byte("b"), MaxLeafLen), []byte("c")},
		Sidecars: [][]byte{[]byte("sub-a"), nil, bytes.Repeat([]byte("s"), MaxSidecarLen)},
	}
}

func TestBlockRoundTrip(t *testing.T) {
	b := testBlock()
	enc, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseBlock(enc)
	if err != nil {
		t.Fatal(err)
	}
	if got.Header != b.Header || len(got.Leaves) != 3 || len(got.Sidecars) != 3 {
		t.Fatalf("round trip header/count mismatch")
	}
	for i := range b.Leaves {
		if !bytes.Equal(got.Leaves[i], b.Leaves[i]) || !bytes.Equal(got.Sidecars[i], b.Sidecars[i]) {
			t.Fatalf("entry %d differs", i)
		}
	}
	again, err := got.Marshal()
	if err != nil || !bytes.Equal(again, enc) {
		t.Fatalf("re-marshal differs: %v", err)
	}
	// nil Sidecars encodes as all-empty sidecars.
	b.Sidecars = nil
	enc2, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got2, err := ParseBlock(enc2)
	if err != nil || got2.Sidecars[0] != nil {
		t.Fatalf("nil sidecars: %v", err)
	}
}

func TestBlockRejects(t *testing.T) {
	tests := []struct {
		name string
		edit func(b *Block)
	}{
		{"count mismatch", func(b *Block) { b.Leaves = b.Leaves[:2] }},
		{"sidecar count", func(b *Block) { b.Sidecars = b.Sidecars[:2] }},
		{"empty leaf", func(b *Block) { b.Leaves[0] = nil }},
		{"long leaf", func(b *Block) { b.Leaves[0] = make([]byte, MaxLeafLen+1) }},
		{"long sidecar", func(b *Block) { b.Sidecars[0] = make([]byte, MaxSidecarLen+1) }},
		{"bad header", func(b *Block) { b.Header.TreeSize = 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := testBlock()
			tt.edit(b)
			if _, err := b.Marshal(); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Marshal = %v, want ErrInvalid", err)
			}
		})
	}

	enc, err := testBlock().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	raw := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"trailing", append(append([]byte{}, enc...), 0)},
		{"truncated", enc[:len(enc)-1]},
		{"too big", make([]byte, MaxBlockBytes+1)},
	}
	for _, tt := range raw {
		t.Run("parse "+tt.name, func(t *testing.T) {
			if _, err := ParseBlock(tt.data); !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseBlock = %v, want ErrMalformed", err)
			}
		})
	}
	t.Run("parse count mismatch", func(t *testing.T) {
		b := testBlock()
		b.Header.Count = 2
		b.Header.TreeSize--
		hdr := b.Header.Marshal()
		good, _ := testBlock().Marshal()
		// Replace the header, keeping the three encoded leaves.
		off := 2 + len(testBlock().Header.Marshal())
		data := append([]byte{byte(len(hdr) >> 8), byte(len(hdr))}, hdr...)
		data = append(data, good[off:]...)
		if _, err := ParseBlock(data); !errors.Is(err, ErrMalformed) {
			t.Fatalf("ParseBlock = %v, want ErrMalformed", err)
		}
	})
}

func FuzzParseBlockHeader(f *testing.F) {
	h := testHeader()
	f.Add(h.Marshal())
	h.Height, h.Prev, h.FirstIndex, h.TreeSize = 1, [32]byte{}, 0, 2
	f.Add(h.Marshal())
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseBlockHeader(data)
		if err != nil {
			return
		}
		if !bytes.Equal(h.Marshal(), data) {
			t.Fatalf("round trip differs")
		}
	})
}

func FuzzParseBlock(f *testing.F) {
	enc, err := testBlock().Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(enc)
	small := testBlock()
	small.Leaves[1] = []byte("bb")
	small.Sidecars[2] = nil
	enc, _ = small.Marshal()
	f.Add(enc)
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseBlock(data)
		if err != nil {
			return
		}
		again, err := b.Marshal()
		if err != nil {
			t.Fatalf("parsed block does not marshal: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("round trip differs")
		}
	})
}
