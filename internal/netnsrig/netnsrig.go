// Package netnsrig runs a test's hosts as Linux network namespaces on
// bridges, one bridge per network and one veth per host and network, so
// node agents each get their own network stack and addresses on one
// machine, and a test can cut one host's link. It needs root and the `ip`
// tool (iproute2): without them a test skips, and fails under CI=true.
package netnsrig

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Rig is a set of namespaces and bridges a test made; Cleanup removes
// them all.
type Rig struct {
	t       testing.TB
	id      string
	bridges map[string]string // network name → bridge
	hosts   map[string]*Host
}

// Host is one namespace.
type Host struct {
	Name  string
	NS    string
	links map[string]string // network name → veth inside the namespace
	rig   *Rig
}

// Available says why the rig cannot run here, or nil.
func Available() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("the ip tool (iproute2) is missing: %w", err)
	}
	if out, err := exec.Command("ip", "netns", "list").CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// SkipOrFail skips t when the rig cannot run, or fails it under CI=true.
func SkipOrFail(t testing.TB) {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("network namespace tests cannot run under CI=true: %v", err)
		}
		t.Skipf("network namespaces are not available, skipping: %v", err)
	}
}

// New makes a bridge for each network name (no address on the machine's
// own stack: the hosts' networks stay inside the rig).
func New(t testing.TB, networks ...string) *Rig {
	t.Helper()
	SkipOrFail(t)
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	r := &Rig{t: t, id: hex.EncodeToString(b), bridges: map[string]string{}, hosts: map[string]*Host{}}
	t.Cleanup(r.cleanup)
	for i, n := range networks {
		br := fmt.Sprintf("kb%s%d", r.id, i)
		r.ip("link", "add", br, "type", "bridge")
		r.ip("link", "set", br, "up")
		r.bridges[n] = br
	}
	return r
}

// AddHost makes a namespace with one veth per network, at addr (CIDR) on
// that network's bridge, all links up.
func (r *Rig) AddHost(name string, addrs map[string]netip.Prefix) *Host {
	r.t.Helper()
	i := len(r.hosts)
	h := &Host{Name: name, NS: fmt.Sprintf("kn%s%d", r.id, i), links: map[string]string{}, rig: r}
	r.ip("netns", "add", h.NS)
	r.hosts[name] = h
	r.ip("-n", h.NS, "link", "set", "lo", "up")
	j := 0
	for network, addr := range addrs {
		br, ok := r.bridges[network]
		if !ok {
			r.t.Fatalf("netnsrig: host %s: no network %q in the rig", name, network)
		}
		outer, inner := fmt.Sprintf("kv%s%d%do", r.id, i, j), fmt.Sprintf("eth%d", j)
		r.ip("link", "add", outer, "type", "veth", "peer", "name", inner, "netns", h.NS)
		r.ip("link", "set", outer, "master", br, "up")
		r.ip("-n", h.NS, "addr", "add", addr.String(), "dev", inner)
		r.ip("-n", h.NS, "link", "set", inner, "up")
		h.links[network] = inner
		j++
	}
	return h
}

// Gateway gives the machine's own stack the address addr (CIDR) on
// network's bridge, so a server the test runs outside every host (the
// cluster database) is reachable from the hosts at addr. A prefix that
// overlaps one of the machine's own networks is refused: its route would
// compete with the machine's (its default gateway may be in it).
func (r *Rig) Gateway(network string, addr netip.Prefix) {
	r.t.Helper()
	br, ok := r.bridges[network]
	if !ok {
		r.t.Fatalf("netnsrig: no network %q in the rig", network)
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		r.t.Fatal(err)
	}
	for _, ifc := range ifaces {
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			p, err := netip.ParsePrefix(a.String())
			if err == nil && p.Masked().Overlaps(addr.Masked()) {
				r.t.Fatalf("netnsrig: gateway %s overlaps %s on the machine's %s; pick a network the machine does not use", addr, p, ifc.Name)
			}
		}
	}
	r.ip("addr", "add", addr.String(), "dev", br)
}

// Command is name args run inside the host's namespace.
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
}

// SetLink brings the host's link on network up or down (a cut cable).
func (h *Host) SetLink(network string, up bool) {
	h.rig.t.Helper()
	state := "down"
	if up {
		state = "up"
	}
	h.rig.ip("-n", h.NS, "link", "set", h.links[network], state)
}

func (r *Rig) ip(args ...string) {
	r.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		r.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
}

// cleanup deletes the namespaces (their veths go with them) and bridges.
func (r *Rig) cleanup() {
	for _, h := range r.hosts {
		_ = exec.Command("ip", "netns", "del", h.NS).Run()
	}
	for _, br := range r.bridges {
		_ = exec.Command("ip", "link", "del", br).Run()
	}
}

// Bridge is network's bridge on the machine's own stack.
func (r *Rig) Bridge(network string) string { return r.bridges[network] }
