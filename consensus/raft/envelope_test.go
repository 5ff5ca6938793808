package raft

import (
	"bytes"
	"errors"
	"testing"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	id := [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	for _, payload := range [][]byte{nil, {}, []byte("block"), bytes.Repeat([]byte{0xff}, 1000)} {
		b := encodeEnvelope(id, 7, payload)
		e, err := decodeEnvelope(b)
		if err != nil {
			t.Fatal(err)
		}
		if e.id != id || e.origin != 7 || !bytes.Equal(e.payload, payload) {
			t.Fatalf("round trip of %q: %+v", payload, e)
		}
	}
}

func TestEnvelopeRejects(t *testing.T) {
	good := encodeEnvelope([16]byte{1}, 7, []byte("x"))
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"short header", good[:envelopeHeader-1]},
		{"unknown version", append([]byte{2}, good[1:]...)},
		{"origin zero", encodeEnvelope([16]byte{1}, 0, []byte("x"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := decodeEnvelope(tt.b); !errors.Is(err, errBadEnvelope) {
				t.Fatalf("err = %v, want errBadEnvelope", err)
			}
		})
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	f.Add(encodeEnvelope([16]byte{9}, 3, []byte("payload")))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEnvelope(b)
		if err != nil {
			return
		}
		if again := encodeEnvelope(e.id, e.origin, e.payload); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding %x gives %x", b, again)
		}
	})
}
