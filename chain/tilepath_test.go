package chain

import (
	"errors"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

func TestTilePathRoundTrip(t *testing.T) {
	tests := []struct {
		path string
		want TilePath
	}{
		{"tile/0/000", TilePath{}},
		{"tile/0/005", TilePath{N: 5}},
		{"tile/0/x001/x234/067", TilePath{N: 1234067}},
		{"tile/3/x001/000.p/255", TilePath{Level: 3, N: 1000, Width: 255}},
		{"tile/63/999.p/1", TilePath{Level: 63, N: 999, Width: 1}},
		{"tile/entries/x123/456", TilePath{Entries: true, N: 123456}},
		{"tile/entries/048.p/7", TilePath{Entries: true, N: 48, Width: 7}},
		{"tile/0/x018/x446/x744/x073/x709/x551/615", TilePath{N: ^uint64(0)}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, err := ParseTilePath(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("ParseTilePath = %+v, want %+v", got, tt.want)
			}
			if s := got.String(); s != tt.path {
				t.Fatalf("String = %q", s)
			}
		})
	}
}

func TestParseTilePathRejects(t *testing.T) {
	for _, path := range []string{
		"",
		"/tile/0/000",
		"tile/0/5",
		"tile/0/0005",
		"tile/0/x000/005",
		"tile/0/x001/x234/x067",
		"tile/0/001/234",
		"tile/0/x1/234",
		"tile/00/000",
		"tile/01/000",
		"tile/64/000",
		"tile/-1/000",
		"tile/+1/000",
		"tile/0/000.p/0",
		"tile/0/000.p/256",
		"tile/0/000.p/08",
		"tile/0/000.p/",
		"tile/0/000.p/8/",
		"tile/0/000.p/8.p/3",
		"tile/0/x001.p/2/005",
		"tile/0/000/",
		"tile/0//000",
		"tile/0/",
		"tile/0",
		"tile/entries/",
		"tile/entries/0/000",
		"tile/entries/5",
		"tile/data/000",
		"tile/8/0/000",
		"tile/0/00a",
		"tile/0/x018/x446/x744/x073/x709/x551/616",
		"tile/0/x999/x999/x999/x999/x999/x999/x999/999",
		"tile/0/000 ",
	} {
		t.Run(path, func(t *testing.T) {
			if tp, err := ParseTilePath(path); !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseTilePath = %+v, %v; want ErrMalformed", tp, err)
			}
		})
	}
}

func TestTilePathTlog(t *testing.T) {
	tp := TilePath{Level: 2, N: 7, Width: 3}
	if got := tp.Tlog(); got != (tlog.Tile{H: 8, L: 2, N: 7, W: 3}) {
		t.Fatalf("Tlog = %+v", got)
	}
	if got := (TilePath{Entries: true, N: 1}).Tlog(); got != (tlog.Tile{H: 8, L: -1, N: 1, W: 256}) {
		t.Fatalf("Tlog = %+v", got)
	}
}

func FuzzParseTilePath(f *testing.F) {
	for _, s := range []string{"tile/0/x001/x234/067", "tile/entries/005.p/9", "tile/63/x999/000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		tp, err := ParseTilePath(path)
		if err != nil {
			return
		}
		if tp.String() != path {
			t.Fatalf("round trip: %q -> %+v -> %q", path, tp, tp.String())
		}
	})
}
