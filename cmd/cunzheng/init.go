package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cunzheng/cunzheng/api/node"
	"github.com/cunzheng/cunzheng/evidence"
)

func (a *app) initCommand() *cobra.Command {
	var opts node.InitOptions
	c := &cobra.Command{
		Use:   "init --dir DIR --name NAME --role ROLE [--origin ORIGIN] [--listen ADDR]",
		Short: "Create a node directory: keys, config and a one-institution genesis manifest",
		Long: `Create a node directory for one institution: its checkpoint (signed-note) key
and admin key (both 0600), an API token, a commented configuration file and
a genesis manifest for a network of this one institution. Prints the genesis
fingerprint: publish it, because every verifier pins it.

NAME is the institution's signed-note key name (no spaces or '+'), e.g.
court.example. ROLE is court, notary, time-service, appraisal or observer.
ORIGIN is the log's schema-less URL (default NAME/log).`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "dir", "name", "role"); err != nil {
				return err
			}
			if err := evidence.ValidKeyName(opts.Name); err != nil {
				return usageErrorf("--name: %v", err)
			}
			if _, err := evidence.ParseRole(opts.Role); err != nil {
				return usageErrorf("--role: %v", err)
			}
			if opts.Origin != "" {
				if err := evidence.ValidOrigin(opts.Origin); err != nil {
					return usageErrorf("--origin: %v", err)
				}
			}
			res, err := node.Init(opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "genesis fingerprint  %s\norigin               %s\nconfig               %s\ngenesis manifest     %s\nadmin key            %s (secret)\nadmin public key     %s\ncheckpoint key       %s (secret)\nAPI token            %s (secret)\n",
				res.Fingerprint, res.Origin, res.ConfigPath, res.GenesisPath, res.AdminKeyPath, res.AdminPubPath, res.NoteKeyPath, res.TokenPath)
			fmt.Fprintf(a.stdout, "descriptor           %s (send it to the other institutions)\npeer ID              %s\nraft ID              %d\n", res.DescriptorPath, res.PeerID, res.RaftID)
			fmt.Fprintf(a.stdout, "witness key          %s\n                     (other networks list this node as a witness with it; see witness.json)\n", res.WitnessKey)
			fmt.Fprintf(a.stdout, "\nstart it alone with: cunzheng node --dir %s\nor combine descriptors into a network: cunzheng genesis --origin ORIGIN -o genesis.json A/descriptor.json B/descriptor.json ...\n", opts.Dir)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&opts.Dir, "dir", "", "node directory to create")
	f.StringVar(&opts.Name, "name", "", "institution key name, e.g. court.example")
	f.StringVar(&opts.Role, "role", "", "court, notary, time-service, appraisal or observer")
	f.StringVar(&opts.Origin, "origin", "", "log origin, a schema-less URL (default NAME/log)")
	f.StringVar(&opts.Listen, "listen", "", "HTTP listen address written to the config (default "+node.DefaultListen+")")
	f.StringVar(&opts.P2PListen, "p2p-listen", "", "libp2p listen multiaddr written to the config and descriptor (default "+node.DefaultP2PListen+")")
	f.StringVar(&opts.TSACert, "tsa-cert", "", "time service: an existing RFC 3161 certificate chain (PEM, signing certificate first), e.g. issued by an external CA (default: a new self-signed one)")
	f.StringVar(&opts.TSAKey, "tsa-key", "", "time service: the private key (PEM) of --tsa-cert")
	return c
}
