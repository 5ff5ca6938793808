package ledger

import (
	"bytes"
	"testing"

	"golang.org/x/crypto/cryptobyte"
)

// Fuzz targets for the ledger's own wire forms: replicated-log entry
// envelopes, raft snapshot data and block-sync items all arrive from other
// replicas.

func FuzzUnwrapEntry(f *testing.F) {
	f.Add(wrapEntry(entryBlock, []byte("block")))
	f.Add(wrapEntry(entryFinal, []byte("note")))
	f.Fuzz(func(t *testing.T, data []byte) {
		kind, payload, err := unwrapEntry(data)
		if err != nil {
			return
		}
		if !bytes.Equal(wrapEntry(kind, payload), data) {
			t.Fatal("an accepted entry does not re-wrap to its bytes")
		}
	})
}

func FuzzParseSnapshot(f *testing.F) {
	f.Add((&snapshot{applied: 9, height: 3, finalSize: 7, finalNote: []byte("note")}).marshal())
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := parseSnapshot(data)
		if err != nil {
			return
		}
		if !bytes.Equal(s.marshal(), data) {
			t.Fatal("an accepted snapshot does not re-encode to its bytes")
		}
	})
}

func FuzzParseSyncItem(f *testing.F) {
	b := cryptobyte.NewBuilder(nil)
	b.AddUint32LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes([]byte("block")) })
	b.AddUint24LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes([]byte("final")) })
	b.AddUint24LengthPrefixed(func(c *cryptobyte.Builder) {
		c.AddUint16LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes([]byte("token")) })
	})
	f.Add(b.BytesOrPanic())
	f.Fuzz(func(t *testing.T, data []byte) {
		block, final, tokens, err := parseSyncItem(data)
		if err != nil {
			return
		}
		b := cryptobyte.NewBuilder(nil)
		b.AddUint32LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes(block) })
		b.AddUint24LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes(final) })
		b.AddUint24LengthPrefixed(func(c *cryptobyte.Builder) {
			for _, tok := range tokens {
				c.AddUint16LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes(tok) })
			}
		})
		if !bytes.Equal(b.BytesOrPanic(), data) {
			t.Fatal("an accepted sync item does not re-encode to its bytes")
		}
	})
}

func FuzzParseTimestampPayload(f *testing.F) {
	f.Add(timestampPayload([]stamp{{size: 7, token: []byte("token")}, {size: 9, token: []byte("t2")}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		stamps, err := parseTimestampPayload(data)
		if err != nil {
			return
		}
		if !bytes.Equal(timestampPayload(stamps), data) {
			t.Fatal("an accepted timestamp entry does not re-encode to its bytes")
		}
	})
}
