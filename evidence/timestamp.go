package evidence

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"sync"
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
	if err := checkTokenShape(token); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrToken, err)
	}
	pkcs7Mu.Lock()
	defer pkcs7Mu.Unlock()
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
	// timestamp.Parse checks the signature against the certificate in the
	// token (documented: it does when the token carries one, and the
	// signer's is there, checked above), with no trust store: trust comes
	// from the manifest, and chain building would read the clock.
	ts, err := timestamp.Parse(token)
	if err != nil {
		return nil, fmt.Errorf("%w: signature or content: %v", ErrToken, err)
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

// pkcs7Mu serialises parsing: github.com/digitorus/pkcs7 writes a
// package-level variable (encodeIndent, ber.go) on every parse, so
// concurrent parses race.
var pkcs7Mu sync.Mutex

// tokenShape is the SignedData of an RFC 3161 token (RFC 5652 §5) as this
// network's time services write it, parsed field by field.
type tokenShape struct {
	ContentType asn1.ObjectIdentifier
	SignedData  struct {
		Version          int
		DigestAlgorithms []pkix.AlgorithmIdentifier `asn1:"set"`
		Encapsulated     struct {
			ContentType asn1.ObjectIdentifier
			Content     []byte `asn1:"explicit,tag:0"`
		}
		Certificates asn1.RawValue `asn1:"optional,tag:0"`
		SignerInfos  []struct {
			Version         int
			SignerID        asn1.RawValue
			DigestAlgorithm pkix.AlgorithmIdentifier
			SignedAttrs     asn1.RawValue `asn1:"optional,tag:0"`
			SignatureAlg    pkix.AlgorithmIdentifier
			Signature       []byte
			UnsignedAttrs   asn1.RawValue `asn1:"optional,tag:1"`
		} `asn1:"set"`
	} `asn1:"explicit,tag:0"`
}

var (
	oidSignedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidTSTInfo    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 1, 4}
	oidSHA256     = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
)

// checkTokenShape pins the parts of a token that its signature does not
// cover, so a token has one byte form: strict DER that re-encodes to the
// same bytes (pkcs7.Parse would silently convert BER), the versions RFC
// 3161 and 5652 fix, SHA-256 as the only digest, one signer, no unsigned
// attributes, and TSTInfo content.
func checkTokenShape(token []byte) error {
	var t tokenShape
	rest, err := asn1.Unmarshal(token, &t)
	if err != nil || len(rest) > 0 {
		return errors.New("not a DER ContentInfo")
	}
	if again, err := asn1.Marshal(t); err != nil || !bytes.Equal(again, token) {
		return errors.New("not in canonical DER form")
	}
	sd := &t.SignedData
	switch {
	case !t.ContentType.Equal(oidSignedData):
		return errors.New("not SignedData")
	case sd.Version != 3:
		return fmt.Errorf("SignedData version %d, want 3", sd.Version)
	case len(sd.DigestAlgorithms) != 1 || !sd.DigestAlgorithms[0].Algorithm.Equal(oidSHA256) || len(sd.DigestAlgorithms[0].Parameters.FullBytes) != 0:
		return errors.New("digest algorithms other than SHA-256 alone")
	case !sd.Encapsulated.ContentType.Equal(oidTSTInfo):
		return errors.New("content is not TSTInfo")
	case len(sd.SignerInfos) != 1:
		return fmt.Errorf("%d signers, want 1", len(sd.SignerInfos))
	}
	si := &sd.SignerInfos[0]
	switch {
	case si.Version != 1:
		return fmt.Errorf("SignerInfo version %d, want 1", si.Version)
	case !si.DigestAlgorithm.Algorithm.Equal(oidSHA256) || len(si.DigestAlgorithm.Parameters.FullBytes) != 0:
		return errors.New("signer digest is not SHA-256")
	case len(si.SignedAttrs.FullBytes) == 0:
		return errors.New("no signed attributes")
	case len(si.UnsignedAttrs.FullBytes) != 0:
		return errors.New("unsigned attributes")
	}
	// pkcs7 checks the signature over its own re-encoding of the signed
	// attributes, so their bytes here must be that encoding exactly.
	attrs := si.SignedAttrs.Bytes
	for len(attrs) > 0 {
		var a struct {
			Type   asn1.ObjectIdentifier
			Values []asn1.RawValue `asn1:"set"`
		}
		rest, err := asn1.Unmarshal(attrs, &a)
		if err != nil {
			return errors.New("signed attributes malformed")
		}
		again, err := asn1.Marshal(a)
		if err != nil || !bytes.Equal(again, attrs[:len(attrs)-len(rest)]) {
			return errors.New("signed attributes not in canonical DER form")
		}
		attrs = rest
	}
	return nil
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
