package certificate_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/cunzheng/cunzheng/chain/checkpoint"
	"github.com/cunzheng/cunzheng/evidence"
	"github.com/cunzheng/cunzheng/evidence/certificate"
	"github.com/cunzheng/cunzheng/evidence/tsa"
)

// oneLeafReceipt builds a receipt for file in a one-leaf log of a fresh
// one-court network, the way a node would.
func oneLeafReceipt(t *testing.T, file []byte, op evidence.Opening) ([]byte, evidence.Fingerprint, ed25519.PublicKey) {
	return oneLeafReceiptStamped(t, file, op, nil)
}

// oneLeafReceiptStamped is oneLeafReceipt with a time-service member whose
// authority stamps the checkpoint, when ta is not nil.
func oneLeafReceiptStamped(t *testing.T, file []byte, op evidence.Opening, ta *tsa.Authority) ([]byte, evidence.Fingerprint, ed25519.PublicKey) {
	t.Helper()
	skey, vkey, _ := note.GenerateKey(rand.Reader, "court.example")
	signer, _ := note.NewSigner(skey)
	adminPub, _, _ := ed25519.GenerateKey(rand.Reader)
	m := &evidence.Manifest{Origin: "court.example/log", Sequence: 1, Threshold: 1, CreatedAt: 1,
		Members: []evidence.Member{{Name: "court.example", Role: evidence.RoleCourt, RaftID: 1, NoteKey: vkey, AdminKey: adminPub}}}
	signers := []note.Signer{signer}
	if ta != nil {
		tskey, tvkey, _ := note.GenerateKey(rand.Reader, "tsc.example")
		tsigner, _ := note.NewSigner(tskey)
		signers = append(signers, tsigner)
		tadmin, _, _ := ed25519.GenerateKey(rand.Reader)
		m.Members = append(m.Members, evidence.Member{Name: "tsc.example", Role: evidence.RoleTimeService, RaftID: 2,
			NoteKey: tvkey, AdminKey: tadmin, TSACerts: ta.CertChain()})
		m.Threshold = 2
	}
	genesis, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	fp, _ := m.Fingerprint()
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	d := sha256.Sum256(file)
	op.DeriveSalt(key.Seed(), d[:])
	c, _ := op.Commitment()
	sub := &evidence.Submission{Digests: []evidence.Digest{{Alg: evidence.SHA256, Value: d[:]}}, Kind: evidence.KindFile,
		Size: uint64(len(file)), Submitter: evidence.Ed25519Signer{Key: key}.Public(), Commitment: c}
	if err := sub.Sign(m.Origin, evidence.Ed25519Signer{Key: key}); err != nil {
		t.Fatal(err)
	}
	subBytes, _ := sub.Marshal()
	leaf, err := evidence.EvidenceLeaf(sub, subBytes, 1767225600000, 1).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	cp := checkpoint.Checkpoint{Origin: m.Origin, Size: 1, Root: tlog.RecordHash(leaf)}
	signed, err := checkpoint.Sign(cp, signers...)
	if err != nil {
		t.Fatal(err)
	}
	opening, _ := op.Marshal()
	rc := &evidence.Receipt{Network: fp, Manifests: [][]byte{genesis}, Submission: subBytes, Opening: opening, Leaf: leaf,
		Proof: (&checkpoint.Proof{Index: 0, Checkpoint: signed}).Format()}
	if ta != nil {
		tok, err := ta.Stamp(context.Background(), []byte(cp.Body()))
		if err != nil {
			t.Fatal(err)
		}
		rc.Timestamps = [][]byte{tok}
	}
	return rc.Marshal(), fp, pub
}

var fixedNow = func() time.Time { return time.Date(2026, 5, 1, 9, 30, 0, 0, time.UTC) }

