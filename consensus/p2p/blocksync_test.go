package p2p

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// memBlocks serves heights first..first+len(blocks)-1.
type memBlocks struct {
	first  uint64
	blocks [][]byte
}

func (m *memBlocks) Height() uint64 { return m.first + uint64(len(m.blocks)) - 1 }

func (m *memBlocks) Block(h uint64) ([]byte, error) {
	if h < m.first || h > m.Height() {
		return nil, fmt.Errorf("no block %d", h)
	}
	return m.blocks[h-m.first], nil
}

func blockBytes(h uint64) []byte { return fmt.Appendf(nil, "block at height %d", h) }

func blockSyncPair(t *testing.T, src BlockSource) (client, server *testHost) {
	t.Helper()
	client, server = newTestHost(t, nil), newTestHost(t, nil)
	mesh(t, client, server)
	ServeBlocks(server.Host, src)
	return client, server
}

func tenBlocks() *memBlocks {
	src := &memBlocks{first: 1}
	for h := uint64(1); h <= 10; h++ {
		src.blocks = append(src.blocks, blockBytes(h))
	}
	return src
}

func TestFetchBlocks(t *testing.T) {
	client, server := blockSyncPair(t, tenBlocks())
	tests := []struct {
		name        string
		from        uint64
		count       uint32
		first, last uint64 // heights expected; last < first for none
	}{
		{"inside", 3, 5, 3, 7},
		{"one", 10, 1, 10, 10},
		{"past the tip", 8, 10, 8, 10},
		{"beyond the tip", 11, 4, 1, 0},
		{"huge from", ^uint64(0) - 1, 5, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []uint64
			err := FetchBlocks(context.Background(), client.Host, server.ID(), tt.from, tt.count, func(h uint64, b []byte) error {
				if string(b) != string(blockBytes(h)) {
					t.Errorf("height %d: got %q", h, b)
				}
				got = append(got, h)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			var want []uint64
			for h := tt.first; h <= tt.last; h++ {
				want = append(want, h)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("heights %v, want %v", got, want)
			}
		})
	}
}

func TestFetchBlocksStopsOnCallbackError(t *testing.T) {
	client, server := blockSyncPair(t, tenBlocks())
	errBadRoot := errors.New("root mismatch")
	var calls int
	err := FetchBlocks(context.Background(), client.Host, server.ID(), 1, 10, func(h uint64, _ []byte) error {
		calls++
		if h == 4 {
			return errBadRoot
		}
		return nil
	})
	if !errors.Is(err, errBadRoot) {
		t.Fatalf("got %v, want the callback's error", err)
	}
	if calls != 4 {
		t.Fatalf("callback ran %d times after failing at the 4th block", calls)
	}
	// The server is unharmed.
	if err := FetchBlocks(context.Background(), client.Host, server.ID(), 9, 2, func(uint64, []byte) error { return nil }); err != nil {
		t.Fatalf("fetch after an aborted one: %v", err)
	}
}

func TestFetchBlocksRemoteError(t *testing.T) {
	src := tenBlocks()
	src.first = 5 // holds 5..14, so a request from 2 hits a missing block
	client, server := blockSyncPair(t, src)
	err := FetchBlocks(context.Background(), client.Host, server.ID(), 2, 3, func(uint64, []byte) error { return nil })
	var re *RemoteError
	if !errors.As(err, &re) || re.Protocol != BlockSyncProtocol || re.Message != "block 2: no block 2" {
		t.Fatalf("got %v, want a remote error naming block 2", err)
	}
}

func TestFetchBlocksLargeBlocks(t *testing.T) {
	src := &memBlocks{first: 0}
	for i := range 3 {
		b := make([]byte, 5<<20)
		b[0], b[len(b)-1] = byte(i), byte(i)
		src.blocks = append(src.blocks, b)
	}
	client, server := blockSyncPair(t, src)
	var total int
	err := FetchBlocks(context.Background(), client.Host, server.ID(), 0, 3, func(h uint64, b []byte) error {
		if len(b) != 5<<20 || b[0] != byte(h) || b[len(b)-1] != byte(h) {
			t.Errorf("block %d corrupted", h)
		}
		total += len(b)
		return nil
	})
	if err != nil || total != 15<<20 {
		t.Fatalf("fetched %d bytes: %v", total, err)
	}
}

func TestFetchBlocksRejectsBadCount(t *testing.T) {
	client, server := blockSyncPair(t, tenBlocks())
	for _, n := range []uint32{0, MaxBlocksPerRequest + 1} {
		if err := FetchBlocks(context.Background(), client.Host, server.ID(), 1, n, func(uint64, []byte) error { return nil }); err == nil {
			t.Errorf("count %d accepted", n)
		}
	}
}
