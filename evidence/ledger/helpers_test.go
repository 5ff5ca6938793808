package ledger_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"path/filepath"
	"testing"

	"github.com/cunzheng/cunzheng/chain/store"
	"github.com/cunzheng/cunzheng/evidence"
	"github.com/cunzheng/cunzheng/evidence/ledger"
)

// oneInstitution is a network of one institution for ledger tests.
type oneInstitution struct {
	in      institution
	m       *evidence.Manifest
	genesis []byte
	fp      evidence.Fingerprint
}

func newOneInstitution(t *testing.T) *oneInstitution {
	in := newInstitution(t, "court.example", 1)
	m := &evidence.Manifest{Origin: "court.example/log", Sequence: 1, Threshold: 1, CreatedAt: 1, Members: []evidence.Member{in.member}}
	genesis, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	fp, _ := m.Fingerprint()
	return &oneInstitution{in: in, m: m, genesis: genesis, fp: fp}
}

// open opens a ledger on a fresh store; cfg supplies optional fields.
func (o *oneInstitution) open(t *testing.T, cfg ledger.Config) (*ledger.Ledger, *store.Store) {
	st, err := store.Open(filepath.Join(t.TempDir(), "db"), o.fp, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store, cfg.Genesis, cfg.Signer = st, o.genesis, o.in.signer
	l, err := ledger.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(); st.Close() })
	return l, st
}

// registerSubmitter registers a new submitter key and returns it.
func (o *oneInstitution) registerSubmitter(t *testing.T, l *ledger.Ledger) ed25519.PrivateKey {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	g := &evidence.Governance{Action: evidence.ActionRegisterSubmitter, IssuedMS: 1,
		Subject: evidence.PublicKey{Alg: evidence.Ed25519, Key: pub}, Admin: evidence.Ed25519Signer{Key: o.in.admin}.Public()}
	if err := g.Sign(o.m.Origin, evidence.Ed25519Signer{Key: o.in.admin}); err != nil {
		t.Fatal(err)
	}
	enc, _ := g.Marshal()
	if _, _, err := l.SubmitGovernance(context.Background(), enc); err != nil {
		t.Fatal(err)
	}
	return priv
}

// submission builds a signed Submission of the evidence data.
func (o *oneInstitution) submission(t *testing.T, key ed25519.PrivateKey, data string) []byte {
	d := sha256.Sum256([]byte(data))
	s := &evidence.Submission{Digests: []evidence.Digest{{Alg: evidence.SHA256, Value: d[:]}}, Kind: evidence.KindFile, Size: 1,
		Submitter: evidence.Ed25519Signer{Key: key}.Public()}
	if err := s.Sign(o.m.Origin, evidence.Ed25519Signer{Key: key}); err != nil {
		t.Fatal(err)
	}
	enc, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return enc
}
