package evidence

import (
	"fmt"

	"golang.org/x/mod/sumdb/note"

	"github.com/cunzheng/cunzheng/chain/checkpoint"
)

// Policy returns the finality policy the manifest sets: its origin, the
// voting members' checkpoint keys and threshold, and its external
// witnesses' cosignature keys with the names of those it requires. The
// node, the auditor and the offline verifier all take the policy from here.
func (m *Manifest) Policy() (checkpoint.Policy, error) {
	vs, err := m.Verifiers()
	if err != nil {
		return checkpoint.Policy{}, err
	}
	p := checkpoint.Policy{Origin: m.Origin, Verifiers: vs, Threshold: int(m.Threshold)}
	if len(m.Witnesses) == 0 {
		return p, nil
	}
	ws := make([]note.Verifier, 0, len(m.Witnesses))
	for _, w := range m.Witnesses {
		v, err := checkpoint.NewCosignatureVerifier(w.Key)
		if err != nil {
			return checkpoint.Policy{}, fmt.Errorf("witness %s key: %w", w.Name(), err)
		}
		ws = append(ws, v)
		if w.Required {
			p.RequiredWitnesses = append(p.RequiredWitnesses, w.Name())
		}
	}
	p.Witnesses = note.VerifierList(ws...)
	return p, nil
}
