package tsa_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/cunzheng/cunzheng/evidence"
	"github.com/cunzheng/cunzheng/evidence/tsa"
)

var body = []byte("evidence.court.example/v1\n7\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")

// manifestWith returns a valid manifest whose time service lists certs.
func manifestWith(t *testing.T, certs ...*x509.Certificate) *evidence.Manifest {
	return manifestForFuzz(t, certs...)
}

func manifestForFuzz(t testing.TB, certs ...*x509.Certificate) *evidence.Manifest {
	t.Helper()
	m := &evidence.Manifest{Origin: "evidence.court.example/v1", Sequence: 1, Threshold: 2, CreatedAt: 1}
	for i, name := range []string{"court.example", "time.example"} {
		_, vkey, err := note.GenerateKey(rand.Reader, name)
		if err != nil {
			t.Fatal(err)
		}
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		mem := evidence.Member{Name: name, Role: evidence.RoleCourt, RaftID: uint64(i + 1), NoteKey: vkey, AdminKey: pub}
		if name == "time.example" {
			mem.Role = evidence.RoleTimeService
			for _, c := range certs {
				mem.TSACerts = append(mem.TSACerts, c.Raw)
			}
		}
		m.Members = append(m.Members, mem)
	}
	if _, err := m.Marshal(); err != nil {
		t.Fatal(err)
	}
	return m
}

func newAuthority(t *testing.T, cfg tsa.Config) *tsa.Authority {
	t.Helper()
	a, err := tsa.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func selfSigned(t *testing.T, now time.Time, validity time.Duration) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	c, k, err := tsa.SelfSigned("time.example", rand.Reader, now, validity)
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}

func TestStampVerifiesAgainstManifest(t *testing.T) {
	cert, key := selfSigned(t, time.Now(), 24*time.Hour)
	a := newAuthority(t, tsa.Config{Certs: []*x509.Certificate{cert}, Key: key})
	tok, err := a.Stamp(context.Background(), body)
	if err != nil {
		t.Fatal(err)
	}
	m := manifestWith(t, cert)
	got, err := evidence.VerifyToken(tok, body, m)
	if err != nil {
		t.Fatal(err)
	}
	if got.Authority != "time.example" || got.Serial == "" || time.Since(got.Time) > time.Minute || got.Accuracy != "1s" {
		t.Errorf("token says %+v", got)
	}

	other, _ := selfSigned(t, time.Now(), time.Hour)
	for _, tc := range []struct {
		name string
		tok  []byte
		body []byte
		m    *evidence.Manifest
	}{
		{"another body", tok, append(bytes.Clone(body), 'x'), m},
		{"a TSA not in the manifest", tok, body, manifestWith(t, other)},
		{"no time service", tok, body, manifestWith(t)},
		{"trailing byte", append(bytes.Clone(tok), 0), body, m},
		{"truncated", tok[:len(tok)-1], body, m},
		{"empty", nil, body, m},
	} {
		if _, err := evidence.VerifyToken(tc.tok, tc.body, tc.m); !errors.Is(err, evidence.ErrToken) {
			t.Errorf("%s: err = %v, want ErrToken", tc.name, err)
		}
	}
	// Every single-bit change of the token is refused or leaves the
	// statement intact (time, serial, authority).
	for i := range len(tok) * 8 {
		b := bytes.Clone(tok)
		b[i/8] ^= 1 << (i % 8)
		if g, err := evidence.VerifyToken(b, body, m); err == nil && (*g != *got) {
			t.Fatalf("bit %d flipped: verified with a different statement %+v", i, g)
		} else if err == nil {
			t.Errorf("bit %d flipped: token still verifies", i)
		}
	}
}

