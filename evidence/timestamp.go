package evidence

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/digitorus/pkcs7"
	"github.com/digitorus/timestamp"
)

// Trusted time. A time service's RFC 3161 token over SHA-256 of a final
// checkpoint body says "this tree, and so every record in it, existed no
// later than T". The time service's signing certificate is pinned in the
// manifest (Member.TSACerts), so a token is trusted because the manifest
// chain from the pinned genesis names its certificate, not because some CA
// vouches for it; a chain to an external CA may ride along for openssl and
// for people who check the CA too.

// MaxTSACerts bounds a time service's certificate chain.
const MaxTSACerts = 4

// MaxTSACertSize bounds one DER certificate.
const MaxTSACertSize = 8 << 10

// MaxTokenSize bounds one RFC 3161 token.
const MaxTokenSize = 16 << 10

// ErrToken marks a timestamp token that does not prove what it should.
var ErrToken = errors.New("evidence: timestamp token invalid")

// oidTimeStamping is id-kp-timeStamping.
var oidTimeStamping = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 8}

// checkTSACerts checks a member's certificate chain: only time services
// have one; the first certificate must be usable by an RFC 3161 TSA (the
// timeStamping extended key usage, critical and alone, as RFC 3161 §2.3
// requires and openssl checks), and each one must be signed by the next.
func checkTSACerts(role Role, certs [][]byte) error {
	if len(certs) == 0 {
		return nil
	}
	if role != RoleTimeService {
		return fmt.Errorf("%w: only a time-service member lists TSA certificates", ErrMalformed)
	}
	if len(certs) > MaxTSACerts {
		return fmt.Errorf("%w: more than %d TSA certificates", ErrMalformed, MaxTSACerts)
	}
	parsed, err := parseTSAChain(certs)
	if err != nil {
		return err
	}
	leaf := parsed[0]
	if len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageTimeStamping || len(leaf.UnknownExtKeyUsage) != 0 {
		return fmt.Errorf("%w: TSA certificate must have exactly the timeStamping extended key usage", ErrMalformed)
	}
	critical := false
	for _, e := range leaf.Extensions {
		if e.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 37}) {
			critical = e.Critical
		}
	}
	if !critical {
		return fmt.Errorf("%w: TSA certificate's extended key usage must be critical (RFC 3161 §2.3)", ErrMalformed)
	}
	for i := 0; i+1 < len(parsed); i++ {
		if err := parsed[i].CheckSignatureFrom(parsed[i+1]); err != nil {
			return fmt.Errorf("%w: TSA certificate %d is not signed by certificate %d: %v", ErrMalformed, i, i+1, err)
		}
	}
	return nil
}

func parseTSAChain(certs [][]byte) ([]*x509.Certificate, error) {
	out := make([]*x509.Certificate, len(certs))
	for i, der := range certs {
		if len(der) > MaxTSACertSize {
			return nil, fmt.Errorf("%w: TSA certificate %d is %d bytes", ErrTooLarge, i, len(der))
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("%w: TSA certificate %d: %v", ErrMalformed, i, err)
		}
		out[i] = c
	}
	return out, nil
}

// Token is what a verified RFC 3161 token says.
type Token struct {
	Time      time.Time `json:"time"`      // the time service's genTime, UTC
	Accuracy  string    `json:"accuracy"`  // as stated by the token ("" if none)
	Serial    string    `json:"serial"`    // the token serial number, hex
	Authority string    `json:"authority"` // the member that signed it
	Subject   string    `json:"subject"`   // its certificate's subject
}

// TimeServices returns the members that list a TSA certificate.
func (m *Manifest) TimeServices() []Member {
	var out []Member
	for _, mem := range m.Members {
		if len(mem.TSACerts) > 0 {
			out = append(out, mem)
		}
	}
	return out
}

// VerifyToken checks an RFC 3161 TimeStampToken (DER) over SHA-256 of body
// against the time services of m: DER form, signed by exactly one signer
// whose certificate is a time service's pinned certificate, the signature
// good, the imprint SHA-256 of body, and the time inside the certificate's
// validity. It reads no clock: an expired certificate still verifies tokens
// it made while valid, as openssl ts -verify -attime does.
func VerifyToken(token, body []byte, m *Manifest) (*Token, error) {
	if len(token) == 0 || len(token) > MaxTokenSize {
		return nil, fmt.Errorf("%w: token is %d bytes (limit %d)", ErrToken, len(token), MaxTokenSize)
	}
	// encoding/asn1 is strict DER: this refuses BER forms that pkcs7.Parse
	// would silently convert, so one token has one encoding.
	var outer struct {
		ContentType asn1.ObjectIdentifier
		Content     asn1.RawValue `asn1:"explicit,tag:0"`
	}
	if rest, err := asn1.Unmarshal(token, &outer); err != nil || len(rest) > 0 {
		return nil, fmt.Errorf("%w: not a DER ContentInfo", ErrToken)
	}
	p7, err := pkcs7.Parse(token)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrToken, err)
	}
	if len(p7.Signers) != 1 || len(p7.CRLs) != 0 {
		return nil, fmt.Errorf("%w: want one signer and no CRLs, got %d and %d", ErrToken, len(p7.Signers), len(p7.CRLs))
	}
	signer := p7.GetOnlySigner()
	if signer == nil {
		return nil, fmt.Errorf("%w: the signer's certificate is not in the token", ErrToken)
	}
	var tsa *Member
	for _, mem := range m.TimeServices() {
		if bytes.Equal(mem.TSACerts[0], signer.Raw) {
			tsa = &mem
			break
		}
	}
	if tsa == nil {
		return nil, fmt.Errorf("%w: signed by %q, which is not a time service of manifest version %d", ErrToken, signer.Subject, m.Sequence)
	}
	for _, c := range p7.Certificates {
		known := false
		for _, k := range tsa.TSACerts {
			known = known || bytes.Equal(k, c.Raw)
		}
		if !known {
			return nil, fmt.Errorf("%w: carries a certificate (%q) outside %s's chain", ErrToken, c.Subject, tsa.Name)
		}
	}
	// No trust store: trust comes from the manifest, and chain building
	// would read the clock.
	if err := p7.Verify(); err != nil {
		return nil, fmt.Errorf("%w: signature: %v", ErrToken, err)
	}
	ts, err := timestamp.Parse(token)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrToken, err)
	}
	want := sha256.Sum256(body)
	if ts.HashAlgorithm != crypto.SHA256 || !bytes.Equal(ts.HashedMessage, want[:]) {
		return nil, fmt.Errorf("%w: it stamps %v %x, not SHA-256 of this checkpoint (%x)", ErrToken, ts.HashAlgorithm, ts.HashedMessage, want)
	}
	if ts.Time.Before(signer.NotBefore) || ts.Time.After(signer.NotAfter) {
		return nil, fmt.Errorf("%w: time %s is outside the certificate's validity %s to %s", ErrToken,
			ts.Time.UTC().Format(time.RFC3339), signer.NotBefore.UTC().Format(time.RFC3339), signer.NotAfter.UTC().Format(time.RFC3339))
	}
	out := &Token{Time: ts.Time.UTC(), Serial: serialHex(ts.SerialNumber), Authority: tsa.Name, Subject: signer.Subject.String()}
	if ts.Accuracy > 0 {
		out.Accuracy = ts.Accuracy.String()
	}
	return out, nil
}

func serialHex(n *big.Int) string {
	if n == nil {
		return ""
	}
	return hex.EncodeToString(n.Bytes())
}

func boolByte(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}
