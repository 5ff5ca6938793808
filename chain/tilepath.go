package chain

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

// Tile geometry of https://c2sp.org/tlog-tiles.
const (
	// TileHeight is the height of every tile: a full tile holds
	// 1<<TileHeight = 256 hashes or entries.
	TileHeight = 8
	// TileWidth is the number of hashes or entries in a full tile.
	TileWidth = 1 << TileHeight
	// MaxTileLevel is the highest hash tile level a path may name.
	MaxTileLevel = 63
)

// TilePath names one tlog-tiles resource: a hash tile at Level, or (when
// Entries is set) an entry bundle. Width is 0 for a full tile and 1..255 for
// a partial one.
type TilePath struct {
	Entries bool
	Level   uint8 // 0..MaxTileLevel; always 0 for entry bundles
	N       uint64
	Width   int // 0 = full (TileWidth); else 1..TileWidth-1
}

// W returns the number of hashes or entries the tile holds (1..256).
func (t TilePath) W() int {
	if t.Width == 0 {
		return TileWidth
	}
	return t.Width
}

// Tlog returns the golang.org/x/mod/sumdb/tlog tile for a hash tile path
// (entry bundles map to level -1, as in tlog).
func (t TilePath) Tlog() tlog.Tile {
	l := int(t.Level)
	if t.Entries {
		l = -1
	}
	return tlog.Tile{H: TileHeight, L: l, N: int64(t.N), W: t.W()}
}

// String returns the path without a leading slash, such as
// "tile/0/x001/x234/067.p/8" or "tile/entries/005".
func (t TilePath) String() string {
	var sb strings.Builder
	sb.WriteString("tile/")
	if t.Entries {
		sb.WriteString("entries/")
	} else {
		sb.WriteString(strconv.Itoa(int(t.Level)))
		sb.WriteByte('/')
	}
	// Groups of three digits, most significant first.
	var groups []uint64
	n := t.N
	for {
		groups = append(groups, n%1000)
		n /= 1000
		if n == 0 {
			break
		}
	}
	for i := len(groups) - 1; i >= 0; i-- {
		if i > 0 {
			fmt.Fprintf(&sb, "x%03d/", groups[i])
		} else {
			fmt.Fprintf(&sb, "%03d", groups[i])
		}
	}
	if t.Width != 0 {
		fmt.Fprintf(&sb, ".p/%d", t.Width)
	}
	return sb.String()
}

// ParseTilePath parses a tlog-tiles path without its leading slash. It
// accepts exactly the strings [TilePath.String] produces: level 0..63 in
// decimal without leading zeros, N in three-digit groups where every group
// but the last has an "x" prefix and the first group is not x000, and a
// partial width 1..255 in decimal without leading zeros.
func ParseTilePath(path string) (TilePath, error) {
	bad := func(why string) (TilePath, error) {
		return TilePath{}, fmt.Errorf("%w: tile path %q: %s", ErrMalformed, path, why)
	}
	rest, ok := strings.CutPrefix(path, "tile/")
	if !ok {
		return bad("no tile/ prefix")
	}
	var t TilePath
	if r, ok := strings.CutPrefix(rest, "entries/"); ok {
		t.Entries = true
		rest = r
	} else {
		lvl, r, ok := strings.Cut(rest, "/")
		if !ok {
			return bad("no level")
		}
		l, ok := parseDecimal(lvl)
		if !ok || l > MaxTileLevel {
			return bad("bad level")
		}
		t.Level = uint8(l)
		rest = r
	}
	if body, w, ok := strings.Cut(rest, ".p/"); ok {
		width, ok := parseDecimal(w)
		if !ok || width < 1 || width >= TileWidth {
			return bad("bad partial width")
		}
		t.Width = int(width)
		rest = body
	}
	groups := strings.Split(rest, "/")
	for i, g := range groups {
		last := i == len(groups)-1
		if !last {
			var ok bool
			if g, ok = strings.CutPrefix(g, "x"); !ok {
				return bad("inner group without x")
			}
			if i == 0 && g == "000" {
				return bad("leading zero group")
			}
		}
		if len(g) != 3 || !isDigits(g) {
			return bad("group is not three digits")
		}
		d := uint64((g[0]-'0'))*100 + uint64(g[1]-'0')*10 + uint64(g[2]-'0')
		if t.N > (^uint64(0)-d)/1000 {
			return bad("index overflows")
		}
		t.N = t.N*1000 + d
	}
	return t, nil
}

// parseDecimal parses a canonical unsigned decimal: digits only, no sign and
// no leading zeros, at most 3 digits (enough for levels and widths).
func parseDecimal(s string) (uint64, bool) {
	if len(s) == 0 || len(s) > 3 || !isDigits(s) || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
