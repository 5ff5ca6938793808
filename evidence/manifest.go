package evidence

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/mod/sumdb/note"

	"github.com/cunzheng/cunzheng/chain/checkpoint"
)

// ManifestVersion is the only manifest format version this code writes or reads.
const ManifestVersion = 1

// MaxManifestSize bounds an encoded manifest (it must fit in a leaf).
const MaxManifestSize = 60000

// MaxMembers bounds the institutions of one network.
const MaxMembers = 64

// Role is an institution's part in the network. The numbers are permanent.
type Role uint8

// Roles. Every role but Observer votes in consensus and signs checkpoints.
const (
	RoleCourt       Role = 1
	RoleNotary      Role = 2
	RoleTimeService Role = 3
	RoleAppraisal   Role = 4
	RoleObserver    Role = 5
)

var roleNames = map[Role]string{
	RoleCourt: "court", RoleNotary: "notary", RoleTimeService: "time-service",
	RoleAppraisal: "appraisal", RoleObserver: "observer",
}

// String names the role.
func (r Role) String() string {
	if n, ok := roleNames[r]; ok {
		return n
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// ParseRole maps a role name to its Role.
func ParseRole(name string) (Role, error) {
	for r, n := range roleNames {
		if n == name {
			return r, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown role %q (want court, notary, time-service, appraisal or observer)", ErrUnsupported, name)
}

// Voting reports whether the role votes and co-signs checkpoints.
func (r Role) Voting() bool { return r != RoleObserver }

// MarshalText implements encoding.TextMarshaler.
func (r Role) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (r *Role) UnmarshalText(b []byte) error {
	v, err := ParseRole(string(b))
	*r = v
	return err
}

// Member is one institution's node.
type Member struct {
	Name     string   `json:"name"`      // signed-note key name, e.g. court.example
	Role     Role     `json:"role"`      //
	RaftID   uint64   `json:"raft_id"`   // never reused
	PeerID   string   `json:"peer_id"`   // libp2p peer ID (empty in a one-node network)
	Addrs    []string `json:"addrs"`     // libp2p multiaddrs
	NoteKey  string   `json:"note_key"`  // signed-note verifier key for checkpoints
	AdminKey []byte   `json:"admin_key"` // Ed25519 key that signs governance entries
	// TSACerts is a time service's RFC 3161 certificate chain, DER, the
	// signing certificate first, then any intermediates and the root it
	// chains to (empty for other roles). Tokens in receipts must be signed
	// by this exact signing certificate.
	TSACerts [][]byte `json:"tsa_certs,omitempty"`
}

// Witness is an external witness (C2SP tlog-witness) that the network asks
// to cosign each final checkpoint.
type Witness struct {
	Key      string `json:"key"`      // C2SP tlog-cosignature/v1 verifier key; its name names the witness
	URL      string `json:"url"`      // base URL; checkpoints go to URL + "/add-checkpoint"
	Required bool   `json:"required"` // a checkpoint is final only with this witness's cosignature
}

// Name is the witness's key name.
func (w *Witness) Name() string { name, _, _ := strings.Cut(w.Key, "+"); return name }

// Manifest describes a network: its origin, members, keys and the policy a
// checkpoint must meet to be final. Its fingerprint (SHA-256 of the
// canonical encoding) is what everyone pins and compares out of band.
type Manifest struct {
	Origin    string    `json:"origin"`    // schema-less URL, the checkpoint origin line
	Sequence  uint64    `json:"sequence"`  // 1 for genesis
	Previous  HexBytes  `json:"previous"`  // fingerprint of the previous version; empty for genesis
	Members   []Member  `json:"members"`   //
	Threshold uint16    `json:"threshold"` // member signatures needed for a final checkpoint
	CreatedAt uint64    `json:"created_at"`
	Witnesses []Witness `json:"witnesses,omitempty"` // external witnesses, asked to cosign each final checkpoint
}

// HexBytes is a byte slice shown as hex in JSON.
type HexBytes []byte

// MarshalText implements encoding.TextMarshaler.
func (h HexBytes) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h)), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (h *HexBytes) UnmarshalText(b []byte) error {
	v, err := hex.DecodeString(string(b))
	if err != nil {
		return fmt.Errorf("%w: hex: %v", ErrMalformed, err)
	}
	*h = v
	return nil
}

// Fingerprint is the SHA-256 of a manifest's canonical encoding.
type Fingerprint [32]byte

// String is lowercase hex.
func (f Fingerprint) String() string { return hex.EncodeToString(f[:]) }

// ParseFingerprint parses 64 hex digits.
func ParseFingerprint(s string) (Fingerprint, error) {
	var f Fingerprint
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != 32 {
		return f, fmt.Errorf("%w: a genesis fingerprint is 64 hex digits", ErrMalformed)
	}
	copy(f[:], b)
	return f, nil
}

// ValidKeyName reports whether name is a valid signed-note key name: non-empty
// UTF-8, no whitespace, no '+'.
func ValidKeyName(name string) error {
	if name == "" || !utf8.ValidString(name) || len(name) > 255 {
		return fmt.Errorf("%w: key name %q must be non-empty UTF-8 of at most 255 bytes", ErrMalformed, name)
	}
	for _, r := range name {
		if unicode.IsSpace(r) || r == '+' || unicode.IsControl(r) {
			return fmt.Errorf("%w: key name %q must not contain spaces or '+'", ErrMalformed, name)
		}
	}
	return nil
}

// ValidOrigin reports whether origin is a schema-less URL usable as a
// checkpoint origin line.
func ValidOrigin(origin string) error {
	if err := ValidKeyName(origin); err != nil {
		return fmt.Errorf("%w: origin %q must be a schema-less URL without spaces", ErrMalformed, origin)
	}
	if strings.Contains(origin, "://") {
		return fmt.Errorf("%w: origin %q must be schema-less (no \"https://\")", ErrMalformed, origin)
	}
	return nil
}

// Validate checks the manifest's rules: names, keys, unique IDs, a policy
// that a majority of voting members must meet.
func (m *Manifest) Validate() error {
	if err := ValidOrigin(m.Origin); err != nil {
		return err
	}
	if m.Sequence == 0 {
		return fmt.Errorf("%w: manifest sequence starts at 1", ErrMalformed)
	}
	if (m.Sequence == 1) != (len(m.Previous) == 0) {
		return fmt.Errorf("%w: only the genesis manifest (sequence 1) has no previous fingerprint", ErrMalformed)
	}
	if len(m.Previous) != 0 && len(m.Previous) != 32 {
		return fmt.Errorf("%w: previous fingerprint is %d bytes", ErrMalformed, len(m.Previous))
	}
	if len(m.Members) == 0 || len(m.Members) > MaxMembers {
		return fmt.Errorf("%w: want 1 to %d members, got %d", ErrMalformed, MaxMembers, len(m.Members))
	}
	names, ids, peers, admins := map[string]bool{}, map[uint64]bool{}, map[string]bool{}, map[string]bool{}
	voting := 0
	for i, mem := range m.Members {
		where := fmt.Sprintf("member %d (%s)", i, mem.Name)
		if err := mem.validate(); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		if mem.Role.Voting() {
			voting++
		}
		if names[mem.Name] || ids[mem.RaftID] || (mem.PeerID != "" && peers[mem.PeerID]) || admins[string(mem.AdminKey)] {
			return fmt.Errorf("%w: %s: duplicate name, raft_id, peer_id or admin key", ErrMalformed, where)
		}
		names[mem.Name], ids[mem.RaftID], admins[string(mem.AdminKey)] = true, true, true
		if mem.PeerID != "" {
			peers[mem.PeerID] = true
		}
	}
	if voting == 0 {
		return fmt.Errorf("%w: no voting member", ErrMalformed)
	}
	if int(m.Threshold) > voting || int(m.Threshold) <= voting/2 {
		return fmt.Errorf("%w: threshold %d must be a majority of the %d voting members (%d..%d)",
			ErrMalformed, m.Threshold, voting, voting/2+1, voting)
	}
	if len(m.Witnesses) > MaxWitnesses {
		return fmt.Errorf("%w: more than %d witnesses", ErrMalformed, MaxWitnesses)
	}
	for i, w := range m.Witnesses {
		if err := w.validate(); err != nil {
			return fmt.Errorf("witness %d: %w", i, err)
		}
		if names[w.Name()] {
			return fmt.Errorf("%w: witness %d: name %q is already a member's or another witness's", ErrMalformed, i, w.Name())
		}
		names[w.Name()] = true
	}
	return nil
}

// MaxWitnesses bounds the external witnesses of one network.
const MaxWitnesses = 16

func (w *Witness) validate() error {
	if _, err := checkpoint.NewCosignatureVerifier(w.Key); err != nil {
		return fmt.Errorf("%w: witness key: %v", ErrMalformed, err)
	}
	u, err := url.Parse(w.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(w.URL) > 255 ||
		u.RawQuery != "" || u.Fragment != "" || checkText("witness url", w.URL) != nil {
		return fmt.Errorf("%w: witness url %q must be an http(s) base URL", ErrMalformed, w.URL)
	}
	return nil
}

// validate checks one member on its own.
func (mem *Member) validate() error {
	if err := ValidKeyName(mem.Name); err != nil {
		return err
	}
	if _, ok := roleNames[mem.Role]; !ok {
		return fmt.Errorf("%w: missing or unknown role", ErrMalformed)
	}
	if mem.RaftID == 0 {
		return fmt.Errorf("%w: raft_id must be non-zero", ErrMalformed)
	}
	v, err := note.NewVerifier(mem.NoteKey)
	if err != nil {
		return fmt.Errorf("%w: note key: %v", ErrMalformed, err)
	}
	if v.Name() != mem.Name {
		return fmt.Errorf("%w: note key is named %q", ErrMalformed, v.Name())
	}
	if len(mem.AdminKey) != 32 || checkEd25519Key("admin key", mem.AdminKey) != nil {
		return fmt.Errorf("%w: admin key must be a 32-byte Ed25519 public key", ErrMalformed)
	}
	for _, a := range mem.Addrs {
		if err := checkText("address", a); err != nil || a == "" || len(a) > 255 {
			return fmt.Errorf("%w: bad address %q", ErrMalformed, a)
		}
	}
	if len(mem.Addrs) > 16 {
		return fmt.Errorf("%w: more than 16 addresses", ErrMalformed)
	}
	if err := checkTSACerts(mem.Role, mem.TSACerts); err != nil {
		return err
	}
	return checkText("peer id", mem.PeerID)
}

// DefaultThreshold is a majority of the voting members.
func DefaultThreshold(members []Member) uint16 {
	v := 0
	for _, m := range members {
		if m.Role.Voting() {
			v++
		}
	}
	return uint16(v/2 + 1)
}

// Marshal returns the canonical encoding.
func (m *Manifest) Marshal() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	b := cryptobyte.NewBuilder(nil)
	b.AddUint8(ManifestVersion)
	addText(b, m.Origin)
	b.AddUint64(m.Sequence)
	addBytes8(b, m.Previous)
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, mem := range m.Members {
			addText(b, mem.Name)
			b.AddUint8(uint8(mem.Role))
			b.AddUint64(mem.RaftID)
			addText(b, mem.PeerID)
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
				for _, a := range mem.Addrs {
					addText(b, a)
				}
			})
			addText(b, mem.NoteKey)
			addBytes8(b, mem.AdminKey)
			b.AddUint8(uint8(len(mem.TSACerts)))
			for _, c := range mem.TSACerts {
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(c) })
			}
		}
	})
	b.AddUint16(m.Threshold)
	b.AddUint64(m.CreatedAt)
	b.AddUint8(uint8(len(m.Witnesses)))
	for _, w := range m.Witnesses {
		addText(b, w.Key)
		addText(b, w.URL)
		b.AddUint8(boolByte(w.Required))
	}
	out, err := build(b, "manifest")
	if err == nil && len(out) > MaxManifestSize {
		return nil, fmt.Errorf("%w: manifest is %d bytes", ErrTooLarge, len(out))
	}
	return out, err
}

