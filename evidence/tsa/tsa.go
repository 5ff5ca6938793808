// Package tsa is the RFC 3161 timestamp authority that a time-service node
// runs inside itself. It stamps SHA-256 of final checkpoint bodies, and only
// while its clock agrees with a reference clock within a bound: a token
// with a wrong time would be a false statement signed by the time service.
//
// Tokens are built and signed by github.com/digitorus/timestamp; the
// network checks them with evidence.VerifyToken, and they verify with
// openssl ts -verify.
package tsa

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"time"

	"github.com/digitorus/timestamp"
)

// Errors callers branch on.
var (
	// ErrSkew marks a refusal to stamp because the clock is off its reference.
	ErrSkew = errors.New("tsa: clock disagrees with its reference")
	// ErrReference marks a reference clock that could not be read.
	ErrReference = errors.New("tsa: reference clock unavailable")
)

// DefaultMaxSkew is the largest disagreement with the reference clock at
// which the authority still stamps.
const DefaultMaxSkew = time.Second

// DefaultPolicy is the TSA policy OID written into tokens when none is
// configured: a 2.25 (UUID) arc, so it needs no registration.
var DefaultPolicy = asn1.ObjectIdentifier{2, 25, 3161, 20261204}

// Reference is a clock the authority trusts more than its own: it returns
// how far the reference is ahead of local (negative when behind).
type Reference interface {
	Offset(ctx context.Context, local func() time.Time) (time.Duration, error)
}

// Config configures an Authority. Zero values take the defaults.
type Config struct {
	Certs     []*x509.Certificate // signing certificate first, then its chain
	Key       crypto.Signer
	Now       func() time.Time // the authority's clock; time.Now when nil
	Reference Reference        // nil: the local clock is the reference (trusted as is)
	MaxSkew   time.Duration    // DefaultMaxSkew when zero
	Policy    asn1.ObjectIdentifier
}

// Authority issues RFC 3161 tokens.
type Authority struct {
	cfg Config
}

// New checks cfg and returns an Authority.
func New(cfg Config) (*Authority, error) {
	if len(cfg.Certs) == 0 || cfg.Key == nil {
		return nil, errors.New("tsa: a certificate and a key are required")
	}
	if !publicKeysEqual(cfg.Certs[0].PublicKey, cfg.Key.Public()) {
		return nil, errors.New("tsa: the key does not belong to the certificate")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxSkew <= 0 {
		cfg.MaxSkew = DefaultMaxSkew
	}
	if cfg.Policy == nil {
		cfg.Policy = DefaultPolicy
	}
	return &Authority{cfg: cfg}, nil
}

// CertChain returns the DER certificates, signing certificate first, as
// they go into the manifest.
func (a *Authority) CertChain() [][]byte {
	out := make([][]byte, len(a.cfg.Certs))
	for i, c := range a.cfg.Certs {
		out[i] = c.Raw
	}
	return out
}

// CheckClock compares the authority's clock with the reference and returns
// the offset, or ErrSkew / ErrReference.
func (a *Authority) CheckClock(ctx context.Context) (time.Duration, error) {
	if a.cfg.Reference == nil {
		return 0, nil
	}
	off, err := a.cfg.Reference.Offset(ctx, a.cfg.Now)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrReference, err)
	}
	if off > a.cfg.MaxSkew || off < -a.cfg.MaxSkew {
		return off, fmt.Errorf("%w: reference is %v away, bound %v", ErrSkew, off, a.cfg.MaxSkew)
	}
	return off, nil
}

// Stamp returns a DER TimeStampToken over SHA-256 of body, after checking
// the clock against the reference.
func (a *Authority) Stamp(ctx context.Context, body []byte) ([]byte, error) {
	if _, err := a.CheckClock(ctx); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	now := a.cfg.Now().UTC()
	leaf := a.cfg.Certs[0]
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("tsa: certificate is not valid at %s (valid %s to %s)", now.Format(time.RFC3339), leaf.NotBefore.Format(time.RFC3339), leaf.NotAfter.Format(time.RFC3339))
	}
	ts := timestamp.Timestamp{
		HashAlgorithm:     crypto.SHA256,
		HashedMessage:     sum[:],
		Time:              now,
		Accuracy:          a.cfg.MaxSkew,
		Policy:            a.cfg.Policy,
		AddTSACertificate: true,
		Certificates:      a.cfg.Certs[1:],
	}
	resp, err := ts.CreateResponseWithOpts(leaf, a.cfg.Key, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("tsa: sign token: %w", err)
	}
	return TokenFromResponse(resp)
}

