package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cunzheng/cunzheng/evidence"
)

// TestReceiptRefreshExtend runs a real four-institution network with a
// time service: a complete receipt is extended, once more records made a
// newer final checkpoint, to that checkpoint with its token; the CLI
// verifies the extended receipt, export still writes the original parts
// (and the openssl command still verifies the original token) plus the
// extension's, and openssl accepts the newer checkpoint's token too.
func TestReceiptRefreshExtend(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a network")
	}
	requireOpenSSL(t)
	dir := t.TempDir()
	bin := buildCLI(t, dir)
	cli := cliRunner(t, bin, dir)

	nw := startCLITestnet(t, bin, dir, cli, nil)
	url, genesis := nw.Nodes[0].URL(), nw.Fingerprint
	submit := func(name string) string {
		t.Helper()
		os.WriteFile(filepath.Join(dir, name), []byte("evidence "+name+"\n"), 0o644)
		out := cli(0, "submit", "--node", url, "--key", "alice.key", "--genesis", genesis, "--json", name)
		var res submitResult
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("submit --json: %v: %s", err, out)
		}
		return res.Receipt
	}
	receipt := submit("first.txt")
	path := filepath.Join(dir, receipt)

	// refreshUntil runs receipt refresh until done says the receipt is as
	// wanted; exit 3 means not yet.
	refreshUntil := func(what string, done func(*evidence.Receipt) bool, args ...string) string {
		t.Helper()
		var reports string
		for deadline := time.Now().Add(60 * time.Second); ; {
			rc, err := evidence.ParseReceipt(mustRead(t, path))
			if err != nil {
				t.Fatal(err)
			}
			if done(rc) {
				return reports
			}
			if time.Now().After(deadline) {
				t.Fatalf("receipt not %s within 60s; refresh said:\n%s", what, reports)
			}
			stdout, stderr, code := cliCode(t, bin, dir, append([]string{"receipt", "refresh", "--receipt", receipt, "--node", url, "--genesis", genesis}, args...)...)
			switch code {
			case 0, exitPending:
				reports += stdout
			default:
				t.Fatalf("refresh %v: exit %d\n%s%s", args, code, stdout, stderr)
			}
		}
	}
	refreshUntil("final and timestamped", func(rc *evidence.Receipt) bool { return rc.Committed == nil && len(rc.Timestamps) > 0 })
	original, _ := evidence.ParseReceipt(mustRead(t, path))

	stdout, _ := cliOut(t, bin, dir, exitPending, "receipt", "refresh", "--extend", "--receipt", receipt, "--node", url, "--genesis", genesis)
	if !strings.Contains(stdout, "nothing newer") {
		t.Errorf("extend with no newer checkpoint: %s", stdout)
	}

	submit("second.txt")
	submit("third.txt")
	reports := refreshUntil("extended with a token", func(rc *evidence.Receipt) bool {
		if rc.Extension == nil {
			return false
		}
		e, err := evidence.ParseExtension(rc.Extension)
		return err == nil && len(e.Timestamps) > 0
	}, "--extend")
	for _, want := range []string{"extended record", "→ final tree of size", "存证时间 unchanged"} {
		if !strings.Contains(reports, want) {
			t.Errorf("extend reports lack %q:\n%s", want, reports)
		}
	}
	extended, _ := evidence.ParseReceipt(mustRead(t, path))
	if string(extended.Proof) != string(original.Proof) || len(extended.Timestamps) != 1 ||
		string(extended.Timestamps[0]) != string(original.Timestamps[0]) || extended.Opening == nil {
		t.Error("extending changed the receipt's proof, token or opening")
	}

	out := cli(0, "verify", "--receipt", receipt, "--genesis", genesis, "first.txt")
	for _, want := range []string{"✓ OK    consistency to newer checkpoint — extends to the final tree of size", "extended     to the final tree of size", "VERIFIED"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify of the extended receipt lacks %q:\n%s", want, out)
		}
	}
	cli(1, "verify", "--receipt", receipt, "--genesis", genesis, "second.txt")

	out = cli(0, "receipt", "export", "--receipt", receipt, "--out", "exported", "--genesis", genesis)
	runOpenSSL(t, dir, opensslLine(t, out), true)
	for _, f := range []string{"tlog-proof.txt", "checkpoint.txt", "token.tsr", "newer-checkpoint.note", "newer-checkpoint.txt", "consistency-proof.txt", "newer-token.der"} {
		if _, err := os.Stat(filepath.Join(dir, "exported", f)); err != nil {
			t.Errorf("export: %v", err)
		}
	}
	// The newer checkpoint's token checks with openssl too, over the newer body.
	ex := filepath.Join(dir, "exported")
	runOpenSSL(t, dir, "openssl ts -verify -token_in -in "+filepath.Join(ex, "newer-token.der")+" -data "+filepath.Join(ex, "newer-checkpoint.txt")+
		" -CAfile "+filepath.Join(ex, "tsa.pem"), true)
	runOpenSSL(t, dir, "openssl ts -verify -token_in -in "+filepath.Join(ex, "newer-token.der")+" -data "+filepath.Join(ex, "checkpoint.txt")+
		" -CAfile "+filepath.Join(ex, "tsa.pem"), false)
}
