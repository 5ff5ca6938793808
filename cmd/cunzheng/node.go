package main

import (
	"context"
	"fmt"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/cunzheng/cunzheng/api/node"
)

func (a *app) nodeCommand() *cobra.Command {
	var dir, listen string
	c := &cobra.Command{
		Use:   "node --dir DIR [--listen ADDR]",
		Short: "Run a node: serve the HTTP API from a node directory",
		Long: `Run the node created by cunzheng init in DIR until SIGINT or SIGTERM. It
prints "serving http://ADDR" on stdout once it accepts requests; logs go to
stderr. --listen overrides the configured address (use port 0 for any free
port).`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "dir"); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return a.runNode(ctx, dir, listen)
		},
	}
	c.Flags().StringVar(&dir, "dir", "", "node directory (from cunzheng init)")
	c.Flags().StringVar(&listen, "listen", "", "HTTP listen address, overriding the config, e.g. 127.0.0.1:8080")
	return c
}

func (a *app) runNode(ctx context.Context, dir, listen string) error {
	// A nil Logger makes the node log text to stderr at the level its
	// configuration file sets.
	err := node.Run(ctx, dir, node.RunOptions{
		Listen: listen,
		Ready:  func(addr string) { fmt.Fprintf(a.stdout, "serving http://%s\n", addr) },
	})
	if err != nil {
		return fmt.Errorf("node %s: %w", dir, err)
	}
	return nil
}
