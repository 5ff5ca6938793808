package tsa_test

import (
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cunzheng/cunzheng/evidence/tsa"
)

// skewedServer is a real SNTP server on loopback whose clock runs skew
// ahead of the real one.
type skewedServer struct{ skew atomic.Int64 }

func (s *skewedServer) start(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go tsa.ServeSNTP(pc, func() time.Time { return time.Now().Add(time.Duration(s.skew.Load())) })
	return pc.LocalAddr().String()
}

func FuzzParseSNTPReply(f *testing.F) {
	origin := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	good := make([]byte, 48)
	good[0], good[1] = 0x24, 1
	copy(good[24:32], origin)
	good[32], good[40] = 0xe0, 0xe0
	f.Add(good)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		recv, xmit, err := tsa.ParseSNTPReply(p, origin)
		if err == nil && (recv.IsZero() || xmit.IsZero()) {
			t.Fatal("accepted a reply with a zero time")
		}
	})
}
