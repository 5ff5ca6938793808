package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cunzheng/cunzheng/evidence"
)

func TestCertificateCommand(t *testing.T) {
	n := newTestNetwork(t, "contract v3, signed 2026-01-01\n")
	out := filepath.Join(n.dir, "cert.pdf")
	fp := n.fp.String()
	code, stdout, stderr := runCLI(t, "certificate", "--receipt", n.receiptPath, "--genesis", fp, "--file", n.file,
		"--url", "https://court.example", "-o", out)
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, stdout, stderr)
	}
	rid := evidence.RecordID(n.fp, 1)
	if !strings.Contains(stdout, "certificate of record "+rid) || !strings.Contains(stdout, "QR: https://court.example/verify?") {
		t.Errorf("stdout: %s", stdout)
	}
	if pdf, _ := os.ReadFile(out); !bytes.HasPrefix(pdf, []byte("%PDF-")) {
		t.Fatal("no PDF written")
	}

	// A file that is not the preserved one: nothing written, exit 1.
	other := filepath.Join(n.dir, "other.pdf")
	os.WriteFile(other, []byte("changed"), 0o644)
	out2 := filepath.Join(n.dir, "cert2.pdf")
	code, stdout, _ = runCLI(t, "certificate", "--receipt", n.receiptPath, "--genesis", fp, "--file", other, "-o", out2)
	if code != exitFailed || !strings.Contains(stdout, "no certificate written") {
		t.Errorf("mismatching file: exit %d, stdout %s", code, stdout)
	}
	if _, err := os.Stat(out2); err == nil {
		t.Error("a certificate was written for a file that does not match")
	}
	// The network must be pinned.
	if code, _, _ := runCLI(t, "certificate", "--receipt", n.receiptPath, "-o", out2); code != exitUsage {
		t.Errorf("without --genesis: exit %d, want 2", code)
	}
}

func TestVerifierPageCommand(t *testing.T) {
	n := newTestNetwork(t, "x")
	out := filepath.Join(n.dir, "verify.html")
	code, stdout, stderr := runCLI(t, "verifier-page", "--manifest", n.manifestPath, "-o", out)
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, stdout, stderr)
	}
	page, _ := os.ReadFile(out)
	for _, want := range []string{n.fp.String(), "court.example/log", `data-mode="offline"`, "connect-src 'none'", "data-b64="} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("page lacks %q", want)
		}
	}
	// --genesis alone works; a --genesis that disagrees with --manifest does not.
	if code, _, stderr := runCLI(t, "verifier-page", "--genesis", n.fp.String(), "-o", out); code != 0 {
		t.Errorf("--genesis alone: exit %d %s", code, stderr)
	}
	wrong := strings.Repeat("ab", 32)
	if code, _, _ := runCLI(t, "verifier-page", "--genesis", wrong, "--manifest", n.manifestPath, "-o", out); code != exitFailed {
		t.Errorf("disagreeing --genesis: exit %d, want 1", code)
	}
	if code, _, _ := runCLI(t, "verifier-page", "-o", out); code != exitUsage {
		t.Errorf("no network: exit %d, want 2", code)
	}
}
