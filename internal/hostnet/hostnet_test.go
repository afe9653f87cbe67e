//go:build linux

package hostnet

import (
	"context"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/netnsrig"
)

// inNS is a Net acting in namespace ns.
func inNS(ns string) *Net {
	n := New()
	ip := n.IP
	n.IP = func(ctx context.Context, args ...string) ([]byte, error) {
		return ip(ctx, append([]string{"-n", ns}, args...)...)
	}
	return n
}

func ping(h *netnsrig.Host, addr string) error {
	out, err := h.Command("busybox", "ping", "-c", "1", "-W", "2", addr).CombinedOutput()
	if err != nil {
		return &exec.ExitError{Stderr: out}
	}
	return nil
}

// An external switch's bridge takes its uplink's addresses and routes
// and keeps the host reachable; again it changes nothing; removed, the
// uplink has them back.
func TestBridgeTakesAndGivesBackTheUplink(t *testing.T) {
	rig := netnsrig.New(t, "LAN")
	a := rig.AddHost("a", map[string]netip.Prefix{"LAN": netip.MustParsePrefix("10.99.0.1/24")})
	b := rig.AddHost("b", map[string]netip.Prefix{"LAN": netip.MustParsePrefix("10.99.0.2/24")})
	ctx := context.Background()
	n := inNS(a.NS)
	if _, err := n.IP(ctx, "route", "add", "10.98.0.0/24", "via", "10.99.0.2", "dev", "eth0"); err != nil {
		t.Fatal(err)
	}
	links, err := n.Links(ctx)
	if err != nil {
		t.Fatal(err)
	}
	up, err := ResolveAdapter(links, "LAN", "10.99.0.1", "kbr")
	if err != nil || up != "eth0" {
		t.Fatalf("resolve by address: %q %v", up, err)
	}
	mac := ""
	for _, l := range links {
		if l.Name == "eth0" {
			mac = l.MAC
		}
	}
	for i := 0; i < 2; i++ { // the second call finds it done
		if err := n.EnsureBridge(ctx, "kbrtest", "eth0"); err != nil {
			t.Fatal(err)
		}
	}
	links, _ = n.Links(ctx)
	var br, eth Link
	for _, l := range links {
		switch l.Name {
		case "kbrtest":
			br = l
		case "eth0":
			eth = l
		}
	}
	if eth.Master != "kbrtest" || len(eth.Addrs) != 0 || !slices.Contains(br.Addrs, "10.99.0.1/24") || br.MAC != mac {
		t.Fatalf("bridged: eth0 %+v, bridge %+v (uplink MAC %s)", eth, br, mac)
	}
	if up, err := ResolveAdapter(links, "LAN", "10.99.0.1", "kbr"); err != nil || up != "eth0" {
		t.Fatalf("resolve through the bridge: %q %v", up, err)
	}
	if out, _ := n.IP(ctx, "route", "show", "10.98.0.0/24"); !strings.Contains(string(out), "dev kbrtest") {
		t.Fatalf("route not moved: %s", out)
	}
	if err := ping(a, "10.99.0.2"); err != nil {
		t.Fatalf("a cannot reach b through its bridge: %v", err)
	}
	if err := n.EnsureTap(ctx, "kttest0", "kbrtest"); err != nil {
		t.Fatal(err)
	}
	if err := n.EnsureTap(ctx, "kttest0", "kbrtest"); err != nil {
		t.Fatal(err)
	}
	links, _ = n.Links(ctx)
	if Uplink(links, "kbrtest") != "eth0" {
		t.Fatalf("uplink of the bridge with a tap: %q", Uplink(links, "kbrtest"))
	}
	if err := n.RemoveLink(ctx, "kttest0"); err != nil {
		t.Fatal(err)
	}
	if err := n.RemoveBridge(ctx, "kbrtest"); err != nil {
		t.Fatal(err)
	}
	if err := n.RemoveBridge(ctx, "kbrtest"); err != nil {
		t.Fatal(err)
	}
	links, _ = n.Links(ctx)
	for _, l := range links {
		if l.Name == "eth0" && (l.Master != "" || !slices.Contains(l.Addrs, "10.99.0.1/24")) {
			t.Fatalf("eth0 after removal: %+v", l)
		}
		if l.Name == "kbrtest" || l.Name == "kttest0" {
			t.Fatalf("%s still there", l.Name)
		}
	}
	if out, _ := n.IP(ctx, "route", "show", "10.98.0.0/24"); !strings.Contains(string(out), "dev eth0") {
		t.Fatalf("route not given back: %s", out)
	}
	if err := ping(a, "10.99.0.2"); err != nil {
		t.Fatalf("a cannot reach b after: %v", err)
	}
	_ = b
}

// An ARP probe from a bridge is answered by the machine holding the
// address, and only by it.
func TestProbeARP(t *testing.T) {
	rig := netnsrig.New(t, "LAN")
	b := rig.AddHost("b", map[string]netip.Prefix{"LAN": netip.MustParsePrefix("10.99.0.2/24")})
	rig.Gateway("LAN", netip.MustParsePrefix("10.99.0.254/24"))
	br := ""
	ifs, _ := net.Interfaces()
	for _, ifc := range ifs {
		as, _ := ifc.Addrs()
		for _, a := range as {
			if strings.HasPrefix(a.String(), "10.99.0.254/") {
				br = ifc.Name
			}
		}
	}
	out, err := b.Command("cat", "/sys/class/net/eth0/address").Output()
	if err != nil || br == "" {
		t.Fatalf("b's MAC: %v; bridge %q", err, br)
	}
	mac, err := net.ParseMAC(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if ok, err := ProbeARP(ctx, br, netip.MustParseAddr("10.99.0.2"), mac, 2*time.Second); !ok || err != nil {
		t.Fatalf("b holds 10.99.0.2: %v %v", ok, err)
	}
	if ok, err := ProbeARP(ctx, br, netip.MustParseAddr("10.99.0.9"), mac, 300*time.Millisecond); ok || err != nil {
		t.Fatalf("b does not hold 10.99.0.9: %v %v", ok, err)
	}
}

// Two agents in one namespace (a lab's nodes) start VMs on one switch at
// once: the one whose `ip link add` loses the race finds the other's
// bridge and uses it.
func TestEnsureBridgeRaceWithAnotherAgent(t *testing.T) {
	rig := netnsrig.New(t)
	h := rig.AddHost("lab", map[string]netip.Prefix{})
	n := inNS(h.NS)
	ip := n.IP
	n.IP = func(ctx context.Context, args ...string) ([]byte, error) {
		if len(args) > 2 && args[0] == "link" && args[1] == "add" {
			// The other agent wins: its bridge appears just before ours.
			if out, err := exec.Command("ip", "-n", h.NS, "link", "add", "name", "kbrrace", "type", "bridge").CombinedOutput(); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
		}
		return ip(ctx, args...)
	}
	if err := n.EnsureBridge(context.Background(), "kbrrace", ""); err != nil {
		t.Fatalf("EnsureBridge after another agent made the bridge: %v", err)
	}
	links, err := n.Links(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if b, ok := find(links, "kbrrace"); !ok || b.Kind != "bridge" || !b.Up {
		t.Fatalf("bridge %+v (found %v)", b, ok)
	}
}
