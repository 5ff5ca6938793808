package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cunzheng/cunzheng/api/node"
	"github.com/cunzheng/cunzheng/evidence"
)

func (a *app) genesisCommand() *cobra.Command {
	var origin, out string
	var threshold int
	var witnesses []string
	c := &cobra.Command{
		Use:   "genesis --origin ORIGIN -o genesis.json DESCRIPTOR.json...",
		Short: "Combine institutions' descriptors into a genesis manifest and print its fingerprint",
		Long: `Combine the public descriptors that each institution's 'cunzheng init' wrote
(descriptor.json: name, role, raft ID, peer ID, addresses, checkpoint key,
admin key) into one genesis manifest, and print its SHA-256 fingerprint.
Every institution must compare that fingerprint out of band before using
the manifest: it is what every verifier pins.

The finality policy is a majority of the voting institutions unless
--threshold says more. Duplicate names, raft IDs, peer IDs or keys, missing
roles and malformed keys are refused; nothing is written then.

Each --witness KEY=URL[,required] lists an external witness (C2SP
tlog-witness) that the network asks to cosign every final checkpoint: KEY
is its tlog-cosignature/v1 verifier key (another cunzheng node prints it as
witness.pub), URL its base URL. With ",required" no checkpoint is final
without that witness's cosignature; otherwise it is added when the witness
answers in time.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErrorf("%s needs at least one descriptor file", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireFlags(cmd, "origin", "out"); err != nil {
				return err
			}
			if err := evidence.ValidOrigin(origin); err != nil {
				return usageErrorf("--origin: %v", err)
			}
			m := &evidence.Manifest{Origin: origin, Sequence: 1, CreatedAt: uint64(time.Now().Unix())}
			for _, path := range args {
				data, err := readLimited(path, evidence.MaxDescriptorSize)
				if err != nil {
					return err
				}
				d, err := evidence.ParseDescriptor(data)
				if err != nil {
					return fmt.Errorf("%s: %w", path, err)
				}
				m.Members = append(m.Members, *d)
			}
			m.Threshold = evidence.DefaultThreshold(m.Members)
			if threshold != 0 {
				m.Threshold = uint16(threshold)
			}
			for _, w := range witnesses {
				spec, required := strings.CutSuffix(w, ",required")
				key, url, ok := strings.Cut(spec, "=")
				if !ok {
					return usageErrorf("--witness %q: want KEY=URL[,required]", w)
				}
				m.Witnesses = append(m.Witnesses, evidence.Witness{Key: key, URL: url, Required: required})
			}
			file, err := evidence.MarshalManifestFile(m)
			if err != nil {
				return err
			}
			fp, _ := m.Fingerprint()
			if err := node.WriteNewFile(out, file, 0o644); err != nil {
				return fmt.Errorf("write manifest: %w", err)
			}
			fmt.Fprintf(a.stdout, "genesis fingerprint  %s\norigin               %s\nmembers              %d (%d signatures make a checkpoint final)\nmanifest             %s\n",
				fp, origin, len(m.Members), m.Threshold, out)
			for _, mem := range m.Members {
				fmt.Fprintf(a.stdout, "  %-24s %-13s raft %d\n", mem.Name, mem.Role, mem.RaftID)
			}
			for _, w := range m.Witnesses {
				need := "optional"
				if w.Required {
					need = "required"
				}
				fmt.Fprintf(a.stdout, "  witness %-16s %-13s %s\n", w.Name(), need, w.URL)
			}
			fmt.Fprintf(a.stdout, "\ncopy %s over genesis.json in every node directory, then start the nodes\n", out)
			return nil
		},
	}
	c.Flags().StringVar(&origin, "origin", "", "log origin, a schema-less URL, e.g. evidence.court.example/v1")
	c.Flags().StringVarP(&out, "out", "o", "", "manifest file to write (refuses to overwrite)")
	c.Flags().StringArrayVar(&witnesses, "witness", nil, "external witness KEY=URL[,required] (repeatable)")
	c.Flags().IntVar(&threshold, "threshold", 0, "signatures needed for a final checkpoint (default: a majority of voting members)")
	return c
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d a %s may have", path, st.Size(), limit, "descriptor")
	}
	data := make([]byte, st.Size())
	_, err = io.ReadFull(f, data)
	return data, err
}