func TestStampRefusedWhenClockSkewed(t *testing.T) {
	cert, key := selfSigned(t, time.Now(), time.Hour)
	ref := &skewedServer{}
	addr := ref.start(t)
	tests := []struct {
		name       string
		refSkew    time.Duration // reference clock minus real time
		localSkew  time.Duration // authority clock minus real time
		wantRefuse bool
	}{
		{"agree", 0, 0, false},
		{"within bound", 300 * time.Millisecond, 0, false},
		{"reference ahead", 5 * time.Second, 0, true},
		{"local clock behind", 0, -3 * time.Second, true},
		{"local clock ahead", 0, 2 * time.Second, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ref.skew.Store(int64(tc.refSkew))
			a := newAuthority(t, tsa.Config{
				Certs: []*x509.Certificate{cert}, Key: key,
				Now:       func() time.Time { return time.Now().Add(tc.localSkew) },
				Reference: tsa.SNTP{Addr: addr},
			})
			tok, err := a.Stamp(context.Background(), body)
			if tc.wantRefuse {
				if !errors.Is(err, tsa.ErrSkew) || tok != nil {
					t.Fatalf("Stamp = %d bytes, %v; want ErrSkew", len(tok), err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("reference unreachable", func(t *testing.T) {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close() // bound but never answers
		a := newAuthority(t, tsa.Config{Certs: []*x509.Certificate{cert}, Key: key,
			Reference: tsa.SNTP{Addr: pc.LocalAddr().String(), Timeout: 200 * time.Millisecond}})
		if _, err := a.Stamp(context.Background(), body); !errors.Is(err, tsa.ErrReference) {
			t.Fatalf("err = %v, want ErrReference", err)
		}
	})
}

// TestOpenSSLVerifiesTokens runs the real openssl ts -verify over tokens
// from a self-signed TSA, a TSA whose certificate chains to a CA, and an
// expired certificate (with -attime).
func TestOpenSSLVerifiesTokens(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("openssl is not installed")
		}
		t.Skip("openssl is not installed")
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	data := write("body.txt", body)
	pemOf := func(cs ...*x509.Certificate) []byte {
		var out []byte
		for _, c := range cs {
			out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
		return out
	}
	verify := func(name string, a *tsa.Authority, m *evidence.Manifest, args ...string) {
		t.Helper()
		tok, err := a.Stamp(context.Background(), body)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := evidence.VerifyToken(tok, body, m); err != nil {
			t.Fatalf("%s: VerifyToken: %v", name, err)
		}
		resp, err := tsa.WrapResponse(tok)
		if err != nil {
			t.Fatal(err)
		}
		tokFile := write(name+".tsr", resp)
		cmd := exec.Command("openssl", append([]string{"ts", "-verify", "-in", tokFile, "-data", data}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Verification: OK") {
			t.Fatalf("%s: openssl %v: %v\n%s", name, cmd.Args, err, out)
		}
		// And openssl refuses the same token for other data.
		cmd = exec.Command("openssl", append([]string{"ts", "-verify", "-in", tokFile, "-data", write("other.txt", []byte("other"))}, args...)...)
		if out, err := cmd.CombinedOutput(); err == nil {
			t.Fatalf("%s: openssl accepted the token for other data:\n%s", name, out)
		}
	}

	cert, key := selfSigned(t, time.Now(), time.Hour)
	verify("selfsigned", newAuthority(t, tsa.Config{Certs: []*x509.Certificate{cert}, Key: key}), manifestWith(t, cert),
		"-CAfile", write("self.pem", pemOf(cert)))

	ca, caKey := testCA(t)
	leaf, leafKey := issueTSA(t, ca, caKey, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	verify("chained", newAuthority(t, tsa.Config{Certs: []*x509.Certificate{leaf, ca}, Key: leafKey}), manifestWith(t, leaf, ca),
		"-CAfile", write("ca.pem", pemOf(ca)), "-untrusted", write("tsa.pem", pemOf(leaf)))

	// A certificate that expires two seconds from now stamps while valid;
	// once it has expired, openssl needs -attime to accept the token, and
	// VerifyToken, which reads no clock, still does.
	short, shortKey := issueTSA(t, ca, caKey, time.Now().Add(-time.Hour), time.Now().Add(2*time.Second))
	m := manifestWith(t, short, ca)
	a := newAuthority(t, tsa.Config{Certs: []*x509.Certificate{short, ca}, Key: shortKey})
	tok, err := a.Stamp(context.Background(), body)
	if err != nil {
		t.Fatal(err)
	}
	stamped := time.Now()
	for deadline := time.Now().Add(5 * time.Second); !time.Now().After(short.NotAfter.Add(time.Second)); {
		if time.Now().After(deadline) {
			t.Fatal("certificate did not expire")
		}
		time.Sleep(50 * time.Millisecond) // waiting for the clock itself
	}
	if _, err := evidence.VerifyToken(tok, body, m); err != nil {
		t.Fatalf("expired certificate's token: %v", err)
	}
	resp, _ := tsa.WrapResponse(tok)
	base := []string{"ts", "-verify", "-in", write("expired.tsr", resp), "-data", data,
		"-CAfile", write("ca.pem", pemOf(ca)), "-untrusted", write("short.pem", pemOf(short))}
	if out, err := exec.Command("openssl", base...).CombinedOutput(); err == nil {
		t.Fatalf("openssl accepted an expired certificate without -attime:\n%s", out)
	}
	at := append(base, "-attime", strconv.FormatInt(stamped.Unix(), 10))
	if out, err := exec.Command("openssl", at...).CombinedOutput(); err != nil || !strings.Contains(string(out), "Verification: OK") {
		t.Fatalf("openssl -attime: %v\n%s", err, out)
	}
}

func testCA(t *testing.T) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test Root CA"},
		NotBefore: time.Now().Add(-10 * 365 * 24 * time.Hour), NotAfter: time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, key
}

func issueTSA(t *testing.T, ca *x509.Certificate, caKey crypto.Signer, from, to time.Time) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "time.example TSA"},
		NotBefore: from, NotAfter: to, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtraExtensions: []pkix.Extension{tsa.TimeStampingEKU()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, key
}

// FuzzVerifyToken: VerifyToken never panics on hostile bytes, and accepts
// nothing but the token the authority issued.
func FuzzVerifyToken(f *testing.F) {
	cert, key, err := tsa.SelfSigned("time.example", rand.Reader, time.Now(), time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	a, err := tsa.New(tsa.Config{Certs: []*x509.Certificate{cert}, Key: key})
	if err != nil {
		f.Fatal(err)
	}
	tok, err := a.Stamp(context.Background(), body)
	if err != nil {
		f.Fatal(err)
	}
	m := manifestForFuzz(f, cert)
	f.Add(tok)
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := evidence.VerifyToken(data, body, m); err == nil && !bytes.Equal(data, tok) {
			t.Fatalf("accepted a token other than the one issued: %x", data)
		}
	})
}
