// Package store keeps one node's copy of the log in Pebble: blocks, leaves,
// sidecars, the RFC 6962 tree's stored hashes (in golang.org/x/mod/sumdb/tlog
// numbering), final checkpoints, the record of what this node signed, and
// the evidence layer's index entries. The key schema is in keys.go.
//
// [Store.AppendBlock] is the only way leaves enter: it verifies the block
// against the head (hash chain, index, time, and the root re-derived from
// the leaves) and commits everything the block implies in one synced batch,
// so a crash leaves the log, its tree and the caller's indexes in agreement.
// Tiles, proofs and roots are served from the stored hashes through tlog.
package store
