// Command cunzheng is the one binary of the cunzheng evidence-preservation
// network: it sets up and runs a node, manages submitter keys, preserves
// evidence files and verifies them, offline from a receipt or against a node.
//
// Exit codes: 0 success (for verify: verified), 1 not verified or the
// operation failed, 2 usage error.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// Exit codes, documented in `cunzheng --help`.
const (
	exitOK     = 0
	exitFailed = 1 // not verified, or the operation failed
	exitUsage  = 2 // bad flags or arguments
)

// app holds what commands take from the outside world, so tests can run the
// whole CLI in-process with their own streams, clock and randomness.
type app struct {
	stdout, stderr io.Writer
	rand           io.Reader
	now            func() time.Time
	stderrTTY      bool // show progress bars on stderr
}

func main() {
	a := &app{
		stdout:    os.Stdout,
		stderr:    os.Stderr,
		rand:      rand.Reader,
		now:       time.Now,
		stderrTTY: isTerminal(os.Stderr),
	}
	os.Exit(a.run(context.Background(), os.Args[1:]))
}

// isTerminal reports whether f is a character device (a terminal), without
// reaching for a terminal library: progress bars are the only use.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// exitError carries an exit code. A nil err means the outcome was already
// reported on stdout (a "NOT VERIFIED" verdict) and needs no error line.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// errReported ends a command with exit 1 after it printed its own verdict.
var errReported = &exitError{code: exitFailed}

// run executes the CLI with args and returns the process exit code.
func (a *app) run(ctx context.Context, args []string) int {
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	code := exitFailed
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
		if ee.err == nil {
			return code
		}
	}
	fmt.Fprintf(a.stderr, "cunzheng: %s\n", oneLine(err.Error()))
	if code == exitUsage && cmd != nil {
		fmt.Fprintf(a.stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return code
}

// oneLine keeps an error message on one line of the terminal.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

const rootLong = `cunzheng (存证) preserves electronic evidence on a permissioned transparency
log run by institutions a court trusts, and verifies it — offline from a
receipt, or against a node.

Evidence files never leave your machine: only their SHA-256 digest and a
signed, salted commitment to the metadata are submitted.

Exit codes:
  0  success; for verify: VERIFIED
  1  NOT VERIFIED, not preserved, or the operation failed
  2  usage error (bad flags or arguments)
  3  receipt refresh: the node has nothing newer yet (try again later)`

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "cunzheng",
		Short:         "Preserve and verify electronic evidence (存证)",
		Long:          rootLong,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &exitError{code: exitUsage, err: err}
	})
	groupCommand(root)
	root.AddCommand(
		a.initCommand(),
		a.nodeCommand(),
		a.keygenCommand(),
		a.submitterCommand(),
		a.submitCommand(),
		a.verifyCommand(),
		a.verifierPageCommand(),
		a.certificateCommand(),
		a.genesisCommand(),
		a.memberCommand(),
		a.testnetCommand(),
		a.auditCommand(),
		a.receiptCommand(),
	)
	return root
}

// groupCommand makes a command that only holds subcommands fail with a usage
// error (exit 2) when called alone or with an unknown subcommand, instead of
// cobra's default of printing help and exiting 0.
func groupCommand(c *cobra.Command) {
	c.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usageErrorf("unknown command %q for '%s'", args[0], cmd.CommandPath())
		}
		return nil
	}
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		var names []string
		for _, s := range cmd.Commands() {
			if s.IsAvailableCommand() {
				names = append(names, s.Name())
			}
		}
		return usageErrorf("'%s' needs a subcommand: %s", cmd.CommandPath(), strings.Join(names, ", "))
	}
}

// exactArgs is cobra.ExactArgs with a usage error.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageErrorf("%s takes %s (got %d arguments)", cmd.CommandPath(), what, len(args))
		}
		return nil
	}
}

// requireFlags returns a usage error naming the first empty required flag.
func requireFlags(cmd *cobra.Command, names ...string) error {
	for _, n := range names {
		if f := cmd.Flags().Lookup(n); f == nil || f.Value.String() == "" {
			return usageErrorf("%s needs --%s", cmd.CommandPath(), n)
		}
	}
	return nil
}
