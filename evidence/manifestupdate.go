package evidence

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"

	"golang.org/x/crypto/cryptobyte"
)

// Manifest updates: membership changes as governance entries.
//
// Entry layout (action 3; actions 1 and 2 keep their own layout):
//
//	u8  GovernanceVersion
//	u8  ActionManifestUpdate
//	u16-length-prefixed canonical next manifest
//	u16-length-prefixed approvals, each:
//	    u8 key algorithm (Ed25519), u8-length-prefixed admin key,
//	    u8-length-prefixed signature over UpdateMessage
//
// Approvals are sorted by admin key, strictly (so no key appears twice and
// the encoding is canonical).

// MaxApprovals bounds the approvals of one manifest update.
const MaxApprovals = MaxMembers

// Approval is one administrator's signature on a manifest update.
type Approval struct {
	Admin     PublicKey
	Signature []byte
}

// UpdateMessage returns the bytes each approving administrator signs: it
// binds the network (origin), the manifest version being replaced (its
// fingerprint) and the whole next manifest.
func UpdateMessage(origin string, prev Fingerprint, next []byte) []byte {
	msg := make([]byte, 0, 64+len(origin)+len(next))
	msg = append(msg, "cunzheng manifest update v1\n"+origin+"\n"...)
	msg = append(msg, prev[:]...)
	return append(msg, next...)
}

// Approve adds signer's approval of g's manifest, replacing the manifest
// at prev, keeping Approvals sorted.
func (g *Governance) Approve(origin string, prev Fingerprint, signer Signer) error {
	pub := signer.Public()
	if pub.Alg != Ed25519 {
		return fmt.Errorf("%w: approvals are Ed25519", ErrUnsupported)
	}
	sig, err := signer.Sign(UpdateMessage(origin, prev, g.Manifest))
	if err != nil {
		return fmt.Errorf("approve manifest update: %w", err)
	}
	for _, a := range g.Approvals {
		if bytes.Equal(a.Admin.Key, pub.Key) {
			return fmt.Errorf("%w: admin key already approved this update", ErrMalformed)
		}
	}
	g.Approvals = append(g.Approvals, Approval{Admin: pub, Signature: sig})
	slices.SortFunc(g.Approvals, func(a, b Approval) int { return bytes.Compare(a.Admin.Key, b.Admin.Key) })
	return nil
}

func (g *Governance) validateUpdate() error {
	if g.IssuedMS != 0 || g.Subject.Key != nil || g.Label != "" || g.Admin.Key != nil || g.Signature != nil {
		return fmt.Errorf("%w: a manifest update carries only a manifest and approvals", ErrMalformed)
	}
	if len(g.Manifest) == 0 || len(g.Manifest) > MaxManifestSize {
		return fmt.Errorf("%w: manifest update of %d manifest bytes", ErrMalformed, len(g.Manifest))
	}
	if len(g.Approvals) == 0 || len(g.Approvals) > MaxApprovals {
		return fmt.Errorf("%w: manifest update with %d approvals (want 1..%d)", ErrMalformed, len(g.Approvals), MaxApprovals)
	}
	for i, a := range g.Approvals {
		if a.Admin.Alg != Ed25519 {
			return fmt.Errorf("%w: approval %d: admin key algorithm %d", ErrUnsupported, i, a.Admin.Alg)
		}
		if err := a.Admin.validate("approval admin key"); err != nil {
			return err
		}
		if len(a.Signature) != ed25519.SignatureSize {
			return fmt.Errorf("%w: approval %d: ed25519 signature is %d bytes", ErrMalformed, i, len(a.Signature))
		}
		if i > 0 && bytes.Compare(g.Approvals[i-1].Admin.Key, a.Admin.Key) >= 0 {
			return fmt.Errorf("%w: approvals must be sorted by admin key, each key once", ErrMalformed)
		}
	}
	return nil
}

func (g *Governance) marshalUpdate() ([]byte, error) {
	b := cryptobyte.NewBuilder(nil)
	b.AddUint8(GovernanceVersion)
	b.AddUint8(uint8(ActionManifestUpdate))
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(g.Manifest) })
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, a := range g.Approvals {
			b.AddUint8(uint8(a.Admin.Alg))
			addBytes8(b, a.Admin.Key)
			addBytes8(b, a.Signature)
		}
	})
	return build(b, "manifest update")
}

