package main

import (
	"crypto/ed25519"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cunzheng/cunzheng/api/node"
	"github.com/cunzheng/cunzheng/evidence"
)

func (a *app) keygenCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "keygen",
		Short: "Create keys",
	}
	groupCommand(c)
	c.AddCommand(a.keygenSubmitterCommand())
	return c
}

func (a *app) keygenSubmitterCommand() *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:   "submitter -o NAME.key",
		Short: "Create a submitter key pair (NAME.key, 0600, and NAME.pub)",
		Long: `Create an Ed25519 submitter key. The private key goes to the -o file (mode
0600); the public key to the same name with .pub instead of .key. Existing
files are never overwritten. Give the .pub file to a node administrator to
register (cunzheng submitter register).`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "out"); err != nil {
				return err
			}
			pubPath := publicKeyPath(out)
			for _, p := range []string{out, pubPath} {
				if _, err := os.Lstat(p); err == nil {
					return fmt.Errorf("%s already exists; refusing to overwrite a key", p)
				}
			}
			pub, priv, err := ed25519.GenerateKey(a.rand)
			if err != nil {
				return fmt.Errorf("generate key: %w", err)
			}
			if err := node.WriteNewFile(out, evidence.MarshalPrivateKey(priv), 0o600); err != nil {
				return err
			}
			if err := node.WriteNewFile(pubPath, evidence.MarshalPublicKey(pub), 0o644); err != nil {
				os.Remove(out)
				return err
			}
			fmt.Fprintf(a.stdout, "private key  %s (keep it secret)\npublic key   %s\nkey          ed25519:%x\n", out, pubPath, []byte(pub))
			return nil
		},
	}
	c.Flags().StringVarP(&out, "out", "o", "", "private key file to create, e.g. alice.key")
	return c
}

// publicKeyPath maps alice.key to alice.pub, and any other name to NAME.pub.
func publicKeyPath(priv string) string {
	return strings.TrimSuffix(priv, ".key") + ".pub"
}
