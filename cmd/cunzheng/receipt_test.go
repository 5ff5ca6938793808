package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cunzheng/cunzheng/evidence"
	"github.com/cunzheng/cunzheng/testnet"
)

// TestReceiptRefreshAndExport runs a real four-institution network with a
// time service whose nodes answer submits after a 1 ms receipt deadline, so
// submit writes a committed receipt. receipt refresh refuses a tampered
// receipt and one of another network, then turns the committed receipt
// into a final, timestamped one; receipt export writes its parts, and the
// openssl command it prints verifies the token — and fails for a tampered
// checkpoint.txt.
func TestReceiptRefreshAndExport(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a network")
	}
	requireOpenSSL(t)
	dir := t.TempDir()
	bin := buildCLI(t, dir)
	cli := cliRunner(t, bin, dir)

	// Every node answers at once with what it has: a committed receipt.
	nw := startCLITestnet(t, bin, dir, cli, func(nodeDir string) {
		replaceConf(t, nodeDir, "receipt_deadline = 2s", "receipt_deadline = 1ms")
	})
	url, genesis := nw.Nodes[0].URL(), nw.Fingerprint

	// A final receipt within 1 ms is possible but rare: try a few files.
	var file, receipt string
	for i := 0; i < 10 && file == ""; i++ {
		f := "evidence" + string(rune('a'+i)) + ".txt"
		os.WriteFile(filepath.Join(dir, f), []byte("evidence "+f+"\n"), 0o644)
		out := cli(0, "submit", "--node", url, "--key", "alice.key", "--genesis", genesis, "--case", "(2026)京0491民初7号", "--json", f)
		var res submitResult
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("submit --json: %v: %s", err, out)
		}
		if !res.Final {
			file, receipt = f, res.Receipt
		}
	}
	if file == "" {
		t.Fatal("every submit came back final within 1 ms: no committed receipt to refresh")
	}
	out := cli(1, "verify", "--receipt", receipt, "--genesis", genesis, file)
	if !strings.Contains(out, "COMMITTED (已提交，尚未最终确认)") || !strings.Contains(out, "receipt refresh") {
		t.Errorf("verify of a committed receipt:\n%s", out)
	}
	committed, _ := os.ReadFile(filepath.Join(dir, receipt))

	// Refusals leave the receipt as it was.
	tampered := bytes.Replace(committed, []byte("\nleaf "), []byte("\nleaf AAAA"), 1)
	os.WriteFile(filepath.Join(dir, "tampered.receipt"), tampered, 0o644)
	other := newTestNetwork(t, "another network's evidence\n")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"tampered", []string{"--receipt", "tampered.receipt", "--genesis", genesis}, "does not verify"},
		{"another pinned network", []string{"--receipt", receipt, "--genesis", other.fp.String()}, "does not verify"},
		{"another network's receipt", []string{"--receipt", other.receiptPath}, "serves network " + genesis},
	} {
		_, stderr := cliOut(t, bin, dir, 1, append([]string{"receipt", "refresh", "--node", url}, tc.args...)...)
		if !strings.Contains(stderr, tc.want) {
			t.Errorf("%s: stderr %q lacks %q", tc.name, stderr, tc.want)
		}
	}
	if now, _ := os.ReadFile(filepath.Join(dir, receipt)); !bytes.Equal(now, committed) {
		t.Fatal("a refused refresh changed the receipt")
	}

	// Refresh until final and timestamped; exit 3 means not yet.
	var reports string
	for deadline := time.Now().Add(60 * time.Second); ; {
		stdout, stderr, code := cliCode(t, bin, dir, "receipt", "refresh", "--receipt", receipt, "--node", url, "--genesis", genesis)
		switch code {
		case 0:
			reports += stdout
		case exitPending:
			if !strings.Contains(stdout, "try again later") {
				t.Errorf("exit 3 without saying so: %s", stdout)
			}
		default:
			t.Fatalf("refresh: exit %d\n%s%s", code, stdout, stderr)
		}
		rc, err := evidence.ParseReceipt(mustRead(t, filepath.Join(dir, receipt)))
		if err != nil {
			t.Fatal(err)
		}
		if rc.Committed == nil && len(rc.Timestamps) > 0 {
			if rc.Opening == nil {
				t.Error("refresh dropped the metadata opening")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("receipt not final and timestamped within 60s; refresh said:\n%s", reports)
		}
	}
	for _, want := range []string{"committed → final", "timestamp token added: 存证时间", "by tsc.example"} {
		if !strings.Contains(reports, want) {
			t.Errorf("refresh reports lack %q:\n%s", want, reports)
		}
	}
	out = cli(0, "verify", "--receipt", receipt, "--genesis", genesis, file)
	for _, want := range []string{"✓ OK    timestamp token", "存证时间", "UTC+08:00", "by tsc.example, token serial", "leader's received time", "(2026)京0491民初7号"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify of the refreshed receipt lacks %q:\n%s", want, out)
		}
	}
	if out := cli(0, "receipt", "refresh", "--receipt", receipt, "--node", url); !strings.Contains(out, "nothing to refresh") {
		t.Errorf("refresh of a final, timestamped receipt: %s", out)
	}

	// Export, and run the printed openssl command.
	out = cli(0, "receipt", "export", "--receipt", receipt, "--out", "exported", "--genesis", genesis)
	command := opensslLine(t, out)
	if strings.Contains(command, "-attime") {
		t.Errorf("command has -attime though the certificate is valid: %s", command)
	}
	runOpenSSL(t, dir, command, true)
	for _, f := range []string{"leaf.bin", "submission.bin", "opening.bin", "tlog-proof.txt", "token.der", "token.tsr", "tsa.pem", "genesis.json"} {
		if _, err := os.Stat(filepath.Join(dir, "exported", f)); err != nil {
			t.Errorf("export: %v", err)
		}
	}
	cp := mustRead(t, filepath.Join(dir, "exported", "checkpoint.txt"))
	if n := bytes.Count(cp, []byte("\n")); n != 3 || !bytes.HasPrefix(cp, []byte(nw.Origin+"\n")) {
		t.Errorf("checkpoint.txt is not the 3-line checkpoint body:\n%s", cp)
	}
	_, stderr := cliOut(t, bin, dir, 1, "receipt", "export", "--receipt", receipt, "--out", "exported")
	if !strings.Contains(stderr, "not overwriting") {
		t.Errorf("export over existing files: %s", stderr)
	}
	if !bytes.Equal(mustRead(t, filepath.Join(dir, "exported", "checkpoint.txt")), cp) {
		t.Error("a refused export changed checkpoint.txt")
	}
	tamperedCP := bytes.Clone(cp)
	tamperedCP[len(nw.Origin)+1] ^= 1 // the tree size
	os.WriteFile(filepath.Join(dir, "exported", "checkpoint.txt"), tamperedCP, 0o644)
	runOpenSSL(t, dir, command, false)

	// Once the certificate has expired, the command carries -attime.
	var stdoutB, stderrB bytes.Buffer
	a := &app{stdout: &stdoutB, stderr: &stderrB, rand: rand.Reader, now: func() time.Time { return time.Now().AddDate(20, 0, 0) }}
	if code := a.run(context.Background(), []string{"receipt", "export", "--receipt", filepath.Join(dir, receipt),
		"--out", filepath.Join(dir, "later"), "--genesis", genesis}); code != 0 {
		t.Fatalf("export: exit %d: %s", code, stderrB.String())
	}
	command = opensslLine(t, stdoutB.String())
	if !strings.Contains(command, "-attime ") || !strings.Contains(stdoutB.String(), "expired") {
		t.Errorf("export after expiry: no -attime:\n%s", stdoutB.String())
	}
	runOpenSSL(t, dir, command, true)
}

