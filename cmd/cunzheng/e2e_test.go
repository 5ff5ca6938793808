package main

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestEndToEnd drives the real binary against a real node process on a
// loopback address: init, node, keygen, register, submit, verify offline and
// online, tamper, re-submit.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a node")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "cunzheng")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cli := func(wantCode int, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if code != wantCode {
			t.Fatalf("cunzheng %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, wantCode, stdout.String(), stderr.String())
		}
		return stdout.String()
	}

	out := cli(0, "init", "--dir", "node1", "--name", "court.example", "--role", "court")
	fp := regexp.MustCompile(`genesis fingerprint\s+([0-9a-f]{64})`).FindStringSubmatch(out)
	if fp == nil {
		t.Fatalf("init printed no fingerprint:\n%s", out)
	}
	genesis := fp[1]
	for _, f := range []string{"admin.key", "note.key"} {
		if fi, err := os.Stat(filepath.Join(dir, "node1", f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("node1/%s: %v, mode %v; want 0600", f, err, fi.Mode().Perm())
		}
	}

	url := startNode(t, bin, dir)

	cli(0, "keygen", "submitter", "-o", "alice.key")
	cli(0, "submitter", "register", "--node", url, "--admin-key", "node1/admin.key", "--genesis", genesis, "--label", "alice", "alice.pub")

	os.WriteFile(filepath.Join(dir, "video.mp4"), bytes.Repeat([]byte("frame "), 10000), 0o644)
	os.WriteFile(filepath.Join(dir, "page.html"), []byte("<html>infringing copy</html>\n"), 0o644)
	out = cli(0, "submit", "--node", url, "--key", "alice.key", "--genesis", genesis,
		"--case", "(2026)京0491民初123号", "--title", "captured page", "--kind", "web-capture", "video.mp4", "page.html")
	if strings.Count(out, "preserved ") != 2 || !strings.Contains(out, "CZ-") {
		t.Errorf("submit output:\n%s", out)
	}
	first, err := os.ReadFile(filepath.Join(dir, "video.mp4.receipt"))
	if err != nil {
		t.Fatal(err)
	}

	for _, f := range []string{"video.mp4", "page.html"} {
		out = cli(0, "verify", "--receipt", f+".receipt", "--genesis", genesis, f)
		if !strings.Contains(out, "\nVERIFIED") || !strings.Contains(out, "(2026)京0491民初123号") {
			t.Errorf("verify %s:\n%s", f, out)
		}
	}
	cli(0, "verify", "--receipt", "page.html.receipt", "--manifest", "node1/genesis.json", "page.html")
	cli(1, "verify", "--receipt", "video.mp4.receipt", "--genesis", genesis, "page.html")

	// One changed byte: not verified.
	video := filepath.Join(dir, "video.mp4")
	data, _ := os.ReadFile(video)
	data[100] ^= 0x20
	os.WriteFile(video, data, 0o644)
	out = cli(1, "verify", "--receipt", "video.mp4.receipt", "--genesis", genesis, "video.mp4")
	if !strings.Contains(out, "NOT VERIFIED") || !strings.Contains(out, "✗ FAIL  digest matches") {
		t.Errorf("tampered verify:\n%s", out)
	}
	cli(1, "verify", "--node", url, "--genesis", genesis, "video.mp4") // the tampered file is on no record
	data[100] ^= 0x20
	os.WriteFile(video, data, 0o644)

	// Re-submitting the same file and metadata gives the same receipt bytes.
	out = cli(0, "submit", "--node", url, "--key", "alice.key", "--json",
		"--case", "(2026)京0491民初123号", "--title", "captured page", "--kind", "web-capture", "video.mp4")
	if !strings.Contains(out, `"existing":true`) {
		t.Errorf("re-submit did not report an existing record: %s", out)
	}
	again, _ := os.ReadFile(filepath.Join(dir, "video.mp4.receipt"))
	if !bytes.Equal(first, again) {
		t.Error("re-submission wrote a different receipt")
	}

	// Lookup by digest, verified locally.
	out = cli(0, "verify", "--node", url, "--genesis", genesis, "video.mp4")
	if !strings.Contains(out, "\nVERIFIED") {
		t.Errorf("verify --node:\n%s", out)
	}
	os.WriteFile(filepath.Join(dir, "unknown.bin"), []byte("never preserved"), 0o644)
	out = cli(1, "verify", "--node", url, "--genesis", genesis, "unknown.bin")
	if !strings.Contains(out, "未上链") {
		t.Errorf("verify --node of an unknown file:\n%s", out)
	}

	// A key that was never registered may not submit.
	cli(0, "keygen", "submitter", "-o", "mallory.key")
	cli(1, "submit", "--node", url, "--key", "mallory.key", "page.html")
	// Revocation stops alice from preserving new files.
	cli(0, "submitter", "revoke", "--node", url, "--admin-key", "node1/admin.key", "alice.pub")
	os.WriteFile(filepath.Join(dir, "late.txt"), []byte("after revocation"), 0o644)
	cli(1, "submit", "--node", url, "--key", "alice.key", "late.txt")
	if _, err := os.Stat(filepath.Join(dir, "late.txt.receipt")); err == nil {
		t.Error("a receipt was written for a refused submission")
	}
}

// startNode runs `cunzheng node` on a free loopback port and returns its URL
// once it serves; the node is stopped with SIGTERM when the test ends.
func startNode(t *testing.T, bin, dir string) string {
	t.Helper()
	cmd := exec.Command(bin, "node", "--dir", "node1", "--listen", "127.0.0.1:0")
	cmd.Dir = dir
	// The node's logs go to a file, not a buffer, so reading them while the
	// process runs races with nothing.
	logPath := filepath.Join(dir, "node1.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd.Stderr = logFile
	logs := func() string { b, _ := os.ReadFile(logPath); return string(b) }
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	serving := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "serving "); ok {
				select {
				case serving <- u:
				default:
				}
			}
		}
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("node exited with %v after SIGTERM\n%s", err, logs())
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Errorf("node did not stop within 10s of SIGTERM")
		}
	})
	select {
	case u := <-serving:
		if !strings.HasPrefix(u, "http://127.0.0.1:") {
			t.Fatalf("node serves %s, not on loopback", u)
		}
		return u
	case err := <-exited:
		t.Fatalf("node exited before serving: %v\n%s", err, logs())
	case <-time.After(30 * time.Second):
		t.Fatalf("node did not serve within 30s\n%s", logs())
	}
	return ""
}
