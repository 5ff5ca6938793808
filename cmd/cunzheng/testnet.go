package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/cunzheng/cunzheng/testnet"
)

func (a *app) testnetCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "testnet",
		Short: "Run a local network of institutions on loopback (up, down)",
	}
	groupCommand(c)
	var dir string
	var nodes, port int
	up := &cobra.Command{
		Use:   "up [--nodes N] [--dir DIR] [--port P]",
		Short: "Create (first time) and start a local network of N institution nodes",
		Long: `Create a local network of N institutions — a court, a notary office, the
time service, an appraisal centre, then more courts — each a separate node
process with its own directory and Pebble store under DIR, on loopback
ports from P (HTTP) and P+100 (libp2p). Later runs reuse DIR, so data
persists; 'cunzheng testnet down' stops the nodes.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			bin, err := os.Executable()
			if err != nil {
				return err
			}
			nw, err := testnet.Create(bin, dir, nodes, port)
			if err != nil {
				return err
			}
			if err := nw.Up(bin); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "network %s (%d institutions)\ngenesis fingerprint  %s\n\n", nw.Origin, len(nw.Nodes), nw.Fingerprint)
			for _, nd := range nw.Nodes {
				fmt.Fprintf(a.stdout, "  %-20s %-13s %s   (log %s)\n", nd.Name, nd.Role, nd.URL(), nd.LogFile)
			}
			first := nw.Nodes[0]
			fmt.Fprintf(a.stdout, `
Register a submitter (any institution's admin key), preserve and verify a file:
  cunzheng keygen submitter -o alice.key
  cunzheng submitter register --node %[1]s --admin-key %[2]s/admin.key alice.pub
  cunzheng submit --node %[1]s --key alice.key FILE
  cunzheng verify --receipt FILE.receipt --genesis %[3]s FILE

Stop with: cunzheng testnet down --dir %[4]s
`, first.URL(), first.Dir, nw.Fingerprint, dir)
			return nil
		},
	}
	up.Flags().StringVar(&dir, "dir", "testnet-data", "directory of the network")
	up.Flags().IntVar(&nodes, "nodes", 4, "number of institution nodes")
	up.Flags().IntVar(&port, "port", 8080, "first HTTP port (libp2p ports are 100 above)")
	var downDir string
	down := &cobra.Command{
		Use:   "down [--dir DIR]",
		Short: "Stop the nodes of a local network (data stays)",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			nw, err := testnet.Load(downDir)
			if err != nil {
				return fmt.Errorf("no network in %s: %w", downDir, err)
			}
			if err := nw.Down(); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "stopped %d nodes of %s\n", len(nw.Nodes), nw.Origin)
			return nil
		},
	}
	down.Flags().StringVar(&downDir, "dir", "testnet-data", "directory of the network")
	c.AddCommand(up, down)
	return c
}