// parseUpdate decodes the rest of a manifest update after its action byte.
func parseUpdate(s cryptobyte.String) (*Governance, error) {
	var man, list cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&man) || !s.ReadUint16LengthPrefixed(&list) {
		return nil, fmt.Errorf("%w: manifest update fields", ErrMalformed)
	}
	if !s.Empty() {
		return nil, fmt.Errorf("%w: %d trailing bytes after manifest update", ErrMalformed, len(s))
	}
	g := &Governance{Action: ActionManifestUpdate, Manifest: append([]byte(nil), man...)}
	for !list.Empty() {
		var alg uint8
		var key, sig cryptobyte.String
		if !list.ReadUint8(&alg) || !list.ReadUint8LengthPrefixed(&key) || !list.ReadUint8LengthPrefixed(&sig) {
			return nil, fmt.Errorf("%w: manifest update approval", ErrMalformed)
		}
		if len(g.Approvals) == MaxApprovals {
			return nil, fmt.Errorf("%w: more than %d approvals", ErrMalformed, MaxApprovals)
		}
		g.Approvals = append(g.Approvals, Approval{
			Admin:     PublicKey{Alg: KeyAlg(alg), Key: append([]byte(nil), key...)},
			Signature: append([]byte(nil), sig...),
		})
	}
	if err := g.validateUpdate(); err != nil {
		return nil, fmt.Errorf("governance: %w", err)
	}
	return g, nil
}

// UsedIdentities are the raft IDs, names and peer IDs that any manifest of
// a network has ever listed: none may be given to a member added later, so
// a wiped or restored node necessarily rejoins as a new member.
type UsedIdentities struct {
	RaftIDs map[uint64]bool
	Names   map[string]bool
	PeerIDs map[string]bool
}

// Add records every identity of m.
func (u *UsedIdentities) Add(m *Manifest) {
	if u.RaftIDs == nil {
		u.RaftIDs, u.Names, u.PeerIDs = map[uint64]bool{}, map[string]bool{}, map[string]bool{}
	}
	for _, mem := range m.Members {
		u.RaftIDs[mem.RaftID], u.Names[mem.Name] = true, true
		if mem.PeerID != "" {
			u.PeerIDs[mem.PeerID] = true
		}
	}
}

// CheckManifestUpdate checks that g, a manifest update entry, may follow
// prev: the next manifest is prev's successor (sequence, previous
// fingerprint, origin), differs from it by exactly one member added or
// removed, gives an added member no identity in used (every earlier
// manifest's, prev's included), and carries valid approvals by the admin
// keys of at least prev.Threshold distinct voting members of prev. It
// returns the next manifest. The ledger and the offline verifier both
// decide with this one function.
func CheckManifestUpdate(prev *Manifest, g *Governance, used *UsedIdentities) (*Manifest, error) {
	if g.Action != ActionManifestUpdate {
		return nil, fmt.Errorf("%w: governance action %s is not a manifest update", ErrMalformed, g.Action)
	}
	if err := g.validateUpdate(); err != nil {
		return nil, err
	}
	next, err := ParseManifest(g.Manifest)
	if err != nil {
		return nil, fmt.Errorf("next manifest: %w", err)
	}
	prevFP, err := prev.Fingerprint()
	if err != nil {
		return nil, err
	}
	switch {
	case next.Sequence != prev.Sequence+1:
		return nil, fmt.Errorf("%w: next manifest has sequence %d, want %d", ErrMalformed, next.Sequence, prev.Sequence+1)
	case !bytes.Equal(next.Previous, prevFP[:]):
		return nil, fmt.Errorf("%w: next manifest names previous %x, want %s", ErrMalformed, []byte(next.Previous), prevFP)
	case next.Origin != prev.Origin:
		return nil, fmt.Errorf("%w: next manifest changes the origin", ErrMalformed)
	}
	if err := oneMemberChange(prev, next, used); err != nil {
		return nil, err
	}
	msg := UpdateMessage(prev.Origin, prevFP, g.Manifest)
	approved := 0
	for _, a := range g.Approvals {
		mem := prev.memberByAdmin(a.Admin.Key)
		if mem == nil || !mem.Role.Voting() {
			return nil, fmt.Errorf("%w: approval by a key that is not a voting member's admin key", ErrBadSignature)
		}
		if !a.Admin.verify(msg, a.Signature) {
			return nil, fmt.Errorf("%w: approval by %s does not verify", ErrBadSignature, mem.Name)
		}
		approved++ // keys are distinct (validateUpdate) and admin keys unique per manifest
	}
	if approved < int(prev.Threshold) {
		return nil, fmt.Errorf("%w: %d approvals, the policy needs %d", ErrBadSignature, approved, prev.Threshold)
	}
	return next, nil
}

func (m *Manifest) memberByAdmin(key []byte) *Member {
	for i := range m.Members {
		if bytes.Equal(m.Members[i].AdminKey, key) {
			return &m.Members[i]
		}
	}
	return nil
}