func pdftotext(t *testing.T, pdf []byte) string {
	t.Helper()
	if _, err := exec.LookPath("pdftotext"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("CI is set but pdftotext (poppler-utils) is missing")
		}
		t.Skip("pdftotext not found (apt-get install poppler-utils)")
	}
	p := filepath.Join(t.TempDir(), "c.pdf")
	os.WriteFile(p, pdf, 0o644)
	out, err := exec.Command("pdftotext", p, "-").Output()
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestRender(t *testing.T) {
	if _, err := os.Stat(certificate.DefaultFontPath); err != nil && os.Getenv("CI") == "" {
		t.Skipf("no CJK font at %s (apt-get install fonts-droid-fallback)", certificate.DefaultFontPath)
	}
	file := []byte("evidence")
	receipt, fp, pub := oneLeafReceipt(t, file, evidence.Opening{FileName: "capture.png", CaseRef: "(2026)沪0104民初7号"})
	d := sha256.Sum256(file)
	c, err := certificate.Render(receipt, certificate.Options{Pinned: fp, FileSHA256: d[:], BaseURL: "https://court.example/", Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	if c.EnglishOnly || c.Warning != "" || !bytes.HasPrefix(c.PDF, []byte("%PDF-")) {
		t.Fatalf("english-only %v, warning %q", c.EnglishOnly, c.Warning)
	}
	rid := evidence.RecordID(fp, 0)
	wantQR := "https://court.example/verify?checkpoint=" + certificate.CheckpointHash(c.Result) + "&record=" + rid + "&sha256=" + hex.EncodeToString(d[:])
	if c.QR != wantQR {
		t.Errorf("QR %q, want %q", c.QR, wantQR)
	}
	text := pdftotext(t, c.PDF)
	keyHex := hex.EncodeToString(pub)
	for _, want := range []string{rid, hex.EncodeToString(d[:]), "capture.png", "(2026)沪0104民初7号", "2026-01-01 08:00:00.000 (UTC+08:00)",
		"2026-01-01 00:00:00.000 UTC", "court.example", fp.String(), "不证明文件内容的真实性", "it does not prove its content true", "1/1"} {
		if !strings.Contains(text, want) {
			t.Errorf("certificate lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, keyHex) || strings.Contains(text, keyHex[:16]) {
		t.Error("certificate shows the submitter's key unmasked")
	}
}

// TestRenderShowsTokenTime: with a timestamp token, 存证时间 is the token's
// time, with its serial and time service, and the leader's time is second.
func TestRenderShowsTokenTime(t *testing.T) {
	if _, err := os.Stat(certificate.DefaultFontPath); err != nil && os.Getenv("CI") == "" {
		t.Skipf("no CJK font at %s (apt-get install fonts-droid-fallback)", certificate.DefaultFontPath)
	}
	// The signature's signing time is the real clock's, so stamp now.
	stamped := time.Now().UTC().Truncate(time.Second)
	cert, key, err := tsa.SelfSigned("tsc.example", rand.Reader, stamped.Add(-time.Hour), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ta, err := tsa.New(tsa.Config{Certs: []*x509.Certificate{cert}, Key: key, Now: func() time.Time { return stamped }})
	if err != nil {
		t.Fatal(err)
	}
	receipt, fp, _ := oneLeafReceiptStamped(t, []byte("evidence"), evidence.Opening{}, ta)
	c, err := certificate.Render(receipt, certificate.Options{Pinned: fp, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	tok := c.Result.Timestamp
	if tok == nil || !tok.Time.Equal(stamped) {
		t.Fatalf("result timestamp %+v, want %v", tok, stamped)
	}
	text := pdftotext(t, c.PDF)
	const layout = "2006-01-02 15:04:05.000"
	cst := stamped.In(time.FixedZone("", 8*3600)).Format(layout)
	for _, want := range []string{cst + " (UTC+08:00)", stamped.Format(layout) + " UTC", tok.Serial, "tsc.example",
		"可信时间戳", "Leader's received time", "2026-01-01 08:00:00.000 (UTC+08:00)", "unchanged since " + cst} {
		if !strings.Contains(text, want) {
			t.Errorf("certificate lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "no trusted timestamp token yet") {
		t.Errorf("certificate says there is no token:\n%s", text)
	}
}

func TestRenderRefusesWhatDoesNotVerify(t *testing.T) {
	file := []byte("evidence")
	receipt, fp, _ := oneLeafReceipt(t, file, evidence.Opening{})
	_, otherFP, _ := oneLeafReceipt(t, file, evidence.Opening{})
	other := sha256.Sum256([]byte("other"))
	cases := []struct {
		name    string
		receipt []byte
		opts    certificate.Options
	}{
		{"other network", receipt, certificate.Options{Pinned: otherFP}},
		{"other file", receipt, certificate.Options{Pinned: fp, FileSHA256: other[:]}},
		{"truncated", receipt[:len(receipt)-10], certificate.Options{Pinned: fp}},
		{"not a receipt", []byte("hello"), certificate.Options{Pinned: fp}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cert, err := certificate.Render(c.receipt, c.opts)
			if !errors.Is(err, certificate.ErrNotVerified) {
				t.Fatalf("err = %v, want ErrNotVerified", err)
			}
			if cert == nil || cert.PDF != nil || cert.Result == nil || cert.Result.OK() {
				t.Fatalf("rendered a certificate for a receipt that does not verify")
			}
		})
	}
}

func TestRenderEnglishOnlyWithoutFont(t *testing.T) {
	receipt, fp, _ := oneLeafReceipt(t, []byte("x"), evidence.Opening{FileName: "a.txt"})
	c, err := certificate.Render(receipt, certificate.Options{Pinned: fp, FontPath: filepath.Join(t.TempDir(), "none.ttf"), Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	if !c.EnglishOnly || !strings.Contains(c.Warning, "English-only") {
		t.Fatalf("english-only %v, warning %q", c.EnglishOnly, c.Warning)
	}
	if !strings.HasPrefix(c.QR, "cunzheng:verify?") {
		t.Errorf("QR without a base URL: %q", c.QR)
	}
	text := pdftotext(t, c.PDF)
	for _, want := range []string{"Evidence Preservation Certificate", "a.txt", "it does not prove its content true", "Page 1/1"} {
		if !strings.Contains(text, want) {
			t.Errorf("certificate lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "存证") {
		t.Error("English-only certificate has Chinese text")
	}
}

func TestMaskedApplicant(t *testing.T) {
	key := evidence.PublicKey{Alg: evidence.Ed25519, Key: bytes.Repeat([]byte{7}, 32)}
	got := certificate.MaskedApplicant(&evidence.Submission{Submitter: key})
	if !regexp.MustCompile(`^ed25519 key SHA-256 [0-9a-f]{4}…[0-9a-f]{4}$`).MatchString(got) {
		t.Fatalf("masked applicant %q", got)
	}
}