func TestReceiptExportWithoutToken(t *testing.T) {
	n := newTestNetwork(t, "contract v3, signed 2026-01-01\n")
	out := filepath.Join(n.dir, "parts")
	code, stdout, stderr := runCLI(t, "receipt", "export", "--receipt", n.receiptPath, "--out", out, "--genesis", n.fp.String())
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "no timestamp token: there is nothing to check with openssl") {
		t.Errorf("stdout:\n%s", stdout)
	}
	rc, _ := evidence.ParseReceipt(mustRead(t, n.receiptPath))
	for name, want := range map[string][]byte{"leaf.bin": rc.Leaf, "submission.bin": rc.Submission, "opening.bin": rc.Opening, "tlog-proof.txt": rc.Proof} {
		if got := mustRead(t, filepath.Join(out, name)); !bytes.Equal(got, want) {
			t.Errorf("%s differs from the receipt's", name)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "token.tsr")); err == nil {
		t.Error("token.tsr written for a receipt without a token")
	}

	other := newTestNetwork(t, "other\n")
	flipped := bytes.Replace(mustRead(t, n.receiptPath), []byte("\nleaf "), []byte("\nleaf AAAA"), 1)
	os.WriteFile(filepath.Join(n.dir, "bad.receipt"), flipped, 0o644)
	for _, tc := range []struct{ name, receipt, genesis, want string }{
		{"another network", n.receiptPath, other.fp.String(), "does not verify"},
		{"tampered", filepath.Join(n.dir, "bad.receipt"), n.fp.String(), "does not verify"},
	} {
		code, _, stderr := runCLI(t, "receipt", "export", "--receipt", tc.receipt, "--out", filepath.Join(n.dir, tc.name), "--genesis", tc.genesis)
		if code != exitFailed || !strings.Contains(stderr, tc.want) {
			t.Errorf("%s: exit %d, stderr %q", tc.name, code, stderr)
		}
		if _, err := os.Stat(filepath.Join(n.dir, tc.name)); err == nil {
			t.Errorf("%s: a refused export created its directory", tc.name)
		}
	}
}

