package testnet

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/cunzheng/cunzheng/evidence"
)

// Member describes one institution of a network made by CreateMembers:
// unlike Create, the caller chooses every name, role and address.
type Member struct {
	Name string // signed-note key name, e.g. court.example
	Role string // court, notary, time-service, appraisal or observer
	API  string // HTTP listen address written to node.conf
	P2P  string // libp2p listen multiaddr, written to node.conf and the manifest
}

// CreateMembers makes a fresh network of the given institutions under dir
// the way real institutions do: `cunzheng init` for each node directory,
// then one `cunzheng genesis` over their descriptors, whose manifest is
// copied into every node directory. Unlike Create it never loads an
// existing network; dir must not hold one. genesisArgs are passed on to
// `cunzheng genesis` (e.g. --witness).
func CreateMembers(bin, dir, origin string, members []Member, genesisArgs ...string) (*Network, error) {
	if len(members) < 1 || len(members) > 16 {
		return nil, fmt.Errorf("a local network has 1 to 16 nodes, not %d", len(members))
	}
	if _, err := os.Stat(filepath.Join(dir, "network.json")); err == nil {
		return nil, fmt.Errorf("%s already holds a network", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	nw := &Network{Dir: dir, Origin: origin}
	var descs []string
	for _, m := range members {
		nd := &Node{Name: m.Name, Role: m.Role, Dir: filepath.Join(dir, m.Name), API: m.API, P2P: m.P2P,
			LogFile: filepath.Join(dir, m.Name+".log")}
		out, err := exec.Command(bin, "init", "--dir", nd.Dir, "--name", m.Name, "--role", m.Role,
			"--origin", origin, "--listen", m.API, "--p2p-listen", m.P2P).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("init %s: %v: %s", m.Name, err, out)
		}
		descs = append(descs, filepath.Join(nd.Dir, "descriptor.json"))
		nw.Nodes = append(nw.Nodes, nd)
	}
	genesis := filepath.Join(dir, "genesis.json")
	out, err := exec.Command(bin, append(append([]string{"genesis", "--origin", origin, "-o", genesis}, genesisArgs...), descs...)...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("genesis: %v: %s", err, out)
	}
	data, err := os.ReadFile(genesis)
	if err != nil {
		return nil, err
	}
	_, fp, err := evidence.ParseManifestFile(data)
	if err != nil {
		return nil, fmt.Errorf("genesis: %w", err)
	}
	nw.Fingerprint = fp.String()
	for _, nd := range nw.Nodes {
		// Replace the one-institution genesis that init wrote (none for
		// an observer: a network of one observer has no voter).
		path := filepath.Join(nd.Dir, "genesis.json")
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return nil, err
		}
	}
	return nw, nw.save()
}
