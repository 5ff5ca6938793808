//go:build linux

package testnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// Netns is a private IPv4 network of Linux network namespaces made for a
// test. Host i is a namespace whose only interface besides loopback, eth0,
// has the address Subnet.(i+1)/24 and is cabled by a veth pair to a bridge
// (a "switch") inside a hub namespace of its own. Nothing is created in the
// caller's namespace: the subnet exists only inside these namespaces, and
// each host's loopback is its own, so every host can serve on 127.0.0.1:PORT.
//
// Partition re-cables hosts onto separate switches, so packets between the
// groups are dropped silently, as when a link is cut, rather than refused.
//
// It needs root and iproute2's ip. Stop every process started in a host
// before Close: a namespace lives as long as a process is inside it.
type Netns struct {
	Subnet   string   // first three octets, e.g. "10.231.0"
	hosts    []string // namespace names
	hub      string
	switches int // switches sw0..sw(switches-1) made in hub so far
}

// NewNetns creates hosts namespaces named prefix-0… and prefix-hub and
// cables them to one switch. On error it removes what it created.
func NewNetns(prefix, subnet string, hosts int) (x *Netns, err error) {
	if hosts < 1 || hosts > 250 {
		return nil, fmt.Errorf("netns: want 1 to 250 hosts, not %d", hosts)
	}
	if ip := net.ParseIP(subnet + ".1").To4(); ip == nil {
		return nil, fmt.Errorf("netns: subnet %q is not three IPv4 octets", subnet)
	}
	x = &Netns{Subnet: subnet, hub: prefix + "-hub"}
	defer func() {
		if err != nil {
			err = errors.Join(err, x.Close())
			x = nil
		}
	}()
	if err := ipCmd("netns", "add", x.hub); err != nil {
		return nil, err
	}
	if err := x.addSwitches(1); err != nil {
		return nil, err
	}
	for i := 0; i < hosts; i++ {
		name := fmt.Sprintf("%s-%d", prefix, i)
		if err := ipCmd("netns", "add", name); err != nil {
			return nil, err
		}
		x.hosts = append(x.hosts, name)
		port := fmt.Sprintf("p%d", i)
		for _, args := range [][]string{
			{"-n", name, "link", "set", "lo", "up"},
			{"-n", x.hub, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", name},
			{"-n", x.hub, "link", "set", port, "master", "sw0"},
			{"-n", x.hub, "link", "set", port, "up"},
			{"-n", name, "addr", "add", x.Addr(i) + "/24", "dev", "eth0"},
			{"-n", name, "link", "set", "eth0", "up"},
		} {
			if err := ipCmd(args...); err != nil {
				return nil, err
			}
		}
	}
	return x, nil
}

// Addr returns host i's IPv4 address.
func (x *Netns) Addr(i int) string { return fmt.Sprintf("%s.%d", x.Subnet, i+1) }

// Name returns host i's namespace name.
func (x *Netns) Name(i int) string { return x.hosts[i] }

// Command returns a command that runs name with args inside host i
// (`ip netns exec`, which execs name, so the process ID is name's own).
func (x *Netns) Command(i int, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", x.hosts[i], name}, args...)...)
}

// Partition re-cables the hosts of groups[k] onto switch k, so hosts talk
// only within their group. Hosts in no group stay where they are.
func (x *Netns) Partition(groups ...[]int) error {
	if err := x.addSwitches(len(groups)); err != nil {
		return err
	}
	for k, g := range groups {
		for _, i := range g {
			if i < 0 || i >= len(x.hosts) {
				return fmt.Errorf("netns: no host %d", i)
			}
			if err := ipCmd("-n", x.hub, "link", "set", fmt.Sprintf("p%d", i), "master", fmt.Sprintf("sw%d", k)); err != nil {
				return err
			}
		}
	}
	return nil
}

// Heal cables every host back onto the first switch.
func (x *Netns) Heal() error {
	all := make([]int, len(x.hosts))
	for i := range all {
		all[i] = i
	}
	return x.Partition(all)
}

func (x *Netns) addSwitches(n int) error {
	for ; x.switches < n; x.switches++ {
		sw := fmt.Sprintf("sw%d", x.switches)
		if err := ipCmd("-n", x.hub, "link", "add", sw, "type", "bridge"); err != nil {
			return err
		}
		if err := ipCmd("-n", x.hub, "link", "set", sw, "up"); err != nil {
			return err
		}
	}
	return nil
}

// DialContext returns a dial function (for http.Transport) whose sockets
// are made inside host i, so "127.0.0.1:PORT" is host i's loopback. The
// socket is created on an OS thread switched into the namespace for the
// dial alone; a connected socket keeps its namespace wherever it is used.
func (x *Netns) DialContext(i int) func(ctx context.Context, network, addr string) (net.Conn, error) {
	path := "/run/netns/" + x.hosts[i]
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		done := make(chan result, 1)
		go func() {
			c, err := dialIn(ctx, path, network, addr)
			done <- result{c, err}
		}()
		r := <-done
		return r.c, r.err
	}
}

// dialIn dials from inside the namespace at nsPath. It runs on a goroutine
// of its own: if the thread cannot be switched back it stays locked, and
// the runtime ends the thread with the goroutine.
func dialIn(ctx context.Context, nsPath, network, addr string) (net.Conn, error) {
	runtime.LockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer self.Close()
	target, err := os.Open(nsPath)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer target.Close()
	if err := setns(target); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("enter %s: %w", nsPath, err)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if setns(self) == nil {
		runtime.UnlockOSThread()
	}
	return c, err
}

func setns(f *os.File) error { return unix.Setns(int(f.Fd()), unix.CLONE_NEWNET) }

// Close deletes the namespaces, and with them the veths and switches.
// It is safe to call more than once.
func (x *Netns) Close() error {
	var errs []error
	for _, name := range append(x.hosts, x.hub) {
		if _, err := os.Stat("/run/netns/" + name); err != nil {
			continue
		}
		if err := ipCmd("netns", "del", name); err != nil {
			errs = append(errs, err)
		}
	}
	x.hosts = nil
	return errors.Join(errs...)
}

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
