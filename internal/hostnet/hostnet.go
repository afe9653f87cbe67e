// Package hostnet makes a node's virtual switches out of Linux links in
// the process's network namespace, through the `ip` tool (iproute2): a
// bridge per switch, the host adapter an external switch binds enslaved
// to it (its addresses and routes moved to the bridge, as Hyper-V moves
// the host's to its virtual adapter), and a persistent tap per VM
// adapter on the bridge, which QEMU opens by name.
//
// Every operation reads the kernel's state first and does only what is
// missing, so a crash part-way is finished by the next call.
package hostnet

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
)

// Link is one network interface.
type Link struct {
	Name   string
	Kind   string // "bridge", "tun", "veth", ... ("" a plain device)
	Master string
	MAC    string
	Up     bool
	// Addrs are its global IPv4 and IPv6 addresses, in CIDR form.
	Addrs []string
}

// Net runs `ip` in the process's network namespace.
type Net struct {
	// IP runs the ip tool with args; tests may replace it.
	IP func(ctx context.Context, args ...string) ([]byte, error)
}

// New returns a Net on the ip tool of PATH.
func New() *Net {
	return &Net{IP: func(ctx context.Context, args ...string) ([]byte, error) {
		out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
		if err != nil {
			return out, fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return out, nil
	}}
}

// Available says why hostnet cannot work here (no root, no ip tool).
func Available() error {
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("the ip tool (iproute2) is missing: %w", err)
	}
	return nil
}

type jsonLink struct {
	Name     string   `json:"ifname"`
	Master   string   `json:"master"`
	Address  string   `json:"address"`
	Flags    []string `json:"flags"`
	LinkInfo struct {
		Kind string `json:"info_kind"`
	} `json:"linkinfo"`
	AddrInfo []struct {
		Family string `json:"family"`
		Local  string `json:"local"`
		Prefix int    `json:"prefixlen"`
		Scope  string `json:"scope"`
	} `json:"addr_info"`
}

// Links lists the namespace's links with their addresses.
func (n *Net) Links(ctx context.Context) ([]Link, error) {
	out, err := n.IP(ctx, "-j", "-d", "link", "show")
	if err != nil {
		return nil, err
	}
	var ls []jsonLink
	if err := json.Unmarshal(out, &ls); err != nil {
		return nil, fmt.Errorf("ip -j link: %w", err)
	}
	out, err = n.IP(ctx, "-j", "addr", "show")
	if err != nil {
		return nil, err
	}
	var as []jsonLink
	if err := json.Unmarshal(out, &as); err != nil {
		return nil, fmt.Errorf("ip -j addr: %w", err)
	}
	addrs := map[string][]string{}
	for _, a := range as {
		for _, ai := range a.AddrInfo {
			if ai.Scope == "global" && (ai.Family == "inet" || ai.Family == "inet6") {
				addrs[a.Name] = append(addrs[a.Name], fmt.Sprintf("%s/%d", ai.Local, ai.Prefix))
			}
		}
	}
	res := make([]Link, 0, len(ls))
	for _, l := range ls {
		res = append(res, Link{Name: l.Name, Kind: l.LinkInfo.Kind, Master: l.Master, MAC: l.Address,
			Up: slices.Contains(l.Flags, "UP"), Addrs: addrs[l.Name]})
	}
	return res, nil
}

func find(links []Link, name string) (Link, bool) {
	for _, l := range links {
		if l.Name == name {
			return l, true
		}
	}
	return Link{}, false
}

// ResolveAdapter finds the interface of a host adapter: an interface of
// that name, else the interface holding address (a declared adapter's
// address; "" none). An address already moved to one of our bridges
// (prefix) resolves to the bridge's port that is not a tap.
func ResolveAdapter(links []Link, name, address, bridgePrefix string) (string, error) {
	if l, ok := find(links, name); ok {
		return l.Name, nil
	}
	if address != "" {
		for _, l := range links {
			for _, a := range l.Addrs {
				if p, err := netip.ParsePrefix(a); err == nil && p.Addr().String() == address {
					if l.Kind == "bridge" && strings.HasPrefix(l.Name, bridgePrefix) {
						for _, port := range links {
							if port.Master == l.Name && port.Kind != "tun" {
								return port.Name, nil
							}
						}
					}
					return l.Name, nil
				}
			}
		}
	}
	return "", fmt.Errorf("no interface %q, nor one holding the adapter's address %q", name, address)
}

