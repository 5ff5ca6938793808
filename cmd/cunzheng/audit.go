package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/cunzheng/cunzheng/api/audit"
	"github.com/cunzheng/cunzheng/evidence"
)

// auditStateFile is the file in --state that keeps what earlier rounds verified.
const auditStateFile = "audit.json"

// auditRoundTimeout bounds one round, so one hung node cannot stall --follow.
const auditRoundTimeout = 2 * time.Minute

type auditOptions struct {
	genesis, stateDir string
	nodes             []string
	once, follow      bool
	interval          time.Duration
	json              bool
}

func (a *app) auditCommand() *cobra.Command {
	var o auditOptions
	c := &cobra.Command{
		Use:   "audit --genesis FINGERPRINT --state DIR (--node URL)... [--once | --follow [--interval 10s]]",
		Short: "Check that the nodes show one append-only history (split views, rollbacks, forged checkpoints)",
		Long: `Fetch every node's latest checkpoint and its manifest chain, and check:
the chain starts at the pinned genesis; the checkpoint is signed by enough
institutions under the newest manifest version; no two checkpoints of the
same tree size — seen now or in an earlier round — have different roots
(SPLIT VIEW); no node shows a smaller tree than it did before (ROLLBACK);
every smaller tree is proved, with a consistency proof from a node holding
the larger one, to be a prefix of the largest (INCONSISTENT otherwise).

What was verified is kept in DIR/audit.json (written atomically), so the
next round proves consistency from there.

--once (the default) runs one round; --follow runs one every --interval
until interrupted.

Exit codes: 0 every node consistent, 1 a finding (the report names the
nodes) or the audit failed, 2 usage error.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "genesis", "state"); err != nil {
				return err
			}
			if len(o.nodes) == 0 {
				return usageErrorf("audit needs at least one --node URL")
			}
			if o.once && o.follow {
				return usageErrorf("audit takes --once or --follow, not both")
			}
			if o.interval <= 0 {
				return usageErrorf("--interval must be positive")
			}
			fp, err := parseGenesisFlag(o.genesis)
			if err != nil {
				return err
			}
			var nodes []audit.Node
			seen := map[string]bool{}
			for _, u := range o.nodes {
				cl, err := newClient(u)
				if err != nil {
					return err
				}
				if seen[cl.URL()] {
					return usageErrorf("--node %s given twice", cl.URL())
				}
				seen[cl.URL()] = true
				nodes = append(nodes, cl)
			}
			if o.follow {
				ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
				defer stop()
				return a.auditFollow(ctx, o, *fp, nodes)
			}
			ok, err := a.auditRound(cmd.Context(), o, *fp, nodes)
			if err != nil {
				return err
			}
			if !ok {
				return errReported
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&o.genesis, "genesis", "", "pinned genesis fingerprint (64 hex digits)")
	f.StringVar(&o.stateDir, "state", "", "directory keeping what earlier rounds verified (created if missing)")
	f.StringArrayVar(&o.nodes, "node", nil, "node URL to audit (repeat for every node)")
	f.BoolVar(&o.once, "once", false, "run one round and exit (the default)")
	f.BoolVar(&o.follow, "follow", false, "run a round every --interval until interrupted")
	f.DurationVar(&o.interval, "interval", 10*time.Second, "time between rounds with --follow")
	f.BoolVar(&o.json, "json", false, "print each round's report as JSON")
	return c
}

// auditFollow runs rounds until ctx ends; the exit status is 1 if any round
// found a problem, since a fork seen once matters even if it went away.
func (a *app) auditFollow(ctx context.Context, o auditOptions, fp evidence.Fingerprint, nodes []audit.Node) error {
	allOK := true
	for {
		ok, err := a.auditRound(ctx, o, fp, nodes)
		if ctx.Err() != nil {
			break
		}
		if err != nil {
			return err
		}
		allOK = allOK && ok
		select {
		case <-ctx.Done():
		case <-time.After(o.interval):
			continue
		}
		break
	}
	if !allOK {
		return errReported
	}
	return nil
}

// auditRound runs one round: load the state, audit, print, store the state.
func (a *app) auditRound(ctx context.Context, o auditOptions, fp evidence.Fingerprint, nodes []audit.Node) (bool, error) {
	path := filepath.Join(o.stateDir, auditStateFile)
	prev, err := loadAuditState(path, fp)
	if err != nil {
		return false, err
	}
	rctx, cancel := context.WithTimeout(ctx, auditRoundTimeout)
	rep, next := audit.Run(rctx, fp, nodes, prev, a.now())
	cancel()
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	data, err := next.Marshal()
	if err != nil {
		return false, err
	}
	if err := os.MkdirAll(o.stateDir, 0o755); err != nil {
		return false, fmt.Errorf("audit state: %w", err)
	}
	if err := writeFileAtomic(path, data, 0o644); err != nil {
		return false, fmt.Errorf("write audit state: %w", err)
	}
	if o.json {
		if err := writeJSON(a.stdout, rep); err != nil {
			return false, err
		}
	} else {
		printAuditReport(a.stdout, rep)
	}
	return rep.OK, nil
}

func loadAuditState(path string, fp evidence.Fingerprint) (*audit.State, error) {
	data, err := readSmallFile(path, audit.MaxStateBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return audit.NewState(fp), nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit state: %w", err)
	}
	st, err := audit.ParseState(data, fp)
	if err != nil {
		return nil, fmt.Errorf("audit state %s: %w", path, err)
	}
	return st, nil
}

func printAuditReport(w io.Writer, r *audit.Report) {
	fmt.Fprintf(w, "audit %s  network %s (%s)\n", r.Time.UTC().Format(time.RFC3339), r.Network, r.Origin)
	for _, n := range r.Nodes {
		if n.Error != "" {
			fmt.Fprintf(w, "  %-28s ERROR %s\n", n.URL, oneLine(n.Error))
			continue
		}
		root := n.Root
		if len(root) > 16 {
			root = root[:16] + "…"
		}
		fmt.Fprintf(w, "  %-28s size %-8d root %s  signers %s  (%s)\n", n.URL, n.Size, root, strings.Join(n.Signers, ", "), n.Note)
	}
	if r.OK {
		fmt.Fprintf(w, "CONSISTENT: %d nodes, largest tree %d, %d consistency proofs checked\n", len(r.Nodes), r.Largest, r.Proofs)
		return
	}
	fmt.Fprintln(w, "findings:")
	for _, f := range r.Findings {
		fmt.Fprintf(w, "  [%s] %s\n", f.Kind, oneLine(f.Message))
	}
	fmt.Fprintf(w, "AUDIT FAILED: %d finding(s), nodes named above\n", len(r.Findings))
}
