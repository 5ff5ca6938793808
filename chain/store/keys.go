package store

import (
	"encoding/binary"
	"fmt"
)

// The whole key schema of the store lives in this file. Every key starts
// with a one-byte prefix that names its kind; numbers are 8-byte big-endian
// so that byte order equals numeric order and range scans and reverse seeks
// work. Log data (prefixes t, e, s, b, i, c, m) is written only by this
// package; callers own everything under prefix x, built with the helpers at
// the end of this file.
const (
	// prefixTree + u8 level + u64 row -> up to 256 concatenated 32-byte
	// hashes: nodes [256*row, 256*row+256) of that tree level (>= 1; level 0
	// is recomputed from the leaves). See tree.go for the layout.
	prefixTree = 't'
	// prefixLeaf + u64 log index -> leaf bytes. Kept apart from the sidecar
	// so entry bundles are a dense range scan over leaves only.
	prefixLeaf = 'e'
	// prefixSidecar + u64 log index -> sidecar bytes. Omitted when empty.
	prefixSidecar = 's'
	// prefixBlock + u64 height -> BlockHeader.Marshal(). The hash chain.
	prefixBlock = 'b'
	// prefixBlockIndex + u64 FirstIndex -> u64 height. A reverse seek from
	// index+1 finds the block holding an index without scanning headers.
	prefixBlockIndex = 'i'
	// prefixCheckpoint + u64 tree size -> final signed note bytes. Ordered by
	// size so "first checkpoint with size > i" is a forward seek.
	prefixCheckpoint = 'c'
	// prefixCaller + caller-defined bytes -> caller value. Written only in
	// the same batch as the block or checkpoint that justifies it
	// (AppendBlock, PutCheckpoint), so a caller index is never ahead of or
	// behind the log.
	prefixCaller = 'x'
)

// formatVersion is the layout this code writes, stored under keyFormat.
// Version 1 (no keyFormat) kept one key per tlog stored hash under prefix h.
const formatVersion = 2

// Singleton metadata keys, all under "m/".
var (
	// keyHead -> BlockHeader.Marshal() of the latest block. Written in the
	// block's own batch, so it always names a block whose data is present.
	keyHead = []byte("m/head")
	// keyGenesis -> 32-byte genesis fingerprint. Binds the directory to one
	// network; Open refuses a directory of another network.
	keyGenesis = []byte("m/genesis")
	// keySigned -> u64 size || 32-byte root of the last checkpoint this node
	// signed itself: the durable record behind "never sign two roots for
	// one size, never sign a smaller tree".
	keySigned = []byte("m/signed")
	// keyFormat -> one byte, formatVersion. Written with keyGenesis.
	keyFormat = []byte("m/format")
	// keySyncTarget -> u64 block height this node is catching up to over
	// block sync. Present only while catching up; see Store.SetSyncTarget.
	keySyncTarget = []byte("m/synctarget")
)

// Sub-prefixes of the caller namespace (after prefixCaller).
const (
	callerDedup     = 'd'
	callerDigest    = 'g'
	callerSubmitter = 'k'
	callerApplied   = 'a'
	callerManifest  = 'v'
	callerTimestamp = 'z'
)

func numKey(prefix byte, n uint64) []byte {
	k := make([]byte, 9)
	k[0] = prefix
	binary.BigEndian.PutUint64(k[1:], n)
	return k
}

// rowKey returns the key of row of tree level (1..63).
func rowKey(level int, row uint64) []byte {
	k := make([]byte, 10)
	k[0] = prefixTree
	k[1] = byte(level)
	binary.BigEndian.PutUint64(k[2:], row)
	return k
}

func leafKey(index uint64) []byte    { return numKey(prefixLeaf, index) }
func sidecarKey(index uint64) []byte { return numKey(prefixSidecar, index) }
func blockKey(height uint64) []byte  { return numKey(prefixBlock, height) }
func blockIndexKey(first uint64) []byte {
	return numKey(prefixBlockIndex, first)
}
func checkpointKey(size uint64) []byte { return numKey(prefixCheckpoint, size) }

// keyNum returns the number in a numKey, which must have the expected
// prefix and length.
func keyNum(prefix byte, key []byte) (uint64, error) {
	if len(key) != 9 || key[0] != prefix {
		return 0, fmt.Errorf("%w: key %x is not a %q key", ErrCorrupt, key, prefix)
	}
	return binary.BigEndian.Uint64(key[1:]), nil
}

// DedupKey returns the caller key for the dedup rule (submitter, primary
// digest). Its value is the 8-byte big-endian log index of the record that
// first used the pair ([EncodeIndex]).
func DedupKey(submitterKeyHash [32]byte, digest []byte) []byte {
	k := make([]byte, 0, 2+32+len(digest))
	k = append(k, prefixCaller, callerDedup)
	k = append(k, submitterKeyHash[:]...)
	return append(k, digest...)
}