// TokenFromResponse extracts the TimeStampToken from a granted
// TimeStampResp (RFC 3161 §2.4.2).
func TokenFromResponse(resp []byte) ([]byte, error) {
	var r struct {
		Status asn1.RawValue
		Token  asn1.RawValue `asn1:"optional"`
	}
	rest, err := asn1.Unmarshal(resp, &r)
	if err != nil || len(rest) > 0 || len(r.Token.FullBytes) == 0 {
		return nil, errors.New("tsa: response carries no token")
	}
	return r.Token.FullBytes, nil
}

// WrapResponse wraps a token into a granted TimeStampResp, the form
// openssl ts -verify -in reads.
func WrapResponse(token []byte) ([]byte, error) {
	type statusInfo struct{ Status int }
	return asn1.Marshal(struct {
		Status statusInfo
		Token  asn1.RawValue
	}{statusInfo{0}, asn1.RawValue{FullBytes: token}})
}

// SelfSigned makes a P-256 key and a self-signed TSA certificate for name,
// valid from now for validity, with the critical timeStamping extended key
// usage RFC 3161 requires.
func SelfSigned(name string, rand io.Reader, now time.Time, validity time.Duration) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand)
	if err != nil {
		return nil, nil, err
	}
	serial, err := randomSerial(rand)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name + " timestamp authority", Organization: []string{name}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtraExtensions:       []pkix.Extension{TimeStampingEKU()},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

// TimeStampingEKU is the extended key usage extension a TSA certificate
// carries: timeStamping alone, marked critical (RFC 3161 §2.3). Go's x509
// writes ExtKeyUsage non-critical, so certificates carry this instead.
func TimeStampingEKU() pkix.Extension {
	v, _ := asn1.Marshal([]asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 8}})
	return pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Critical: true, Value: v}
}

func randomSerial(rand io.Reader) (*big.Int, error) {
	b := make([]byte, 16)
	if _, err := io.ReadFull(rand, b); err != nil {
		return nil, err
	}
	b[0] &= 0x7f
	return new(big.Int).SetBytes(b), nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

// EncodePEM returns the certificate chain (PEM, signing certificate first)
// and the key (PKCS#8 PEM), the forms ReadFiles reads.
func EncodePEM(certs []*x509.Certificate, key crypto.Signer) (chain, keyPEM []byte, err error) {
	for _, c := range certs {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	k, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return chain, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k}), nil
}

// MaxFileSize bounds a certificate or key file.
const MaxFileSize = 64 << 10

// ReadFiles reads what WriteFiles wrote (or an operator's own CA-issued
// chain and key in the same PEM forms). The certificate file may hold the
// chain, signing certificate first.
func ReadFiles(certPath, keyPath string) ([]*x509.Certificate, crypto.Signer, error) {
	certPEM, err := readSmall(certPath)
	if err != nil {
		return nil, nil, err
	}
	certs, err := ParseCertsPEM(certPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", certPath, err)
	}
	keyPEM, err := readSmall(keyPath)
	if err != nil {
		return nil, nil, err
	}
	blk, rest := pem.Decode(keyPEM)
	if blk == nil || len(rest) != 0 && len(trimSpace(rest)) != 0 {
		return nil, nil, fmt.Errorf("%s: want one PEM private key", keyPath)
	}
	var k any
	switch blk.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(blk.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	default:
		err = fmt.Errorf("PEM block %q is not a private key", blk.Type)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("%s: key cannot sign", keyPath)
	}
	return certs, signer, nil
}

// ParseCertsPEM parses one or more PEM certificates and nothing else.
func ParseCertsPEM(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for len(trimSpace(data)) > 0 {
		var blk *pem.Block
		blk, data = pem.Decode(data)
		if blk == nil || blk.Type != "CERTIFICATE" {
			return nil, errors.New("want only PEM CERTIFICATE blocks")
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no certificate")
	}
	return out, nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\n' || b[0] == '\r' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}

func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err == nil && len(b) > MaxFileSize {
		err = fmt.Errorf("%s is larger than %d bytes", path, MaxFileSize)
	}
	return b, err
}
