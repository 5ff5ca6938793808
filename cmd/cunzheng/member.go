package main

import (
	"fmt"
	"os"
	"slices"

	"github.com/spf13/cobra"

	"github.com/cunzheng/cunzheng/evidence"
)

func (a *app) memberCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "member",
		Short: "Add or remove a member institution (a new manifest version in the log)",
	}
	groupCommand(c)
	c.AddCommand(a.memberChangeCommand("add"), a.memberChangeCommand("remove"))
	return c
}

func (a *app) memberChangeCommand(op string) *cobra.Command {
	var nodeURL, genesis, out, name string
	var adminKeys []string
	use := "add --node URL --admin-key ADMIN.key... [-o CHAIN.json] DESCRIPTOR.json"
	short := "Add a member institution from its descriptor (from `cunzheng init`)"
	args := exactArgs(1, "one descriptor file")
	if op == "remove" {
		use = "remove --node URL --admin-key ADMIN.key... --name NAME [-o CHAIN.json]"
		short = "Remove a member institution; its raft ID, name and peer ID are never used again"
		args = exactArgs(0, "no arguments")
	}
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Long: short + `.

The change is a manifest update: the next manifest version, naming the
fingerprint of the one in force, approved by the admin keys of enough voting
members (the policy of the version in force; give one --admin-key per
institution). It is appended to the log, so every replica switches at the
same index: only the new members may connect, checkpoints after it are
signed under the new policy, and the raft leader adds or removes the node.
One member changes at a time. A wiped node, or one restored from a backup,
joins as a new member: run 'cunzheng init' for it (new raft ID and keys, a
new name) and add it.

The manifest chain with the new version is written to -o. A node added later
starts with it: copy the network's genesis.json into its directory and set
manifest_chain = CHAIN.json in its node.conf.`,
		Args: args,
		RunE: func(cmd *cobra.Command, args []string) error {
			required := []string{"node"}
			if op == "remove" {
				required = append(required, "name")
			}
			if err := requireFlags(cmd, required...); err != nil {
				return err
			}
			if len(adminKeys) == 0 {
				return usageErrorf("%s needs --admin-key (one per approving institution)", cmd.CommandPath())
			}
			pinned, err := parseGenesisFlag(genesis)
			if err != nil {
				return err
			}
			cl, err := newClient(nodeURL)
			if err != nil {
				return err
			}
			var signers []evidence.Ed25519Signer
			for _, path := range adminKeys {
				k, err := loadPrivateKey(path)
				if err != nil {
					return err
				}
				signers = append(signers, evidence.Ed25519Signer{Key: k})
			}
			ctx := cmd.Context()
			_, fp, err := nodeManifest(ctx, cl, pinned)
			if err != nil {
				return err
			}
			data, err := cl.ManifestChain(ctx)
			if err != nil {
				return err
			}
			chain, err := evidence.ParseChainFile(data, fp)
			if err != nil {
				return fmt.Errorf("node %s: %w", cl.URL(), err)
			}
			prev := chain[len(chain)-1].Manifest
			next := *prev
			next.Members = slices.Clone(prev.Members)
			var changed evidence.Member
			if op == "add" {
				d, err := readLimited(args[0], evidence.MaxDescriptorSize)
				if err != nil {
					return err
				}
				mem, err := evidence.ParseDescriptor(d)
				if err != nil {
					return fmt.Errorf("%s: %w", args[0], err)
				}
				changed = *mem
				next.Members = append(next.Members, changed)
			} else {
				i := slices.IndexFunc(next.Members, func(m evidence.Member) bool { return m.Name == name })
				if i < 0 {
					return fmt.Errorf("%s is not a member of manifest version %d", name, prev.Sequence)
				}
				changed = next.Members[i]
				next.Members = slices.Delete(next.Members, i, i+1)
			}
			prevFP, err := prev.Fingerprint()
			if err != nil {
				return err
			}
			next.Sequence, next.Previous = prev.Sequence+1, prevFP[:]
			next.Threshold = evidence.DefaultThreshold(next.Members)
			next.CreatedAt = uint64(a.now().Unix())
			enc, err := next.Marshal()
			if err != nil {
				return fmt.Errorf("next manifest: %w", err)
			}
			g := &evidence.Governance{Action: evidence.ActionManifestUpdate, Manifest: enc}
			for i, s := range signers {
				if err := g.Approve(prev.Origin, prevFP, s); err != nil {
					return fmt.Errorf("--admin-key %s: %w", adminKeys[i], err)
				}
			}
			// Check here with the rule every replica applies, so a refused
			// change is explained before anything is sent.
			var used evidence.UsedIdentities
			for _, v := range chain {
				used.Add(v.Manifest)
			}
			if _, err := evidence.CheckManifestUpdate(prev, g, &used); err != nil {
				return fmt.Errorf("manifest update refused: %w", err)
			}
			entry, err := g.Marshal()
			if err != nil {
				return err
			}
			resp, err := cl.Governance(ctx, entry)
			if err != nil {
				return err
			}
			encs := make([][]byte, 0, len(chain)+1)
			for _, v := range chain {
				encs = append(encs, v.Encoded)
			}
			file, err := evidence.MarshalChainFile(fp, append(encs, entry))
			if err != nil {
				return err
			}
			if err := os.WriteFile(out, file, 0o644); err != nil {
				return fmt.Errorf("write manifest chain: %w", err)
			}
			verb := "added"
			if op == "remove" {
				verb = "removed"
			}
			fmt.Fprintf(a.stdout, "%s %s (%s, raft %d): manifest version %d in force from log index %d (network %s)\n",
				verb, changed.Name, changed.Role, changed.RaftID, next.Sequence, resp.Index, fp)
			fmt.Fprintf(a.stdout, "members              %d (%d signatures make a checkpoint final)\nmanifest chain       %s\n",
				len(next.Members), next.Threshold, out)
			return nil
		},
	}
	c.Flags().StringVar(&nodeURL, "node", "", "node URL, e.g. http://127.0.0.1:8080")
	c.Flags().StringArrayVar(&adminKeys, "admin-key", nil, "admin private key file of an approving institution (repeat for each)")
	c.Flags().StringVar(&genesis, "genesis", "", "expected genesis fingerprint (64 hex digits)")
	c.Flags().StringVarP(&out, "out", "o", "manifest-chain.json", "manifest chain file to write")
	if op == "remove" {
		c.Flags().StringVar(&name, "name", "", "name of the member to remove")
	}
	return c
}
