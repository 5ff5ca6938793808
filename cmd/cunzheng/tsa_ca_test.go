package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestTimeServiceWithExternalCA makes a root CA and a TSA certificate with
// the real openssl (an independent implementation), gives them to `cunzheng
// init --role time-service --tsa-cert --tsa-key`, runs that institution as
// a network of one, preserves a file, and checks that the receipt carries
// a token that the offline verifier shows as 存证时间 and that the openssl
// command `receipt export` prints accepts, trusting only the CA's root.
func TestTimeServiceWithExternalCA(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a node")
	}
	requireOpenSSL(t)
	dir := t.TempDir()
	bin := buildCLI(t, dir)
	cli := cliRunner(t, bin, dir)
	openssl := func(args ...string) {
		t.Helper()
		cmd := exec.Command("openssl", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
	}
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-subj", "/CN=Test Root CA", "-days", "3650", "-keyout", "ca.key", "-out", "ca.pem",
		"-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
	openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-subj", "/CN=tsc.example TSA", "-keyout", "tsa.key", "-out", "tsa.csr")
	write("tsa.ext", "extendedKeyUsage=critical,timeStamping\nkeyUsage=critical,digitalSignature\n")
	openssl("x509", "-req", "-in", "tsa.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
		"-days", "365", "-extfile", "tsa.ext", "-out", "tsa.pem")
	tsaPEM, caPEM := mustRead(t, filepath.Join(dir, "tsa.pem")), mustRead(t, filepath.Join(dir, "ca.pem"))
	write("chain.pem", string(tsaPEM)+string(caPEM))

	out := cli(0, "init", "--dir", "node1", "--name", "tsc.example", "--role", "time-service",
		"--tsa-cert", "chain.pem", "--tsa-key", "tsa.key")
	m := regexp.MustCompile(`genesis fingerprint\s+([0-9a-f]{64})`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("init printed no fingerprint:\n%s", out)
	}
	genesis := m[1]
	url := startNode(t, bin, dir)
	cli(0, "keygen", "submitter", "-o", "alice.key")
	cli(0, "submitter", "register", "--node", url, "--admin-key", "node1/admin.key", "--genesis", genesis, "alice.pub")
	write("contract.pdf", "a contract, stamped by a CA-certified time service\n")
	cli(0, "submit", "--node", url, "--key", "alice.key", "--genesis", genesis, "contract.pdf")

	out = cli(0, "verify", "--receipt", "contract.pdf.receipt", "--genesis", genesis, "contract.pdf")
	if !strings.Contains(out, "存证时间") || !strings.Contains(out, "tsc.example") {
		t.Fatalf("verify shows no token time:\n%s", out)
	}
	out = cli(0, "receipt", "export", "--receipt", "contract.pdf.receipt", "--genesis", genesis, "--out", "parts")
	command := opensslLine(t, out)
	if !strings.Contains(command, "-untrusted") {
		t.Fatalf("a CA-issued TSA certificate needs -untrusted for the chain: %s", command)
	}
	runOpenSSL(t, dir, command, true)
	// Trusting only the root this test's CA made, not the exported one.
	trustOurs := regexp.MustCompile(`-CAfile \S+`).ReplaceAllString(command, "-CAfile "+filepath.Join(dir, "ca.pem"))
	runOpenSSL(t, dir, trustOurs, true)
	// A checkpoint body changed by one byte is refused.
	body := mustRead(t, filepath.Join(dir, "parts", "checkpoint.txt"))
	body[len(body)-2] ^= 1
	os.WriteFile(filepath.Join(dir, "parts", "checkpoint.txt"), body, 0o644)
	runOpenSSL(t, dir, command, false)
}