// oneMemberChange checks that next is prev with exactly one member added
// (with fresh identities) or removed, every other member unchanged.
func oneMemberChange(prev, next *Manifest, used *UsedIdentities) error {
	prevByID := map[uint64]*Member{}
	for i := range prev.Members {
		prevByID[prev.Members[i].RaftID] = &prev.Members[i]
	}
	var added []*Member
	kept := 0
	for i := range next.Members {
		mem := &next.Members[i]
		old, ok := prevByID[mem.RaftID]
		if !ok {
			added = append(added, mem)
			continue
		}
		if !sameMember(old, mem) {
			return fmt.Errorf("%w: member %s changed; a manifest update adds or removes one member only", ErrMalformed, old.Name)
		}
		kept++
	}
	removed := len(prev.Members) - kept
	switch {
	case len(added) == 1 && removed == 0:
		a := added[0]
		if used != nil && (used.RaftIDs[a.RaftID] || used.Names[a.Name] || (a.PeerID != "" && used.PeerIDs[a.PeerID])) {
			return fmt.Errorf("%w: member %s reuses a raft ID, name or peer ID an earlier manifest listed; a returning node joins with a new identity", ErrReused, a.Name)
		}
	case len(added) == 0 && removed == 1:
	default:
		return fmt.Errorf("%w: a manifest update adds or removes exactly one member (added %d, removed %d)", ErrMalformed, len(added), removed)
	}
	return nil
}

func sameMember(a, b *Member) bool {
	return a.Name == b.Name && a.Role == b.Role && a.RaftID == b.RaftID && a.PeerID == b.PeerID &&
		slices.Equal(a.Addrs, b.Addrs) && a.NoteKey == b.NoteKey && bytes.Equal(a.AdminKey, b.AdminKey)
}

// ManifestEntry is one version of a network's manifest as a chain holds
// it: the manifest and the bytes that carried it (the canonical genesis
// manifest, or the governance entry of an update).
type ManifestEntry struct {
	Manifest *Manifest
	Encoded  []byte
}

// MaxChainLength bounds a manifest chain (genesis plus updates).
const MaxChainLength = 1024

// CheckManifestChain checks a manifest chain: chain[0] is the canonical
// genesis manifest, whose fingerprint must be pinned; each later element is
// a manifest update entry checked under the manifest before it. It returns
// every version, genesis first; the last is the one in force.
func CheckManifestChain(pinned Fingerprint, chain [][]byte) ([]ManifestEntry, error) {
	if len(chain) == 0 {
		return nil, fmt.Errorf("%w: empty manifest chain", ErrMalformed)
	}
	if len(chain) > MaxChainLength {
		return nil, fmt.Errorf("%w: manifest chain of %d versions", ErrTooLarge, len(chain))
	}
	if fp := Fingerprint(sha256.Sum256(chain[0])); fp != pinned {
		return nil, fmt.Errorf("genesis manifest has fingerprint %s, not the pinned %s", fp, pinned)
	}
	genesis, err := ParseManifest(chain[0])
	if err != nil {
		return nil, fmt.Errorf("genesis manifest: %w", err)
	}
	if genesis.Sequence != 1 {
		return nil, fmt.Errorf("%w: genesis manifest has sequence %d", ErrMalformed, genesis.Sequence)
	}
	out := []ManifestEntry{{Manifest: genesis, Encoded: chain[0]}}
	var used UsedIdentities
	used.Add(genesis)
	for i, enc := range chain[1:] {
		g, err := ParseGovernance(enc)
		if err != nil {
			return nil, fmt.Errorf("manifest version %d: %w", i+2, err)
		}
		next, err := CheckManifestUpdate(out[len(out)-1].Manifest, g, &used)
		if err != nil {
			return nil, fmt.Errorf("manifest version %d: %w", i+2, err)
		}
		used.Add(next)
		out = append(out, ManifestEntry{Manifest: next, Encoded: enc})
	}
	return out, nil
}

// ChainFile is the JSON form of a manifest chain on disk: what `cunzheng
// member add` writes for a new member's node.conf (manifest_chain) and what
// GET /v1/manifests serves.
type ChainFile struct {
	Network   string   `json:"network"`   // genesis fingerprint, hex
	Manifests [][]byte `json:"manifests"` // genesis canonical bytes, then update entries
}

// MarshalChainFile renders a manifest chain file.
func MarshalChainFile(network Fingerprint, chain [][]byte) ([]byte, error) {
	out, err := json.MarshalIndent(ChainFile{Network: network.String(), Manifests: chain}, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// ParseChainFile strictly parses a manifest chain file and checks the
// chain against the pinned genesis fingerprint.
func ParseChainFile(data []byte, pinned Fingerprint) ([]ManifestEntry, error) {
	if len(data) > 2*MaxChainLength*MaxManifestSize {
		return nil, fmt.Errorf("%w: manifest chain file is %d bytes", ErrTooLarge, len(data))
	}
	var f ChainFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: manifest chain file: %v", ErrMalformed, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: manifest chain file: trailing data", ErrMalformed)
	}
	if f.Network != pinned.String() {
		return nil, fmt.Errorf("%w: manifest chain file is for network %q, not %s", ErrMalformed, f.Network, pinned)
	}
	return CheckManifestChain(pinned, f.Manifests)
}
