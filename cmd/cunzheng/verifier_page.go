package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cunzheng/cunzheng/api/web"
	"github.com/cunzheng/cunzheng/evidence"
)

type verifierPageOptions struct {
	genesis, manifest, nodeURL, out string
}

func (a *app) verifierPageCommand() *cobra.Command {
	var o verifierPageOptions
	c := &cobra.Command{
		Use:   "verifier-page (--genesis FP | --manifest genesis.json) [--node URL] -o verify.html",
		Short: "Write the offline verification page (one self-contained HTML file)",
		Long: `Write the verification page as one self-contained HTML file for an
air-gapped computer: the WebAssembly verifier, the hashing code and the pinned
genesis fingerprint are inlined, and the page may make no network request.
Opened from disk, it verifies an evidence file against its receipt and shows
核验通过 (verified) or 不一致 (mismatch) with every check named.

The network is pinned by --genesis, or by --manifest (a genesis.json whose
fingerprint is printed). --manifest or --node adds the network's name and
institutions to the page; a node's manifest must match --genesis.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "out"); err != nil {
				return err
			}
			if o.genesis == "" && o.manifest == "" {
				return usageErrorf("verifier-page needs --genesis FINGERPRINT or --manifest genesis.json: the network to pin")
			}
			if o.manifest != "" && o.nodeURL != "" {
				return usageErrorf("verifier-page takes --manifest or --node, not both")
			}
			pinned, err := parseGenesisFlag(o.genesis)
			if err != nil {
				return err
			}
			n := web.Network{}
			switch {
			case o.manifest != "":
				m, fp, err := loadManifestFile(o.manifest)
				if err != nil {
					return err
				}
				if pinned != nil && fp != *pinned {
					return fmt.Errorf("manifest %s has fingerprint %s, not --genesis %s", o.manifest, fp, *pinned)
				}
				n = web.Network{Fingerprint: fp, Manifest: m}
			case o.nodeURL != "":
				cl, err := newClient(o.nodeURL)
				if err != nil {
					return err
				}
				m, fp, err := nodeManifest(cmd.Context(), cl, pinned)
				if err != nil {
					return err
				}
				n = web.Network{Fingerprint: fp, Manifest: m}
			default:
				n = web.Network{Fingerprint: *pinned}
			}
			page, err := web.OfflinePage(n)
			if err != nil {
				return err
			}
			if err := writeFileAtomic(o.out, page, 0o644); err != nil {
				return fmt.Errorf("write %s: %w", o.out, err)
			}
			fmt.Fprintf(a.stdout, "wrote %s (%s): offline verifier pinned to genesis %s%s\n",
				o.out, mib(int64(len(page))), n.Fingerprint, originNote(n.Manifest))
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&o.genesis, "genesis", "", "pinned genesis fingerprint (64 hex digits)")
	f.StringVar(&o.manifest, "manifest", "", "genesis manifest file (genesis.json)")
	f.StringVar(&o.nodeURL, "node", "", "node URL to fetch the manifest from (checked against --genesis)")
	f.StringVarP(&o.out, "out", "o", "", "output HTML file")
	return c
}

func originNote(m *evidence.Manifest) string {
	if m == nil {
		return ""
	}
	return " (network " + m.Origin + ")"
}
