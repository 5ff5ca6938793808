package p2p

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	payloads := [][]byte{{}, []byte("a"), bytes.Repeat([]byte{7}, 127), bytes.Repeat([]byte{8}, 128), bytes.Repeat([]byte{9}, 300000)}
	for _, p := range payloads {
		if err := WriteFrame(&buf, p, 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	fr := NewFrameReader(&buf, 1<<20)
	for i, want := range payloads {
		got, err := fr.Next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("frame %d: got %d bytes, want %d", i, len(got), len(want))
		}
	}
	if _, err := fr.Next(); err != io.EOF {
		t.Fatalf("after last frame: got %v, want io.EOF", err)
	}
}

func TestFrameReaderRejects(t *testing.T) {
	const max = 1000
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"non-minimal zero", []byte{0x80, 0x00}, ErrFrameLength},
		{"non-minimal one", []byte{0x81, 0x80, 0x00}, ErrFrameLength},
		{"over limit", []byte{0xe9, 0x07}, ErrFrameTooLarge}, // 1001
		{"huge prefix", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, ErrFrameTooLarge},
		{"endless continuation", bytes.Repeat([]byte{0x80}, 20), ErrFrameLength},
		{"truncated prefix", []byte{0x81}, io.ErrUnexpectedEOF},
		{"truncated payload", []byte{0x05, 'a', 'b'}, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewFrameReader(bytes.NewReader(tt.in), max).Next()
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestFrameAtLimit(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteFrame(&buf, make([]byte, 1000), 1000); err != nil {
		t.Fatal(err)
	}
	if _, err := NewFrameReader(&buf, 1000).Next(); err != nil {
		t.Fatalf("frame at the limit: %v", err)
	}
	if err := WriteFrame(&buf, make([]byte, 1001), 1000); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("writing over the limit: got %v", err)
	}
}

// FuzzFrameReader checks that the reader never panics, never returns a
// frame over its limit, and that whatever it accepts re-encodes to exactly
// the bytes it consumed (the encoding has one form).
func FuzzFrameReader(f *testing.F) {
	f.Add([]byte{0x00})
	f.Add([]byte{0x03, 'a', 'b', 'c', 0x01, 'd'})
	f.Add([]byte{0x80, 0x01})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, in []byte) {
		const max = 4096
		fr := NewFrameReader(bytes.NewReader(in), max)
		var re bytes.Buffer
		for {
			p, err := fr.Next()
			if err != nil {
				break
			}
			if len(p) > max {
				t.Fatalf("frame of %d bytes over limit %d", len(p), max)
			}
			if err := WriteFrame(&re, p, max); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.HasPrefix(in, re.Bytes()) {
			t.Fatalf("accepted frames re-encode to %x, not a prefix of input %x", re.Bytes(), in)
		}
	})
}
