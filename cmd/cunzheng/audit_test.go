package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAuditFollowRepeatsUntilStopped: --follow runs round after round until
// its context ends (SIGINT in the real binary), and a round that found a
// problem makes the exit status 1.
func TestAuditFollowRepeatsUntilStopped(t *testing.T) {
	state := filepath.Join(t.TempDir(), "audit")
	var out, errb bytes.Buffer
	a := &app{stdout: &out, stderr: &errb, rand: rand.Reader, now: time.Now}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	code := a.run(ctx, []string{"audit", "--genesis", zeroFP, "--state", state, "--node", "http://127.0.0.1:1", "--follow", "--interval", "50ms"})
	if code != exitFailed {
		t.Fatalf("exit %d, want 1\n%s%s", code, out.String(), errb.String())
	}
	if n := strings.Count(out.String(), "[unreachable]"); n < 2 {
		t.Fatalf("%d rounds reported the unreachable node, want several\n%s", n, out.String())
	}
	if _, err := os.Stat(filepath.Join(state, auditStateFile)); err != nil {
		t.Fatalf("state not written: %v", err)
	}
}
