// Package chain defines the log's unit of replication, the hash-chained
// [Block], and the C2SP tlog-tiles paths ([TilePath]) under which the log is
// served.
//
// Leaves are opaque bytes here: their meaning belongs to the evidence layer.
// Every encoding in this package is canonical (one byte-exact form, built with
// golang.org/x/crypto/cryptobyte) and every parser is strict: it rejects
// unknown versions, trailing bytes, out-of-range lengths and inconsistent
// fields, so that Parse followed by Marshal always returns the input bytes.
//
// Tree hashing follows RFC 6962 through golang.org/x/mod/sumdb/tlog; tile
// paths follow https://c2sp.org/tlog-tiles (tiles of height 8, 256 hashes).
// The tile path code is written by hand because tlog's own paths carry the
// tile height and use a different layout.
package chain
