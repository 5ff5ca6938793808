package evidence_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/cunzheng/cunzheng/evidence"
)

const testOrigin = "evidence.court.example/v1"

// testKey returns a deterministic Ed25519 key for seed byte b.
func testKey(b byte) ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = b
	}
	return ed25519.NewKeyFromSeed(seed)
}

func testSigner(b byte) evidence.Ed25519Signer { return evidence.Ed25519Signer{Key: testKey(b)} }

// testSubmission returns a signed Submission with an SM3 digest beside the
// SHA-256 one, and its opening.
func testSubmission(t testing.TB, file string) (*evidence.Submission, *evidence.Opening) {
	t.Helper()
	signer := testSigner(1)
	sm3 := sha256.Sum256([]byte("sm3 stand-in " + file))
	op := &evidence.Opening{
		CaseRef:    "(2026)京0491民初123号",
		Title:      "contract scan",
		URL:        "https://shop.example/item/1",
		Device:     "scanner 7",
		FileName:   "contract.pdf",
		Provenance: sm3[:],
	}
	if err := op.DeriveSalt([]byte("secret"), evidence.SHA256Digest([]byte(file)).Value); err != nil {
		t.Fatal(err)
	}
	com, err := op.Commitment()
	if err != nil {
		t.Fatal(err)
	}
	sub := &evidence.Submission{
		Digests:    []evidence.Digest{evidence.SHA256Digest([]byte(file)), {Alg: evidence.SM3, Value: sm3[:]}},
		Kind:       evidence.KindDocument,
		Size:       uint64(len(file)),
		Submitter:  signer.Public(),
		Commitment: com,
	}
	if err := sub.Sign(testOrigin, signer); err != nil {
		t.Fatal(err)
	}
	return sub, op
}

func testGovernance(t testing.TB) *evidence.Governance {
	t.Helper()
	admin := testSigner(9)
	g := &evidence.Governance{
		Action:   evidence.ActionRegisterSubmitter,
		IssuedMS: 1767225600000,
		Subject:  testSigner(1).Public(),
		Label:    "alice (律师事务所)",
		Admin:    admin.Public(),
	}
	if err := g.Sign(testOrigin, admin); err != nil {
		t.Fatal(err)
	}
	return g
}

// testMember returns a valid voting member named name with raft ID id.
func testMember(t testing.TB, name string, id uint64) evidence.Member {
	t.Helper()
	_, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	return evidence.Member{
		Name:     name,
		Role:     evidence.RoleCourt,
		RaftID:   id,
		PeerID:   "12D3KooW" + name,
		Addrs:    []string{"/ip4/127.0.0.1/tcp/4001"},
		NoteKey:  vkey,
		AdminKey: testKey(byte(id)).Public().(ed25519.PublicKey),
	}
}

func testManifest(t testing.TB) *evidence.Manifest {
	t.Helper()
	return &evidence.Manifest{
		Origin:    testOrigin,
		Sequence:  1,
		Members:   []evidence.Member{testMember(t, "court-a.example", 1), testMember(t, "court-b.example", 2), testMember(t, "notary.example", 3)},
		Threshold: 2,
		CreatedAt: 1767225600000,
	}
}

func mustMarshal(t testing.TB, f func() ([]byte, error)) []byte {
	t.Helper()
	b, err := f()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
