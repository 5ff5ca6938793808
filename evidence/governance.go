package evidence

import (
	"crypto/ed25519"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// GovernanceVersion is the only governance entry version this code writes or reads.
const GovernanceVersion = 1

// Action is what a governance entry does. The numbers are permanent.
type Action uint8

// Governance actions.
const (
	// ActionRegisterSubmitter lets a submitter key submit evidence.
	ActionRegisterSubmitter Action = 1
	// ActionRevokeSubmitter stops a submitter key; its earlier records stay.
	ActionRevokeSubmitter Action = 2
	// ActionManifestUpdate puts the next manifest version in force (one
	// member added or removed), approved by admins under the previous
	// version's policy. Its entry has its own layout; see manifestupdate.go.
	ActionManifestUpdate Action = 3
)

// String names the action.
func (a Action) String() string {
	switch a {
	case ActionRegisterSubmitter:
		return "register-submitter"
	case ActionRevokeSubmitter:
		return "revoke-submitter"
	case ActionManifestUpdate:
		return "manifest-update"
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// Governance is a log entry that changes who may do what. It is signed by an
// administrator key listed in the manifest in force, so every replica agrees
// on the outcome by replaying the log; nothing of it lives in node config.
//
// Submitter actions (1, 2) use Subject, Label, Admin and Signature. A
// manifest update (3) uses only Manifest and Approvals.
type Governance struct {
	Action    Action
	IssuedMS  uint64    // when the admin signed it; makes repeated actions distinct entries
	Subject   PublicKey // the submitter key registered or revoked
	Label     string    // a human name for the subject, e.g. "alice (律师事务所)"
	Admin     PublicKey // signer; must be an admin key in the manifest in force
	Signature []byte

	Manifest  []byte     // ActionManifestUpdate: canonical next manifest
	Approvals []Approval // ActionManifestUpdate: admin signatures, sorted by key
}

func (g *Governance) body(b *cryptobyte.Builder) {
	b.AddUint8(GovernanceVersion)
	b.AddUint8(uint8(g.Action))
	b.AddUint64(g.IssuedMS)
	b.AddUint8(uint8(g.Subject.Alg))
	addBytes8(b, g.Subject.Key)
	addText(b, g.Label)
	b.AddUint8(uint8(g.Admin.Alg))
	addBytes8(b, g.Admin.Key)
}

func (g *Governance) validate() error {
	if g.Action == ActionManifestUpdate {
		return g.validateUpdate()
	}
	switch g.Action {
	case ActionRegisterSubmitter, ActionRevokeSubmitter:
	default:
		return fmt.Errorf("%w: governance action %d", ErrUnsupported, g.Action)
	}
	if err := g.Subject.validate("subject key"); err != nil {
		return err
	}
	if err := checkText("label", g.Label); err != nil {
		return err
	}
	return g.Admin.validate("admin key")
}

// SignedMessage returns the bytes the administrator signs.
func (g *Governance) SignedMessage(origin string) ([]byte, error) {
	if g.Action == ActionManifestUpdate {
		return nil, fmt.Errorf("%w: a manifest update is approved with UpdateMessage, not signed by one admin", ErrUnsupported)
	}
	if err := g.validate(); err != nil {
		return nil, err
	}
	b := cryptobyte.NewBuilder([]byte("cunzheng governance v1\n" + origin + "\n"))
	g.body(b)
	return build(b, "governance body")
}

// Sign fills Signature with signer, which must hold g.Admin.
func (g *Governance) Sign(origin string, signer Signer) error {
	if !signer.Public().Equal(g.Admin) {
		return fmt.Errorf("sign governance entry: signer key does not match admin key")
	}
	msg, err := g.SignedMessage(origin)
	if err != nil {
		return err
	}
	sig, err := signer.Sign(msg)
	if err != nil {
		return fmt.Errorf("sign governance entry: %w", err)
	}
	g.Signature = sig
	return nil
}

// Verify checks the admin signature. Whether the admin key is authorised is
// the caller's question (it depends on the manifest in force).
func (g *Governance) Verify(origin string) error {
	msg, err := g.SignedMessage(origin)
	if err != nil {
		return err
	}
	if !g.Admin.verify(msg, g.Signature) {
		return fmt.Errorf("%w: governance signature does not verify", ErrBadSignature)
	}
	return nil
}

// Marshal returns the canonical encoding.
func (g *Governance) Marshal() ([]byte, error) {
	if err := g.validate(); err != nil {
		return nil, err
	}
	if g.Action == ActionManifestUpdate {
		return g.marshalUpdate()
	}
	b := cryptobyte.NewBuilder(nil)
	g.body(b)
	addBytes8(b, g.Signature)
	return build(b, "governance entry")
}

// ParseGovernance strictly decodes a canonical governance entry.
func ParseGovernance(data []byte) (*Governance, error) {
	s := cryptobyte.String(data)
	var (
		version, action, salg, aalg uint8
		g                           Governance
		subj, admin, sig            cryptobyte.String
	)
	if !s.ReadUint8(&version) {
		return nil, fmt.Errorf("%w: governance version", ErrMalformed)
	}
	if version != GovernanceVersion {
		return nil, fmt.Errorf("%w: governance version %d", ErrUnsupported, version)
	}
	if len(s) > 0 && Action(s[0]) == ActionManifestUpdate {
		s.Skip(1)
		return parseUpdate(s)
	}
	if !s.ReadUint8(&action) || !s.ReadUint64(&g.IssuedMS) || !s.ReadUint8(&salg) ||
		!s.ReadUint8LengthPrefixed(&subj) {
		return nil, fmt.Errorf("%w: governance fields", ErrMalformed)
	}
	if err := readText(&s, "label", &g.Label); err != nil {
		return nil, fmt.Errorf("governance: %w", err)
	}
	if !s.ReadUint8(&aalg) || !s.ReadUint8LengthPrefixed(&admin) || !s.ReadUint8LengthPrefixed(&sig) {
		return nil, fmt.Errorf("%w: governance signer", ErrMalformed)
	}
	if !s.Empty() {
		return nil, fmt.Errorf("%w: %d trailing bytes after governance entry", ErrMalformed, len(s))
	}
	g.Action = Action(action)
	g.Subject = PublicKey{Alg: KeyAlg(salg), Key: append([]byte(nil), subj...)}
	g.Admin = PublicKey{Alg: KeyAlg(aalg), Key: append([]byte(nil), admin...)}
	g.Signature = append([]byte(nil), sig...)
	if err := g.validate(); err != nil {
		return nil, fmt.Errorf("governance: %w", err)
	}
	if g.Admin.Alg == Ed25519 && len(g.Signature) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: ed25519 signature is %d bytes", ErrMalformed, len(g.Signature))
	}
	return &g, nil
}
