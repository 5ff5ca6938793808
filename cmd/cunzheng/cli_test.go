package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/cunzheng/cunzheng/chain/checkpoint"
	"github.com/cunzheng/cunzheng/evidence"
	"github.com/cunzheng/cunzheng/evidence/verify"
)

// runCLI runs the CLI in-process and returns its exit code and output.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	a := &app{stdout: &out, stderr: &errb, rand: rand.Reader, now: time.Now}
	code = a.run(context.Background(), args)
	return code, out.String(), errb.String()
}

const zeroFP = "0000000000000000000000000000000000000000000000000000000000000000"

func TestUsageErrorsExit2(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"no command", nil},
		{"unknown command", []string{"frob"}},
		{"unknown flag", []string{"verify", "--bogus", "f"}},
		{"verify without file", []string{"verify", "--receipt", "r", "--genesis", zeroFP}},
		{"verify two files", []string{"verify", "--receipt", "r", "--genesis", zeroFP, "a", "b"}},
		{"verify without pin", []string{"verify", "--receipt", "r", "f"}},
		{"verify with both pins", []string{"verify", "--receipt", "r", "--genesis", zeroFP, "--manifest", "m", "f"}},
		{"verify receipt and node", []string{"verify", "--receipt", "r", "--node", "http://127.0.0.1:1", "--genesis", zeroFP, "f"}},
		{"verify neither receipt nor node", []string{"verify", "--genesis", zeroFP, "f"}},
		{"verify bad fingerprint", []string{"verify", "--receipt", "r", "--genesis", "abc", "f"}},
		{"verify bad node URL", []string{"verify", "--node", "127.0.0.1:8080", "--genesis", zeroFP, "f"}},
		{"submit without node", []string{"submit", "--key", "k", "f"}},
		{"submit without key", []string{"submit", "--node", "http://127.0.0.1:1", "f"}},
		{"submit without files", []string{"submit", "--node", "http://127.0.0.1:1", "--key", "k"}},
		{"submit bad kind", []string{"submit", "--node", "http://127.0.0.1:1", "--key", "k", "--kind", "hologram", "f"}},
		{"submit bad node URL", []string{"submit", "--node", "ftp://x", "--key", "k", "f"}},
		{"keygen alone", []string{"keygen"}},
		{"keygen unknown kind", []string{"keygen", "robot", "-o", "x.key"}},
		{"keygen without -o", []string{"keygen", "submitter"}},
		{"submitter alone", []string{"submitter"}},
		{"register without admin key", []string{"submitter", "register", "--node", "http://127.0.0.1:1", "a.pub"}},
		{"register without pub", []string{"submitter", "register", "--node", "http://127.0.0.1:1", "--admin-key", "k"}},
		{"init without role", []string{"init", "--dir", "d", "--name", "court.example"}},
		{"init bad name", []string{"init", "--dir", "d", "--name", "court example", "--role", "court"}},
		{"init bad role", []string{"init", "--dir", "d", "--name", "court.example", "--role", "judge"}},
		{"init bad origin", []string{"init", "--dir", "d", "--name", "c", "--role", "court", "--origin", "https://x/log"}},
		{"node without dir", []string{"node"}},
		{"audit without node", []string{"audit", "--genesis", zeroFP, "--state", "s"}},
		{"audit without state", []string{"audit", "--genesis", zeroFP, "--node", "http://127.0.0.1:1"}},
		{"audit without genesis", []string{"audit", "--state", "s", "--node", "http://127.0.0.1:1"}},
		{"audit once and follow", []string{"audit", "--genesis", zeroFP, "--state", "s", "--node", "http://127.0.0.1:1", "--once", "--follow"}},
		{"audit bad interval", []string{"audit", "--genesis", zeroFP, "--state", "s", "--node", "http://127.0.0.1:1", "--follow", "--interval", "0s"}},
		{"audit node twice", []string{"audit", "--genesis", zeroFP, "--state", "s", "--node", "http://127.0.0.1:1", "--node", "http://127.0.0.1:1"}},
		{"audit bad fingerprint", []string{"audit", "--genesis", "abc", "--state", "s", "--node", "http://127.0.0.1:1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Chdir(t.TempDir()) // nothing a usage error must create can leak
			code, stdout, stderr := runCLI(t, tt.args...)
			if code != exitUsage {
				t.Fatalf("exit %d, want 2; stdout %q stderr %q", code, stdout, stderr)
			}
			lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
			if !strings.HasPrefix(lines[0], "cunzheng: ") || len(lines) != 2 || !strings.Contains(lines[1], "--help") {
				t.Errorf("stderr %q: want one error line and a --help hint", stderr)
			}
			if entries, _ := os.ReadDir("."); len(entries) != 0 {
				t.Errorf("usage error left files behind: %v", entries)
			}
		})
	}
}

