// Package evidence defines the permanent record formats of cunzheng: the
// Submission a submitter signs, the public Leaf written to the log, governance
// entries, the salted commitment to private metadata, the network manifest and
// the receipt file. Every format has one canonical binary encoding built with
// golang.org/x/crypto/cryptobyte and a strict decoder that rejects anything
// else (unknown versions, trailing bytes, non-minimal forms).
//
// The package is pure: no I/O, no clocks, no global state. It compiles for
// GOOS=js GOARCH=wasm so that the offline verifier can run in a browser.
package evidence