// EnsureBridge makes bridge br (up, forwarding at once) and, when uplink
// is set, enslaves uplink to it: the bridge takes the uplink's MAC (so
// peers' ARP caches stay right), its addresses and its routes first, then
// the uplink joins and loses its addresses.
func (n *Net) EnsureBridge(ctx context.Context, br, uplink string) error {
	links, err := n.Links(ctx)
	if err != nil {
		return err
	}
	b, ok := find(links, br)
	if !ok {
		if _, err := n.IP(ctx, "link", "add", "name", br, "type", "bridge", "forward_delay", "0", "stp_state", "0"); err != nil {
			// Another agent in this namespace (a lab's nodes on one
			// machine) may have made it since: then it is there.
			again, lerr := n.Links(ctx)
			if lerr != nil {
				return err
			}
			if b, ok = find(again, br); !ok || b.Kind != "bridge" {
				return err
			}
		}
	}
	if uplink != "" {
		u, ok := find(links, uplink)
		if !ok {
			return fmt.Errorf("host adapter %q is not an interface here", uplink)
		}
		if u.Master != "" && u.Master != br {
			return fmt.Errorf("host adapter %q is a port of %s already", uplink, u.Master)
		}
		if !strings.EqualFold(b.MAC, u.MAC) && u.MAC != "" {
			if _, err := n.IP(ctx, "link", "set", "dev", br, "address", u.MAC); err != nil {
				return err
			}
		}
		if _, err := n.IP(ctx, "link", "set", "dev", br, "up"); err != nil {
			return err
		}
		if len(u.Addrs) > 0 {
			routes, err := n.routes(ctx, uplink)
			if err != nil {
				return err
			}
			for _, a := range u.Addrs {
				if !slices.Contains(b.Addrs, a) {
					if _, err := n.IP(ctx, "addr", "add", a, "dev", br); err != nil {
						return err
					}
				}
			}
			for _, r := range routes {
				if _, err := n.IP(ctx, append(append([]string{"route", "replace"}, r...), "dev", br)...); err != nil {
					return err
				}
			}
		}
		if u.Master != br {
			if _, err := n.IP(ctx, "link", "set", "dev", uplink, "master", br); err != nil {
				return err
			}
		}
		for _, a := range u.Addrs {
			if _, err := n.IP(ctx, "addr", "del", a, "dev", uplink); err != nil {
				return err
			}
		}
		if !u.Up {
			if _, err := n.IP(ctx, "link", "set", "dev", uplink, "up"); err != nil {
				return err
			}
		}
		return nil
	}
	_, err = n.IP(ctx, "link", "set", "dev", br, "up")
	return err
}

// routes lists dev's routes that are not the kernel's own (those of its
// addresses), as `ip route` arguments without the device.
func (n *Net) routes(ctx context.Context, dev string) ([][]string, error) {
	out, err := n.IP(ctx, "-j", "route", "show", "dev", dev)
	if err != nil {
		return nil, err
	}
	var rs []struct {
		Dst      string `json:"dst"`
		Gateway  string `json:"gateway"`
		Protocol string `json:"protocol"`
		Metric   int    `json:"metric"`
	}
	if err := json.Unmarshal(out, &rs); err != nil {
		return nil, fmt.Errorf("ip -j route: %w", err)
	}
	var res [][]string
	for _, r := range rs {
		if r.Protocol == "kernel" {
			continue
		}
		a := []string{r.Dst}
		if r.Gateway != "" {
			a = append(a, "via", r.Gateway)
		}
		if r.Metric > 0 {
			a = append(a, "metric", fmt.Sprint(r.Metric))
		}
		res = append(res, a)
	}
	return res, nil
}

// Uplink is bridge br's port that is not a tap ("" none).
func Uplink(links []Link, br string) string {
	for _, l := range links {
		if l.Master == br && l.Kind != "tun" {
			return l.Name
		}
	}
	return ""
}

// ReleaseUplink frees bridge br's uplink: its addresses and routes go
// back to it and it leaves the bridge.
func (n *Net) ReleaseUplink(ctx context.Context, br string) error {
	links, err := n.Links(ctx)
	if err != nil {
		return err
	}
	b, ok := find(links, br)
	uplink := Uplink(links, br)
	if !ok || uplink == "" {
		return nil
	}
	routes, err := n.routes(ctx, br)
	if err != nil {
		return err
	}
	for _, a := range b.Addrs {
		if _, err := n.IP(ctx, "addr", "replace", a, "dev", uplink); err != nil {
			return err
		}
	}
	if _, err := n.IP(ctx, "link", "set", "dev", uplink, "nomaster"); err != nil {
		return err
	}
	for _, a := range b.Addrs {
		if _, err := n.IP(ctx, "addr", "del", a, "dev", br); err != nil {
			return err
		}
	}
	for _, r := range routes {
		if _, err := n.IP(ctx, append(append([]string{"route", "replace"}, r...), "dev", uplink)...); err != nil {
			return err
		}
	}
	return nil
}

// RemoveBridge deletes bridge br, its uplink released first.
func (n *Net) RemoveBridge(ctx context.Context, br string) error {
	if err := n.ReleaseUplink(ctx, br); err != nil {
		return err
	}
	return n.RemoveLink(ctx, br)
}

// EnsureTap makes a persistent tap on bridge br, up.
func (n *Net) EnsureTap(ctx context.Context, tap, br string) error {
	links, err := n.Links(ctx)
	if err != nil {
		return err
	}
	t, ok := find(links, tap)
	if !ok {
		if _, err := n.IP(ctx, "tuntap", "add", "dev", tap, "mode", "tap"); err != nil {
			return err
		}
	}
	if t.Master != br {
		if _, err := n.IP(ctx, "link", "set", "dev", tap, "master", br); err != nil {
			return err
		}
	}
	_, err = n.IP(ctx, "link", "set", "dev", tap, "up")
	return err
}

// RemoveLink deletes a link (a tap), if there.
func (n *Net) RemoveLink(ctx context.Context, name string) error {
	links, err := n.Links(ctx)
	if err != nil {
		return err
	}
	if _, ok := find(links, name); !ok {
		return nil
	}
	_, err = n.IP(ctx, "link", "del", "dev", name)
	return err
}
