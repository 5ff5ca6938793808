package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cunzheng/cunzheng/evidence"
	"github.com/cunzheng/cunzheng/evidence/certificate"
)

type certificateOptions struct {
	receipt, file, out      string
	genesis, manifest, font string
	url                     string
}

func (a *app) certificateCommand() *cobra.Command {
	var o certificateOptions
	c := &cobra.Command{
		Use:   "certificate --receipt R (--genesis FP | --manifest genesis.json) [--file F] -o cert.pdf",
		Short: "Render the PDF certificate (存证证书) of a receipt",
		Long: `Render the PDF certificate (存证证书) of a preserved record: record ID,
digest, preservation time, log index and block height, masked applicant, file
name and size, case reference (when the receipt discloses it), signing
institutions, network fingerprint, the statement of what it proves, the
receipt attached to the PDF, and a QR code with the record ID, digest,
checkpoint hash and the verification link.

The receipt is verified first against the pinned network (--genesis or
--manifest) — and against FILE with --file — and nothing is written unless it
verifies. Chinese text needs a CJK TrueType font (--font, default the one of
Debian's fonts-droid-fallback); without one the certificate is English-only.

Exit codes: 0 written, 1 the receipt does not verify or writing failed,
2 usage error.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "receipt", "out"); err != nil {
				return err
			}
			if (o.genesis == "") == (o.manifest == "") {
				return usageErrorf("certificate needs exactly one of --genesis FINGERPRINT or --manifest genesis.json: the network to trust")
			}
			fp, err := a.pinnedNetwork(verifyOptions{genesis: o.genesis, manifest: o.manifest, json: true})
			if err != nil {
				return err
			}
			receipt, err := readSmallFile(o.receipt, evidence.MaxReceiptSize)
			if err != nil {
				return fmt.Errorf("receipt: %w", err)
			}
			opts := certificate.Options{Pinned: fp, FontPath: o.font, BaseURL: o.url, Now: a.now}
			if o.file != "" {
				d, err := a.hashForVerify(verifyOptions{}, o.file)
				if err != nil {
					return err
				}
				opts.FileSHA256 = d.SHA256
			}
			cert, err := certificate.Render(receipt, opts)
			if errors.Is(err, certificate.ErrNotVerified) {
				printResult(a.stdout, cert.Result)
				fmt.Fprintln(a.stdout, "no certificate written: the receipt does not verify")
				return errReported
			}
			if err != nil {
				return err
			}
			if cert.Warning != "" {
				fmt.Fprintf(a.stderr, "cunzheng: warning: %s\n", cert.Warning)
			}
			if o.url == "" {
				fmt.Fprintln(a.stderr, "cunzheng: warning: no --url: the QR code carries the record, digest and checkpoint hash but no link to a node")
			}
			if err := writeFileAtomic(o.out, cert.PDF, 0o644); err != nil {
				return fmt.Errorf("write %s: %w", o.out, err)
			}
			fmt.Fprintf(a.stdout, "wrote %s: certificate of record %s (%s)\nQR: %s\n",
				o.out, cert.Result.RecordID, strings.TrimPrefix(cert.Result.Digest, "sha256:"), cert.QR)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&o.receipt, "receipt", "", "receipt file")
	f.StringVar(&o.file, "file", "", "evidence file to check against the receipt too")
	f.StringVarP(&o.out, "out", "o", "", "output PDF file")
	f.StringVar(&o.genesis, "genesis", "", "pinned genesis fingerprint (64 hex digits)")
	f.StringVar(&o.manifest, "manifest", "", "genesis manifest file (genesis.json) to pin instead of --genesis")
	f.StringVar(&o.font, "font", certificate.DefaultFontPath, "TrueType font with CJK glyphs")
	f.StringVar(&o.url, "url", "", "base URL of a node for the QR code's verification link, e.g. https://court.example")
	return c
}
