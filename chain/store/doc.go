// Package store keeps one node's copy of the log in Pebble: blocks, leaves,
// sidecars, the RFC 6962 tree, final checkpoints, the record of what this
// node signed, the block-sync marker, and the evidence layer's index
// entries. The key schema is in keys.go.
//
// [Store.AppendBlock] is the only way leaves enter: it verifies the block
// against the head (hash chain, index, time, and the root re-derived from
// the leaves) and commits everything the block implies in one synced batch,
// so a crash leaves the log, its tree and the caller's indexes in agreement.
// [Store.Block] gives the same block back for replication.
//
// The tree is stored compactly (tree.go): leaf hashes are recomputed from
// the leaves, and every higher level is kept in rows of 256 hashes, the
// rows of levels 8, 16, ... being the C2SP hash tiles themselves. It is
// exposed in golang.org/x/mod/sumdb/tlog's stored-hash numbering through
// [Store.HashReader], so proofs and roots come from tlog unchanged.
package store
