package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cunzheng/cunzheng/evidence"
)

func TestGenesisCombinesDescriptors(t *testing.T) {
	dir := t.TempDir()
	var descs []string
	for i, role := range []string{"court", "notary", "time-service", "appraisal", "observer"} {
		d := filepath.Join(dir, role)
		name := role + ".example"
		if code, _, stderr := runCLI(t, "init", "--dir", d, "--name", name, "--role", role,
			"--p2p-listen", "/ip4/127.0.0.1/tcp/"+string(rune('1'+i))+"000"); code != 0 {
			t.Fatalf("init %s: %s", role, stderr)
		}
		descs = append(descs, filepath.Join(d, "descriptor.json"))
	}
	if _, err := os.Stat(filepath.Join(dir, "observer", "genesis.json")); err == nil {
		t.Fatal("an observer's init wrote a one-member genesis")
	}
	out := filepath.Join(dir, "genesis.json")
	code, stdout, stderr := runCLI(t, append([]string{"genesis", "--origin", "evidence.example/v1", "-o", out}, descs...)...)
	if code != 0 {
		t.Fatalf("genesis: %s", stderr)
	}
	data, _ := os.ReadFile(out)
	m, fp, err := evidence.ParseManifestFile(data)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout, fp.String()) || len(m.Members) != 5 || m.Threshold != 3 {
		t.Fatalf("manifest: %d members, threshold %d, stdout %q", len(m.Members), m.Threshold, stdout)
	}
	// Bad inputs: nothing written, clear error.
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"duplicate", []string{descs[0], descs[0]}, 1, "duplicate"},
		{"threshold not a majority", []string{"--threshold", "1", descs[0], descs[1], descs[2]}, 1, "majority"},
		{"no descriptors", nil, 2, "at least one descriptor"},
		{"not a descriptor", []string{out}, 1, "descriptor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := filepath.Join(t.TempDir(), "g.json")
			code, _, stderr := runCLI(t, append([]string{"genesis", "--origin", "evidence.example/v1", "-o", o}, tc.args...)...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d (want %d), stderr %q", code, tc.code, stderr)
			}
			if _, err := os.Stat(o); err == nil {
				t.Fatal("a bad genesis was written")
			}
		})
	}
}