func TestHelpDocumentsExitCodes(t *testing.T) {
	code, stdout, _ := runCLI(t, "--help")
	if code != 0 {
		t.Fatalf("--help exit %d", code)
	}
	for _, want := range []string{"Exit codes", "0  success", "1  NOT VERIFIED", "2  usage error", "submit", "verify"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
}

func TestKeygenSubmitter(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "alice.key")
	code, stdout, stderr := runCLI(t, "keygen", "submitter", "-o", key)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	pubPath := filepath.Join(dir, "alice.pub")
	for path, mode := range map[string]os.FileMode{key: 0o600, pubPath: 0o644} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s mode %v, want %v", path, fi.Mode().Perm(), mode)
		}
	}
	priv, err := loadPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := loadPublicKey(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(priv.Public()) {
		t.Error("alice.pub is not the public half of alice.key")
	}
	if !strings.Contains(stdout, pubPath) {
		t.Errorf("stdout %q does not name the public key file", stdout)
	}

	before, _ := os.ReadFile(key)
	code, _, stderr = runCLI(t, "keygen", "submitter", "-o", key)
	if code != exitFailed || !strings.Contains(stderr, "refusing to overwrite") {
		t.Errorf("second keygen: exit %d, stderr %q; want 1 and a refusal", code, stderr)
	}
	if after, _ := os.ReadFile(key); !bytes.Equal(before, after) {
		t.Error("second keygen changed the existing key")
	}

	// An existing .pub alone also stops keygen, without leaving a new .key.
	bob := filepath.Join(dir, "bob.key")
	os.WriteFile(filepath.Join(dir, "bob.pub"), []byte("x"), 0o644)
	if code, _, _ := runCLI(t, "keygen", "submitter", "-o", bob); code != exitFailed {
		t.Errorf("keygen over an existing .pub: exit %d, want 1", code)
	}
	if _, err := os.Stat(bob); err == nil {
		t.Error("keygen left bob.key behind after refusing")
	}
}

// testNetwork is a one-institution network built in-process, with a receipt
// for one evidence file.
type testNetwork struct {
	dir          string
	fp           evidence.Fingerprint
	manifestPath string
	file         string
	receiptPath  string
}