// startCLITestnet runs a four-institution network (with a time service)
// of binary bin under dir, after configure edits each node directory,
// and registers the submitter key alice.key in dir.
func startCLITestnet(t *testing.T, bin, dir string, cli func(int, ...string) string, configure func(nodeDir string)) *testnet.Network {
	t.Helper()
	base, err := testnet.FreePortBase(20000+int(time.Now().UnixNano()%20000), 4)
	if err != nil {
		t.Fatal(err)
	}
	nw, err := testnet.Create(bin, filepath.Join(dir, "net"), 4, base)
	if err != nil {
		t.Fatal(err)
	}
	if configure != nil {
		for _, nd := range nw.Nodes {
			configure(nd.Dir)
		}
	}
	t.Cleanup(func() {
		if err := nw.Down(); err != nil {
			t.Errorf("testnet down: %v", err)
		}
	})
	if err := nw.Up(bin); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := nw.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	cli(0, "keygen", "submitter", "-o", "alice.key")
	cli(0, "submitter", "register", "--node", nw.Nodes[0].URL(), "--admin-key", filepath.Join(nw.Nodes[0].Dir, "admin.key"),
		"--genesis", nw.Fingerprint, "alice.pub")
	return nw
}

func requireOpenSSL(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("openssl is not installed")
		}
		t.Skip("openssl is not installed")
	}
}

func buildCLI(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "cunzheng")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// cliCode runs the binary in dir and returns its output and exit code.
func cliCode(t *testing.T, bin, dir string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return o.String(), e.String(), code
}

func cliOut(t *testing.T, bin, dir string, wantCode int, args ...string) (stdout, stderr string) {
	t.Helper()
	stdout, stderr, code := cliCode(t, bin, dir, args...)
	if code != wantCode {
		t.Fatalf("cunzheng %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, wantCode, stdout, stderr)
	}
	return stdout, stderr
}

func cliRunner(t *testing.T, bin, dir string) func(int, ...string) string {
	return func(wantCode int, args ...string) string {
		t.Helper()
		stdout, _ := cliOut(t, bin, dir, wantCode, args...)
		return stdout
	}
}

func replaceConf(t *testing.T, nodeDir, old, repl string) {
	t.Helper()
	path := filepath.Join(nodeDir, "node.conf")
	data := mustRead(t, path)
	s := strings.Replace(string(data), "\n"+old+"\n", "\n"+repl+"\n", 1)
	if s == string(data) {
		t.Fatalf("%s has no line %q", path, old)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// opensslLine returns the openssl command export printed.
func opensslLine(t *testing.T, out string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if c, ok := strings.CutPrefix(l, "  openssl ts -verify "); ok {
			return "openssl ts -verify " + c
		}
	}
	t.Fatalf("export printed no openssl command:\n%s", out)
	return ""
}

// runOpenSSL runs the printed command (its arguments need no quoting here)
// in dir and checks that openssl accepts, or refuses, the token.
func runOpenSSL(t *testing.T, dir, command string, wantOK bool) {
	t.Helper()
	args := strings.Fields(command)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	ok := err == nil && strings.Contains(string(out), "Verification: OK")
	if ok != wantOK {
		t.Fatalf("%s: %v, want success %v\n%s", command, err, wantOK, out)
	}
}
