package testnet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Institution names and roles of a local network, in order: the first four
// are the network issue 3 describes, further nodes are more courts.
var institutions = []struct{ name, role string }{
	{"court.example", "court"},
	{"notary.example", "notary"},
	{"tsc.example", "time-service"},
	{"appraisal.example", "appraisal"},
}

func institution(i int) (name, role string) {
	if i < len(institutions) {
		return institutions[i].name, institutions[i].role
	}
	return fmt.Sprintf("court%d.example", i-len(institutions)+2), "court"
}

// Node is one node of a local network.
type Node struct {
	Name    string `json:"name"`
	Role    string `json:"role"`
	Dir     string `json:"dir"`
	API     string `json:"api"` // host:port
	P2P     string `json:"p2p"` // multiaddr
	PID     int    `json:"pid,omitempty"`
	LogFile string `json:"log"`
}

// URL returns the node's API base URL.
func (n *Node) URL() string { return "http://" + n.API }

// Network is a local network of node processes on loopback, described by
// dir/network.json.
type Network struct {
	Dir         string  `json:"dir"`
	Origin      string  `json:"origin"`
	Fingerprint string  `json:"fingerprint"`
	Nodes       []*Node `json:"nodes"`
}

// Create makes a network of n institutions under dir: each node directory
// from `cunzheng init`, one genesis manifest from `cunzheng genesis` copied
// into every node, loopback ports from basePort (API) and basePort+100
// (libp2p). An existing network in dir is loaded instead, so data persists.
func Create(bin, dir string, n, basePort int) (*Network, error) {
	if nw, err := Load(dir); err == nil {
		if len(nw.Nodes) != n {
			return nil, fmt.Errorf("%s holds a network of %d nodes, not %d (remove it to start afresh)", dir, len(nw.Nodes), n)
		}
		return nw, nil
	}
	members := make([]Member, n)
	for i := range members {
		name, role := institution(i)
		members[i] = Member{Name: name, Role: role,
			API: fmt.Sprintf("127.0.0.1:%d", basePort+i), P2P: fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", basePort+100+i)}
	}
	return CreateMembers(bin, dir, "evidence.testnet.example/v1", members)
}

// Load reads dir/network.json.
func Load(dir string) (*Network, error) {
	data, err := os.ReadFile(filepath.Join(dir, "network.json"))
	if err != nil {
		return nil, err
	}
	var nw Network
	if err := json.Unmarshal(data, &nw); err != nil {
		return nil, fmt.Errorf("%s/network.json: %w", dir, err)
	}
	return &nw, nil
}

func (nw *Network) save() error {
	data, _ := json.MarshalIndent(nw, "", "  ")
	return os.WriteFile(filepath.Join(nw.Dir, "network.json"), append(data, '\n'), 0o644)
}

// Up starts every node as a background process (its own session, so it
// outlives the caller) and waits until each answers /healthz.
func (nw *Network) Up(bin string) error {
	for _, nd := range nw.Nodes {
		if nd.PID != 0 && syscall.Kill(nd.PID, 0) == nil {
			continue // already running
		}
		logf, err := os.OpenFile(nd.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		cmd := exec.Command(bin, "node", "--dir", nd.Dir)
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			logf.Close()
			return fmt.Errorf("start %s: %w", nd.Name, err)
		}
		logf.Close()
		nd.PID = cmd.Process.Pid
		go cmd.Wait()
	}
	if err := nw.save(); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, nd := range nw.Nodes {
		for {
			if resp, err := http.Get(nd.URL() + "/healthz"); err == nil {
				resp.Body.Close()
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s did not come up; see %s", nd.Name, nd.LogFile)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// Down stops every node (SIGTERM, then SIGKILL after a grace period).
func (nw *Network) Down() error {
	for _, nd := range nw.Nodes {
		if nd.PID == 0 {
			continue
		}
		syscall.Kill(nd.PID, syscall.SIGTERM)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, nd := range nw.Nodes {
		for nd.PID != 0 && syscall.Kill(nd.PID, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if nd.PID != 0 {
			syscall.Kill(nd.PID, syscall.SIGKILL)
		}
		nd.PID = 0
	}
	return nw.save()
}

// WaitLeader waits until some node reports a leader and returns its index
// in Nodes.
func (nw *Network) WaitLeader(ctx context.Context) (int, error) {
	for {
		for i, nd := range nw.Nodes {
			var st struct {
				IsLeader bool `json:"is_leader"`
			}
			if err := getJSON(nd.URL()+"/v1/status", &st); err == nil && st.IsLeader {
				return i, nil
			}
		}
		select {
		case <-ctx.Done():
			return -1, errors.New("no leader elected")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func getJSON(url string, v any) error {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(v)
}

// FreePortBase finds n consecutive free loopback ports for APIs and n more
// 100 above them for libp2p, starting the search at from.
func FreePortBase(from, n int) (int, error) {
	for base := from; base < 60000; base += 10 {
		ok := true
		for i := 0; i < n && ok; i++ {
			for _, p := range []int{base + i, base + 100 + i} {
				l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
				if err != nil {
					ok = false
					break
				}
				l.Close()
			}
		}
		if ok {
			return base, nil
		}
	}
	return 0, errors.New("no free loopback ports")
}