// DigestPrefix returns the prefix under which every [DigestKey] for digest
// sorts; pass it to [Store.ScanPrefix] to find all records of one digest.
// The digest is length-prefixed so that one digest is never a prefix of
// another's keys.
func DigestPrefix(digest []byte) []byte {
	if len(digest) > 255 {
		panic(fmt.Sprintf("store: digest of %d bytes", len(digest)))
	}
	k := make([]byte, 0, 3+len(digest)+8)
	k = append(k, prefixCaller, callerDigest, byte(len(digest)))
	return append(k, digest...)
}

// DigestKey returns the caller key for the public digest lookup: one key
// per (digest, log index), so a digest preserved several times (by several
// submitters) lists every index in log order. The value is up to the caller
// (it may be empty). Digests are at most 255 bytes.
func DigestKey(digest []byte, index uint64) []byte {
	return binary.BigEndian.AppendUint64(DigestPrefix(digest), index)
}

// DigestKeyIndex returns the log index encoded at the end of a DigestKey.
func DigestKeyIndex(key []byte) (uint64, error) {
	if len(key) < 3+8 || key[0] != prefixCaller || key[1] != callerDigest || len(key) != 3+int(key[2])+8 {
		return 0, fmt.Errorf("%w: %x is not a digest key", ErrCorrupt, key)
	}
	return binary.BigEndian.Uint64(key[len(key)-8:]), nil
}

// SubmitterKey returns the caller key for the submitter registry entry of a
// public key. The value is up to the caller.
func SubmitterKey(pubkey []byte) []byte {
	k := make([]byte, 0, 2+len(pubkey))
	k = append(k, prefixCaller, callerSubmitter)
	return append(k, pubkey...)
}

// AppliedKey returns the caller key holding the index of the last
// replicated-log entry applied (8-byte big-endian), written in the same
// batch as the entry's effect so a restart resumes exactly after it.
func AppliedKey() []byte { return []byte{prefixCaller, callerApplied} }

// ManifestKey returns the caller key of manifest version seq (2 and up),
// written in the batch of the block that carries its update entry. The
// value is up to the caller.
func ManifestKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixCaller, callerManifest}, seq)
}

// ManifestPrefix returns the prefix of every [ManifestKey], which sort by
// version.
func ManifestPrefix() []byte { return []byte{prefixCaller, callerManifest} }

// TimestampKey returns the caller key of a timestamp token over the final
// checkpoint of size, applied from replicated-log entry entry: the tokens of
// one checkpoint sort in the order the network committed them.
func TimestampKey(size, entry uint64) []byte {
	k := binary.BigEndian.AppendUint64([]byte{prefixCaller, callerTimestamp}, size)
	return binary.BigEndian.AppendUint64(k, entry)
}

// TimestampPrefix returns the prefix of the [TimestampKey]s of size.
func TimestampPrefix(size uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixCaller, callerTimestamp}, size)
}

// TimestampKeySize returns the checkpoint size a [TimestampKey] names.
func TimestampKeySize(key []byte) (uint64, error) {
	if len(key) != 18 || key[0] != prefixCaller || key[1] != callerTimestamp {
		return 0, fmt.Errorf("%w: key %x is not a timestamp key", ErrCorrupt, key)
	}
	return binary.BigEndian.Uint64(key[2:10]), nil
}

// TimestampsPrefix returns the prefix of every [TimestampKey].
func TimestampsPrefix() []byte { return []byte{prefixCaller, callerTimestamp} }

// SubmitterPrefix returns the prefix of every [SubmitterKey].
func SubmitterPrefix() []byte { return []byte{prefixCaller, callerSubmitter} }

// EncodeIndex returns the 8-byte big-endian form of a log index, the value
// layout of [DedupKey].
func EncodeIndex(index uint64) []byte { return binary.BigEndian.AppendUint64(nil, index) }

// DecodeIndex parses a value written by [EncodeIndex].
func DecodeIndex(v []byte) (uint64, error) {
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: index value of %d bytes", ErrCorrupt, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// isCallerKey reports whether key lies in the caller namespace, the only
// keys AppendBlock accepts from callers.
func isCallerKey(key []byte) bool { return len(key) > 1 && key[0] == prefixCaller }

// checkCallerKeys returns ErrCallerKey for the first key of index outside
// the caller namespace.
func checkCallerKeys(index []KV) error {
	for _, kv := range index {
		if !isCallerKey(kv.Key) {
			return fmt.Errorf("index key %x: %w", kv.Key, ErrCallerKey)
		}
	}
	return nil
}

// prefixEnd returns the smallest key greater than every key with prefix,
// or nil when there is none (prefix is all 0xff).
func prefixEnd(prefix []byte) []byte {
	end := append([]byte{}, prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}
