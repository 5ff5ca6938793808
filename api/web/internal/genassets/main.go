// Command genassets regenerates the verification page's build products:
// assets/verify.wasm (evidence/verify compiled for the browser) and
// assets/wasm_exec.js (the Go runtime glue matching the toolchain that
// compiled it). Run through `go generate ./api/web`; the package's tests
// run it into a temporary directory and fail when the committed files are
// stale.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

func main() {
	dir := flag.String("dir", "assets", "output directory")
	flag.Parse()
	if err := generate(*dir); err != nil {
		fmt.Fprintln(os.Stderr, "genassets:", err)
		os.Exit(1)
	}
}

func generate(dir string) error {
	wasm, err := filepath.Abs(filepath.Join(dir, "verify.wasm"))
	if err != nil {
		return err
	}
	// -trimpath and -s -w make the output depend only on the sources and
	// the toolchain version, so the staleness test can compare bytes.
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", wasm, "github.com/cunzheng/cunzheng/api/web/wasm")
	build.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm", "CGO_ENABLED=0")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build verify.wasm: %w", err)
	}
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		return fmt.Errorf("go env GOROOT: %w", err)
	}
	glue, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "lib", "wasm", "wasm_exec.js"))
	if err != nil {
		return err
	}
	if bytes.Contains(glue, []byte("</script")) {
		return fmt.Errorf("wasm_exec.js contains </script and cannot be inlined")
	}
	return os.WriteFile(filepath.Join(dir, "wasm_exec.js"), glue, 0o644)
}
