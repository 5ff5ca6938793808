package tsa

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"
)

// SNTP (RFC 4330) is the reference clock protocol: a time service points
// its authority at the national time service's NTP servers (or its own
// disciplined clock), and the authority refuses to stamp when the two
// disagree. Only the client's 48-byte exchange is needed, so it is written
// here rather than pulling in an NTP library.

// ntpEpochOffset is the seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix).
const ntpEpochOffset = 2208988800

// ntpPacketSize is the size of an SNTP packet without extensions.
const ntpPacketSize = 48

// SNTP is a Reference read from an (S)NTP server.
type SNTP struct {
	Addr    string        // host:port, e.g. ntp.ntsc.ac.cn:123
	Timeout time.Duration // per query; 2 s when zero
}

// Offset implements Reference: one SNTP exchange, offset computed as RFC
// 4330 §5 does from the four timestamps.
func (s SNTP) Offset(ctx context.Context, local func() time.Time) (time.Duration, error) {
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", s.Addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	req := make([]byte, ntpPacketSize)
	req[0] = 0x23 // LI 0, version 4, mode 3 (client)
	// A random transmit timestamp: the server echoes it as the origin, so
	// a reply is matched to this request and an off-path spoofer must
	// guess it. The real send time is kept locally.
	if _, err := rand.Read(req[40:48]); err != nil {
		return 0, err
	}
	t0 := local()
	if _, err := conn.Write(req); err != nil {
		return 0, err
	}
	resp := make([]byte, 512)
	for {
		n, err := conn.Read(resp)
		if err != nil {
			return 0, err
		}
		t3 := local()
		t1, t2, err := ParseSNTPReply(resp[:n], req[40:48])
		if err != nil {
			continue // not our answer; wait for the next one until the deadline
		}
		return (t1.Sub(t0) + t2.Sub(t3)) / 2, nil
	}
}

// ParseSNTPReply checks an SNTP server reply to a request whose transmit
// timestamp was origin, and returns the server's receive and transmit times.
func ParseSNTPReply(p, origin []byte) (recv, xmit time.Time, err error) {
	if len(p) < ntpPacketSize {
		return recv, xmit, fmt.Errorf("sntp: reply of %d bytes", len(p))
	}
	mode, version, stratum := p[0]&7, (p[0]>>3)&7, p[1]
	switch {
	case mode != 4 && mode != 5:
		return recv, xmit, fmt.Errorf("sntp: reply mode %d", mode)
	case version < 3 || version > 4:
		return recv, xmit, fmt.Errorf("sntp: version %d", version)
	case stratum == 0 || stratum > 15:
		return recv, xmit, fmt.Errorf("sntp: stratum %d (kiss-o'-death or unsynchronised)", stratum)
	case p[0]>>6 == 3:
		return recv, xmit, errors.New("sntp: server clock not synchronised")
	case !bytes.Equal(p[24:32], origin):
		return recv, xmit, errors.New("sntp: reply does not answer this request")
	}
	recv, xmit = ntpTime(p[32:40]), ntpTime(p[40:48])
	if recv.IsZero() || xmit.IsZero() {
		return recv, xmit, errors.New("sntp: zero timestamp")
	}
	return recv, xmit, nil
}

func ntpTime(b []byte) time.Time {
	sec, frac := binary.BigEndian.Uint32(b), binary.BigEndian.Uint32(b[4:])
	if sec == 0 && frac == 0 {
		return time.Time{}
	}
	nanos := (uint64(frac) * 1e9) >> 32
	return time.Unix(int64(sec)-ntpEpochOffset, int64(nanos)).UTC()
}

func putNTPTime(b []byte, t time.Time) {
	sec := uint64(t.Unix() + ntpEpochOffset)
	frac := (uint64(t.Nanosecond()) << 32) / 1e9
	binary.BigEndian.PutUint32(b, uint32(sec))
	binary.BigEndian.PutUint32(b[4:], uint32(frac))
}

// ServeSNTP answers SNTP requests on conn from clock until conn is closed:
// a stratum-1 server for tests and for exposing a disciplined clock.
func ServeSNTP(conn net.PacketConn, clock func() time.Time) error {
	buf := make([]byte, 512)
	for {
		n, addr, err := conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		if n < ntpPacketSize || buf[0]&7 != 3 {
			continue
		}
		recv := clock()
		out := make([]byte, ntpPacketSize)
		out[0] = 0x24 // LI 0, version 4, mode 4 (server)
		out[1] = 1    // stratum 1
		out[3] = 0xec // precision about 2^-20 s
		copy(out[12:16], "GPS\x00")
		copy(out[24:32], buf[40:48])
		putNTPTime(out[16:24], recv)
		putNTPTime(out[32:40], recv)
		putNTPTime(out[40:48], clock())
		conn.WriteTo(out, addr)
	}
}