func newTestNetwork(t *testing.T, contentText string) *testNetwork {
	t.Helper()
	dir := t.TempDir()
	const name, origin = "court.example", "court.example/log"
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	noteSigner, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	adminPub, _, _ := ed25519.GenerateKey(rand.Reader)
	m := &evidence.Manifest{
		Origin: origin, Sequence: 1, Threshold: 1, CreatedAt: 1767225600,
		Members: []evidence.Member{{Name: name, Role: evidence.RoleCourt, RaftID: 1, NoteKey: vkey, AdminKey: adminPub}},
	}
	manifestFile, err := evidence.MarshalManifestFile(m)
	if err != nil {
		t.Fatal(err)
	}
	canon, _ := m.Marshal()
	fp, _ := m.Fingerprint()

	content := []byte(contentText)
	digest := sha256.Sum256(content)
	_, subPriv, _ := ed25519.GenerateKey(rand.Reader)
	signer := evidence.Ed25519Signer{Key: subPriv}
	op := &evidence.Opening{CaseRef: "(2026)京0491民初123号", Title: "contract", FileName: "contract.pdf"}
	if err := op.DeriveSalt(subPriv.Seed(), digest[:]); err != nil {
		t.Fatal(err)
	}
	com, _ := op.Commitment()
	opening, _ := op.Marshal()
	sub := &evidence.Submission{
		Digests: []evidence.Digest{{Alg: evidence.SHA256, Value: digest[:]}}, Kind: evidence.KindDocument,
		Size: uint64(len(content)), Submitter: signer.Public(), Commitment: com,
	}
	if err := sub.Sign(origin, signer); err != nil {
		t.Fatal(err)
	}
	subBytes, _ := sub.Marshal()
	other := evidence.SHA256Digest([]byte("another file"))
	leaf0, _ := (&evidence.Leaf{Type: evidence.EntryEvidence, TimeMS: 1767225600000, Height: 1,
		Digests: []evidence.Digest{other}}).Marshal()
	leaf1, err := evidence.EvidenceLeaf(sub, subBytes, 1767225601000, 1).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	h0, h1 := tlog.RecordHash(leaf0), tlog.RecordHash(leaf1)
	root := tlog.NodeHash(h0, h1)
	signed, err := checkpoint.Sign(checkpoint.Checkpoint{Origin: origin, Size: 2, Root: root}, noteSigner)
	if err != nil {
		t.Fatal(err)
	}
	proof := (&checkpoint.Proof{Index: 1, Hashes: tlog.RecordProof{h0}, Checkpoint: signed}).Format()
	rc := &evidence.Receipt{Network: fp, Manifests: [][]byte{canon}, Submission: subBytes, Opening: opening, Leaf: leaf1, Proof: proof}

	n := &testNetwork{
		dir: dir, fp: fp,
		manifestPath: filepath.Join(dir, "genesis.json"),
		file:         filepath.Join(dir, "contract.pdf"),
		receiptPath:  filepath.Join(dir, "contract.pdf.receipt"),
	}
	for path, data := range map[string][]byte{n.manifestPath: manifestFile, n.file: content, n.receiptPath: rc.Marshal()} {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if r := verify.Receipt(rc.Marshal(), digest[:], fp); !r.OK() {
		t.Fatalf("test receipt does not verify: %s", r.Reason)
	}
	return n
}

func TestVerifyOffline(t *testing.T) {
	n := newTestNetwork(t, "contract v3, signed 2026-01-01\n")
	fp := n.fp.String()

	code, stdout, stderr := runCLI(t, "verify", "--receipt", n.receiptPath, "--genesis", fp, n.file)
	if code != 0 {
		t.Fatalf("exit %d, stdout %s stderr %s", code, stdout, stderr)
	}
	for _, want := range []string{
		"✓ OK    digest matches", "✓ OK    submission signature", "✓ OK    leaf", "✓ OK    inclusion proof",
		"✓ OK    checkpoint signatures vs policy", "✓ OK    manifest", "\nVERIFIED",
		"CZ-" + strings.ToUpper(fp[:8]) + "-1", "block height 1",
		"2026-01-01 08:00:01.000 UTC+08:00 (2026-01-01 00:00:01.000 UTC)", "signers      court.example",
		"(2026)京0491民初123号",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}

	code, stdout, _ = runCLI(t, "verify", "--receipt", n.receiptPath, "--manifest", n.manifestPath, n.file)
	if code != 0 || !strings.Contains(stdout, "genesis fingerprint "+fp) {
		t.Errorf("--manifest: exit %d, want 0 and the fingerprint printed:\n%s", code, stdout)
	}

	code, stdout, _ = runCLI(t, "verify", "--json", "--receipt", n.receiptPath, "--genesis", fp, n.file)
	var res verify.Result
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || code != 0 || res.Verdict != verify.Verified || len(res.Checks) < 7 {
		t.Errorf("--json: exit %d, err %v, result %+v", code, err, res)
	}
}

func TestVerifyOfflineRejects(t *testing.T) {
	n := newTestNetwork(t, "contract v3, signed 2026-01-01\n")
	receipt, _ := os.ReadFile(n.receiptPath)
	content, _ := os.ReadFile(n.file)
	write := func(name string, data []byte) string {
		p := filepath.Join(n.dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tampered := bytes.Clone(content)
	tampered[3] ^= 1
	other := newTestNetwork(t, "contract v4, never signed\n")

	tests := []struct {
		name, receipt, file, genesis string
		want                         string
	}{
		{"tampered file", n.receiptPath, write("tampered.pdf", tampered), n.fp.String(), "NOT VERIFIED (不一致): digest matches"},
		{"receipt for another file", other.receiptPath, n.file, other.fp.String(), "NOT VERIFIED (不一致): digest matches"},
		{"another network's genesis", n.receiptPath, n.file, other.fp.String(), "NOT VERIFIED: manifest"},
		{"truncated receipt", write("short.receipt", receipt[:len(receipt)/2]), n.file, n.fp.String(), "NOT VERIFIED"},
	}
	for i := range receipt {
		// A flipped bit anywhere in the receipt must not verify.
		flipped := bytes.Clone(receipt)
		flipped[i] ^= 0x01
		tests = append(tests, struct{ name, receipt, file, genesis, want string }{
			name: "flipped bit at byte " + strconv.Itoa(i), receipt: write("flip.receipt."+strconv.Itoa(i), flipped),
			file: n.file, genesis: n.fp.String(), want: "NOT VERIFIED",
		})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, "verify", "--receipt", tt.receipt, "--genesis", tt.genesis, tt.file)
			if code != exitFailed {
				t.Fatalf("exit %d, want 1\n%s%s", code, stdout, stderr)
			}
			if !strings.Contains(stdout, tt.want) {
				t.Errorf("output lacks %q:\n%s", tt.want, stdout)
			}
			if strings.Contains(stdout, "\nVERIFIED") {
				t.Errorf("output claims VERIFIED:\n%s", stdout)
			}
		})
	}
}

func TestHashFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	data := bytes.Repeat([]byte("evidence"), 1000)
	os.WriteFile(p, data, 0o644)
	var progress bytes.Buffer
	d, err := hashFile(p, &progress)
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(data)
	if !bytes.Equal(d.SHA256, want[:]) || d.Size != uint64(len(data)) {
		t.Errorf("hashFile = %x, %d; want %x, %d", d.SHA256, d.Size, want, len(data))
	}
	if progress.Len() != 0 {
		t.Errorf("small file drew a progress bar: %q", progress.String())
	}
	if _, err := hashFile(dir, nil); err == nil {
		t.Error("hashing a directory succeeded")
	}
}

func TestProgressBar(t *testing.T) {
	var out bytes.Buffer
	bar := &progressBar{out: &out, label: "hashing big.mp4", total: 200 << 20, last: -1}
	chunk := make([]byte, 1<<20)
	for range 200 {
		bar.Write(chunk)
	}
	bar.finish()
	s := out.String()
	if !strings.Contains(s, "100% 200.0 MiB / 200.0 MiB") || !strings.Contains(s, " 50% ") || strings.Count(s, "\r") != 101 {
		t.Errorf("progress output: %d redraws, tail %q", strings.Count(s, "\r"), s[max(0, len(s)-120):])
	}
}