// Fingerprint returns SHA-256 of the canonical encoding.
func (m *Manifest) Fingerprint() (Fingerprint, error) {
	enc, err := m.Marshal()
	if err != nil {
		return Fingerprint{}, err
	}
	return sha256.Sum256(enc), nil
}

// ParseManifest strictly decodes a canonical manifest and validates it.
func ParseManifest(data []byte) (*Manifest, error) {
	if len(data) > MaxManifestSize {
		return nil, fmt.Errorf("%w: manifest is %d bytes", ErrTooLarge, len(data))
	}
	s := cryptobyte.String(data)
	var (
		version uint8
		m       Manifest
		prev    cryptobyte.String
		members cryptobyte.String
	)
	if !s.ReadUint8(&version) {
		return nil, fmt.Errorf("%w: manifest version", ErrMalformed)
	}
	if version != ManifestVersion {
		return nil, fmt.Errorf("%w: manifest version %d", ErrUnsupported, version)
	}
	if err := readText(&s, "origin", &m.Origin); err != nil {
		return nil, err
	}
	if !s.ReadUint64(&m.Sequence) || !s.ReadUint8LengthPrefixed(&prev) || !s.ReadUint16LengthPrefixed(&members) {
		return nil, fmt.Errorf("%w: manifest header", ErrMalformed)
	}
	if len(prev) > 0 {
		m.Previous = append(HexBytes(nil), prev...)
	}
	for !members.Empty() {
		var mem Member
		var role uint8
		var addrs, admin cryptobyte.String
		if err := readText(&members, "member name", &mem.Name); err != nil {
			return nil, err
		}
		if !members.ReadUint8(&role) || !members.ReadUint64(&mem.RaftID) {
			return nil, fmt.Errorf("%w: member fields", ErrMalformed)
		}
		mem.Role = Role(role)
		if err := readText(&members, "peer id", &mem.PeerID); err != nil {
			return nil, err
		}
		if !members.ReadUint16LengthPrefixed(&addrs) {
			return nil, fmt.Errorf("%w: member addresses", ErrMalformed)
		}
		for !addrs.Empty() {
			var a string
			if err := readText(&addrs, "address", &a); err != nil {
				return nil, err
			}
			mem.Addrs = append(mem.Addrs, a)
		}
		if err := readText(&members, "note key", &mem.NoteKey); err != nil {
			return nil, err
		}
		if !members.ReadUint8LengthPrefixed(&admin) {
			return nil, fmt.Errorf("%w: member admin key", ErrMalformed)
		}
		mem.AdminKey = append([]byte(nil), admin...)
		var ncerts uint8
		if !members.ReadUint8(&ncerts) || int(ncerts) > MaxTSACerts {
			return nil, fmt.Errorf("%w: member TSA certificates", ErrMalformed)
		}
		for range ncerts {
			var c cryptobyte.String
			if !members.ReadUint16LengthPrefixed(&c) {
				return nil, fmt.Errorf("%w: member TSA certificate", ErrMalformed)
			}
			mem.TSACerts = append(mem.TSACerts, append([]byte(nil), c...))
		}
		if len(m.Members) == MaxMembers {
			return nil, fmt.Errorf("%w: more than %d members", ErrMalformed, MaxMembers)
		}
		m.Members = append(m.Members, mem)
	}
	var nwit uint8
	if !s.ReadUint16(&m.Threshold) || !s.ReadUint64(&m.CreatedAt) || !s.ReadUint8(&nwit) || int(nwit) > MaxWitnesses {
		return nil, fmt.Errorf("%w: manifest policy", ErrMalformed)
	}
	for range nwit {
		var w Witness
		var req uint8
		if err := readText(&s, "witness key", &w.Key); err != nil {
			return nil, err
		}
		if err := readText(&s, "witness url", &w.URL); err != nil {
			return nil, err
		}
		if !s.ReadUint8(&req) || req > 1 {
			return nil, fmt.Errorf("%w: witness required flag", ErrMalformed)
		}
		w.Required = req == 1
		m.Witnesses = append(m.Witnesses, w)
	}
	if !s.Empty() {
		return nil, fmt.Errorf("%w: %d trailing bytes after manifest", ErrMalformed, len(s))
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// ManifestFile is the JSON form of a manifest on disk (genesis.json). The
// canonical encoding rides along so the file pins exactly one fingerprint;
// the readable fields are checked against it.
type ManifestFile struct {
	Fingerprint string    `json:"fingerprint"`
	Canonical   []byte    `json:"canonical"`
	Manifest    *Manifest `json:"manifest"`
}

// MarshalManifestFile renders m as an indented JSON manifest file.
func MarshalManifestFile(m *Manifest) ([]byte, error) {
	enc, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	fp := sha256.Sum256(enc)
	out, err := json.MarshalIndent(ManifestFile{Fingerprint: Fingerprint(fp).String(), Canonical: enc, Manifest: m}, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// ParseManifestFile parses a JSON manifest file: the canonical bytes decide,
// and the readable fields and fingerprint must agree with them.
func ParseManifestFile(data []byte) (*Manifest, Fingerprint, error) {
	if len(data) > 4*MaxManifestSize {
		return nil, Fingerprint{}, fmt.Errorf("%w: manifest file is %d bytes", ErrTooLarge, len(data))
	}
	var f ManifestFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, Fingerprint{}, fmt.Errorf("%w: manifest file: %v", ErrMalformed, err)
	}
	if dec.More() {
		return nil, Fingerprint{}, fmt.Errorf("%w: manifest file: trailing data", ErrMalformed)
	}
	m, err := ParseManifest(f.Canonical)
	if err != nil {
		return nil, Fingerprint{}, fmt.Errorf("manifest file: %w", err)
	}
	fp := Fingerprint(sha256.Sum256(f.Canonical))
	if f.Fingerprint != fp.String() {
		return nil, fp, fmt.Errorf("%w: manifest file says fingerprint %s, canonical bytes hash to %s", ErrMalformed, f.Fingerprint, fp)
	}
	if f.Manifest != nil {
		readable, err := f.Manifest.Marshal()
		if err != nil || !bytes.Equal(readable, f.Canonical) {
			return nil, fp, fmt.Errorf("%w: manifest file: readable fields disagree with canonical bytes", ErrMalformed)
		}
	}
	return m, fp, nil
}

// Verifiers returns note verifiers for the voting members' checkpoint keys.
func (m *Manifest) Verifiers() (note.Verifiers, error) {
	var vs []note.Verifier
	for _, mem := range m.Members {
		if !mem.Role.Voting() {
			continue
		}
		v, err := note.NewVerifier(mem.NoteKey)
		if err != nil {
			return nil, fmt.Errorf("member %s note key: %w", mem.Name, err)
		}
		vs = append(vs, v)
	}
	return note.VerifierList(vs...), nil
}

// IsAdmin reports whether k is an admin key of some member.
func (m *Manifest) IsAdmin(k PublicKey) bool {
	if k.Alg != Ed25519 {
		return false
	}
	for _, mem := range m.Members {
		if bytes.Equal(mem.AdminKey, k.Key) {
			return true
		}
	}
	return false
}

// MaxDescriptorSize bounds a member descriptor file.
const MaxDescriptorSize = 16 << 10

// MarshalDescriptor renders a member's public descriptor (descriptor.json):
// what an institution sends the others so `cunzheng genesis` can combine
// them into a manifest.
func MarshalDescriptor(m *Member) ([]byte, error) {
	out, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// ParseDescriptor strictly parses a member descriptor and checks it on its
// own (name, role, raft ID, keys); uniqueness across members is checked when
// a manifest is built from several.
func ParseDescriptor(data []byte) (*Member, error) {
	if len(data) > MaxDescriptorSize {
		return nil, fmt.Errorf("%w: descriptor is %d bytes", ErrTooLarge, len(data))
	}
	var m Member
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: descriptor: %v", ErrMalformed, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: descriptor: trailing data", ErrMalformed)
	}
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("descriptor: %w", err)
	}
	return &m, nil
}
