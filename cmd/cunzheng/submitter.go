package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cunzheng/cunzheng/evidence"
)

func (a *app) submitterCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "submitter",
		Short: "Register or revoke submitter keys (governance entries in the log)",
	}
	groupCommand(c)
	c.AddCommand(
		a.governanceCommand("register", evidence.ActionRegisterSubmitter,
			"Allow a submitter key to preserve evidence"),
		a.governanceCommand("revoke", evidence.ActionRevokeSubmitter,
			"Stop a submitter key; its earlier records stay valid"),
	)
	return c
}

func (a *app) governanceCommand(name string, action evidence.Action, short string) *cobra.Command {
	var nodeURL, adminKey, label, genesis string
	c := &cobra.Command{
		Use:   name + " --node URL --admin-key ADMIN.key [--label L] [--genesis FP] SUBMITTER.pub",
		Short: short,
		Long: short + `.

The change is a governance entry signed with an institution's admin key and
appended to the log, so every replica agrees on who may submit. The network
origin is taken from the node's manifest; with --genesis the manifest must
have that fingerprint.`,
		Args: exactArgs(1, "one public key file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireFlags(cmd, "node", "admin-key"); err != nil {
				return err
			}
			pinned, err := parseGenesisFlag(genesis)
			if err != nil {
				return err
			}
			cl, err := newClient(nodeURL)
			if err != nil {
				return err
			}
			admin, err := loadPrivateKey(adminKey)
			if err != nil {
				return err
			}
			subject, err := loadPublicKey(args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			m, fp, err := nodeManifest(ctx, cl, pinned)
			if err != nil {
				return err
			}
			signer := evidence.Ed25519Signer{Key: admin}
			if !m.IsAdmin(signer.Public()) {
				return fmt.Errorf("%s is not an admin key of network %s", adminKey, fp)
			}
			g := &evidence.Governance{
				Action:   action,
				IssuedMS: uint64(a.now().UnixMilli()),
				Subject:  evidence.PublicKey{Alg: evidence.Ed25519, Key: subject},
				Label:    label,
				Admin:    signer.Public(),
			}
			if err := g.Sign(m.Origin, signer); err != nil {
				return err
			}
			entry, err := g.Marshal()
			if err != nil {
				return err
			}
			resp, err := cl.Governance(ctx, entry)
			if err != nil {
				return err
			}
			what := "done"
			if resp.Existing {
				what = "already in the log"
			}
			fmt.Fprintf(a.stdout, "%s submitter ed25519:%x: %s at index %d (network %s)\n",
				action, []byte(subject), what, resp.Index, fp)
			return nil
		},
	}
	c.Flags().StringVar(&nodeURL, "node", "", "node URL, e.g. http://127.0.0.1:8080")
	c.Flags().StringVar(&adminKey, "admin-key", "", "institution admin private key file")
	c.Flags().StringVar(&label, "label", "", "human name for the submitter, e.g. \"alice (律师事务所)\"")
	c.Flags().StringVar(&genesis, "genesis", "", "expected genesis fingerprint (64 hex digits)")
	return c
}
