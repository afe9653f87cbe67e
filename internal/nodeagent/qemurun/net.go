package qemurun

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/dhcpserve"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor/qemu"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/record"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/hostnet"
)

// The QEMU executor's virtual switches (internal/engine/switches.go): on this node each
// switch a VM adapter names is a bridge (engine.BridgeName), made when the
// first VM on it starts here; an external switch's bridge enslaves the
// adapter it binds on this node, so the nodes' bridges meet on that
// network. Each VM adapter is a tap (engine.TapName) on the bridge, made before
// its QEMU starts and deleted when it stops. Everything is derived from
// the switch records and the kernel's links, so a crashed agent's
// successor finishes or undoes what it left (sweepNet).

// bridgePrefix starts the bridges' names (engine.BridgeName).
const bridgePrefix = "kbr"

// qemuNet is the executor's view of its node's links.
type qemuNet struct {
	ip *hostnet.Net
	// mu: one change of links at a time (a VM's taps, the sweep).
	mu sync.Mutex
	// taps: the taps of the VMs this process runs, by tap → VM (under
	// Runner.mu).
	taps map[string]string
	// guests: the adapters with addresses of the VMs launched here, by
	// VM, for probeGuests and the DHCP servers (under Runner.mu).
	guests map[string]guestNICs
	// dhcp: the DHCP servers running, by bridge (guestLoop's goroutine
	// only).
	dhcp map[string]context.CancelFunc
	// wake asks guestLoop to look now (a launch, a lease acknowledged).
	wake chan struct{}
	// reported: what probeGuests last wrote, by VM (its goroutine only).
	reported map[string]qemu.GuestNet
}

// guestNICs are a VM's adapters as launched here, with its token.
type guestNICs struct {
	token   int64
	bridges []string
	nics    []qemu.NIC
	// acked[i]: this node's DHCP server acknowledged adapter i's address.
	acked []bool
	// since: when this node launched it; incoming: by a migration (its
	// guest already holds its addresses).
	since    time.Time
	incoming bool
	// parked: a live migration's target not resumed yet. Its guest still
	// runs on the source, whose answers reach this node's bridge across
	// an external switch: seen from here it proves nothing, and a report
	// would replace the source's (GuestAddresses) with one of a stale
	// token until the next round.
	parked bool
}

func newQEMUNet() *qemuNet {
	if hostnet.Available() != nil {
		return nil // a VM with adapters then fails, saying why (nics)
	}
	return &qemuNet{ip: hostnet.New(), taps: map[string]string{}, guests: map[string]guestNICs{},
		dhcp: map[string]context.CancelFunc{}, wake: make(chan struct{}, 1), reported: map[string]qemu.GuestNet{}}
}

// uplinkOf resolves the host adapter an external switch binds on this
// node to an interface: a declared adapter's name (its address's
// interface) or an interface name.
func (q *Runner) uplinkOf(ctx context.Context, sw engine.Switch, links []hostnet.Link) (string, error) {
	name := sw.AdapterOn(q.node)
	if name == "" {
		return "", nil
	}
	addr := ""
	if h, err := q.e.GetHost(ctx, q.node); err == nil {
		for _, a := range h.Adapters {
			if a.Name == name {
				addr = a.Address
			}
		}
	}
	up, err := hostnet.ResolveAdapter(links, name, addr, bridgePrefix)
	if err != nil {
		return "", fmt.Errorf("external switch %q: adapter %q on %s: %w", sw.Name, name, q.node, err)
	}
	return up, nil
}

// nics makes the bridges and taps of v's adapters (request r) and
// returns them for QEMU. A switch the VM names must exist.
func (q *Runner) nics(ctx context.Context, cluster string, v *qemuVMRun, r qemu.Request) ([]qemu.NIC, error) {
	if len(r.VM.Adapters) == 0 {
		return nil, nil
	}
	if q.net == nil {
		return nil, fmt.Errorf("VM %q has network adapters, but %s cannot make switches: %w", v.name, q.node, hostnet.Available())
	}
	q.net.mu.Lock()
	defer q.net.mu.Unlock()
	links, err := q.net.ip.Links(ctx)
	if err != nil {
		return nil, err
	}
	var out []qemu.NIC
	var bridges []string
	defer func() {
		q.mu.Lock()
		q.net.guests[v.name] = guestNICs{token: int64(r.Token), bridges: bridges, nics: out, acked: make([]bool, len(out)),
			since: time.Now(), incoming: r.Op == qemu.OpIncoming || r.Op == qemu.OpRestore, parked: r.Op == qemu.OpIncoming}
		q.mu.Unlock()
		q.net.poke()
	}()
	if r.Op == qemu.OpStart {
		// A fresh boot holds no address yet: this node's report of an
		// earlier run (same token) must not show through.
		_, _ = q.st.Commit(ctx, nil, []store.Op{store.Del(qemu.GuestNetKey(cluster, q.node, v.name))})
	}
	for i, a := range r.VM.Adapters {
		name := engine.SwitchNameOf(cluster, a.Switch)
		sw, err := q.e.GetSwitch(ctx, cluster, name)
		if err != nil {
			return nil, fmt.Errorf("VM %q network_adapters[%d]: %w", v.name, i, err)
		}
		br := engine.BridgeName(cluster, name)
		up, err := q.uplinkOf(ctx, sw, links)
		if err != nil {
			return nil, err
		}
		if err := q.net.ip.EnsureBridge(ctx, br, up); err != nil {
			return nil, fmt.Errorf("switch %q on %s: %w", name, q.node, err)
		}
		tap := engine.TapName(cluster, q.node, v.name, i)
		q.mu.Lock()
		q.net.taps[tap] = v.name
		q.mu.Unlock()
		if err := q.net.ip.EnsureTap(ctx, tap, br); err != nil {
			return nil, fmt.Errorf("VM %q adapter %d on switch %q: %w", v.name, i, name, err)
		}
		out = append(out, qemu.NIC{Tap: tap, MAC: a.MAC, Address: a.Address})
		bridges = append(bridges, br)
	}
	return out, nil
}

// dropNICs deletes v's taps on this node.
func (q *Runner) dropNICs(ctx context.Context, v *qemuVMRun) {
	if q.net == nil {
		return
	}
	q.net.mu.Lock()
	defer q.net.mu.Unlock()
	q.mu.Lock()
	var mine []string
	for tap, vm := range q.net.taps {
		if vm == v.name {
			mine = append(mine, tap)
			delete(q.net.taps, tap)
		}
	}
	delete(q.net.guests, v.name)
	q.mu.Unlock()
	for _, tap := range mine {
		if err := q.net.ip.RemoveLink(ctx, tap); err != nil {
			q.cfg.Logf("qemu: removing tap %s of %s: %v", tap, v.name, err)
		}
	}
}

// sweepNet undoes what no switch or VM of this process needs: taps of
// VMs it does not run (a previous agent's, or a failed launch's),
// bridges of deleted switches (their adapters released), and rebinds
// an external switch whose adapter changed.
func (q *Runner) sweepNet(ctx context.Context, cluster string) {
	if q.net == nil || cluster == "" {
		return
	}
	q.net.mu.Lock()
	defer q.net.mu.Unlock()
	links, err := q.net.ip.Links(ctx)
	if err != nil {
		return
	}
	sws, err := q.e.ListSwitches(ctx, cluster)
	if err != nil {
		return
	}
	want := map[string]engine.Switch{}
	for _, sw := range sws {
		want[engine.BridgeName(cluster, sw.Name)] = sw
	}
	q.mu.Lock()
	inUse := map[string]bool{}
	for tap := range q.net.taps {
		inUse[tap] = true
	}
	q.mu.Unlock()
	mine := engine.TapPrefix(cluster, q.node)
	for _, l := range links {
		if strings.HasPrefix(l.Name, mine) && l.Kind == "tun" && !inUse[l.Name] {
			if err := q.net.ip.RemoveLink(ctx, l.Name); err == nil {
				q.cfg.Logf("qemu: removed tap %s (no VM of this agent uses it)", l.Name)
			}
		}
	}
	for _, l := range links {
		if !strings.HasPrefix(l.Name, bridgePrefix) || l.Kind != "bridge" {
			continue
		}
		sw, ok := want[l.Name]
		if !ok {
			busy := false
			for _, p := range links {
				busy = busy || (p.Master == l.Name && inUse[p.Name])
			}
			if !busy {
				if err := q.net.ip.RemoveBridge(ctx, l.Name); err != nil {
					q.cfg.Logf("qemu: removing bridge %s of a deleted switch: %v", l.Name, err)
				} else {
					q.cfg.Logf("qemu: removed bridge %s (its switch is gone)", l.Name)
				}
			}
			continue
		}
		up, err := q.uplinkOf(ctx, sw, links)
		if err != nil {
			q.cfg.Logf("qemu: %v", err)
			continue
		}
		if cur := hostnet.Uplink(links, l.Name); cur != up {
			if cur != "" {
				if err := q.net.ip.ReleaseUplink(ctx, l.Name); err != nil {
					q.cfg.Logf("qemu: switch %q: releasing %s: %v", sw.Name, cur, err)
					continue
				}
			}
			if err := q.net.ip.EnsureBridge(ctx, l.Name, up); err != nil {
				q.cfg.Logf("qemu: switch %q: binding %s: %v", sw.Name, up, err)
			} else {
				q.cfg.Logf("qemu: switch %q now on %q (was %q)", sw.Name, up, cur)
			}
		}
	}
}

// guestToken follows the VM's ownership token through the requests that
// run it here (a live migration's target resumes with a newer token than
// its incoming launch), so its guest report counts for the owner.
func (q *Runner) guestToken(r qemu.Request) {
	switch r.Op {
	case qemu.OpStart, qemu.OpIncoming, qemu.OpResume, qemu.OpRestore:
	default:
		return
	}
	if q.net == nil {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if g, ok := q.net.guests[r.VM.Name]; ok {
		g.token = int64(r.Token)
		g.parked = g.parked && r.Op == qemu.OpIncoming
		q.net.guests[r.VM.Name] = g
	}
}

// poke wakes guestLoop.
func (n *qemuNet) poke() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// guestLoop keeps a DHCP server on each bridge a guest here has an
// address on, and runs probeGuests every second (or when poked), until
// ctx ends.
func (q *Runner) guestLoop(ctx context.Context) {
	if q.net == nil {
		return
	}
	defer func() {
		for _, stop := range q.net.dhcp {
			stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-q.net.wake:
		case <-time.After(time.Second):
		}
		q.mu.Lock()
		cluster := q.cluster
		q.mu.Unlock()
		q.serveDHCP(ctx)
		q.probeGuests(ctx, cluster)
	}
}

// serveDHCP starts a DHCP server (internal/dhcpserve) on each bridge
// where a guest launched here has an address, and stops those no guest
// needs any more. A server answers only these guests' MACs, each with
// the address the engine reserved for the adapter (so the guest gets
// the same address on any node), and a switch without a subnet has no
// server.
func (q *Runner) serveDHCP(ctx context.Context) {
	want := map[string]bool{}
	q.mu.Lock()
	for _, g := range q.net.guests {
		for i, n := range g.nics {
			if n.Address != "" {
				want[g.bridges[i]] = true
			}
		}
	}
	q.mu.Unlock()
	for br, stop := range q.net.dhcp {
		if !want[br] {
			stop()
			delete(q.net.dhcp, br)
		}
	}
	for br := range want {
		if _, ok := q.net.dhcp[br]; ok {
			continue
		}
		sctx, stop := context.WithCancel(ctx)
		q.net.dhcp[br] = stop
		s := &dhcpserve.Server{
			Lookup: func(mac net.HardwareAddr) (netip.Prefix, bool) { return q.leaseOf(br, mac, false) },
			OnAck:  func(mac net.HardwareAddr, _ netip.Prefix) { q.leaseOf(br, mac, true) },
			Logf:   q.cfg.Logf,
		}
		go func() {
			for sctx.Err() == nil {
				err := dhcpserve.Serve(sctx, br, s, func() netip.Addr { return q.serverID(br) })
				if err == nil || sctx.Err() != nil {
					return
				}
				q.cfg.Logf("qemu: DHCP on %s: %v (again in 1s)", br, err)
				select {
				case <-sctx.Done():
				case <-time.After(time.Second):
				}
			}
		}()
	}
}

// leaseOf is the address of the adapter with MAC mac on bridge br of a
// guest launched here; ack records that the guest was given it.
func (q *Runner) leaseOf(br string, mac net.HardwareAddr, ack bool) (netip.Prefix, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for vm, g := range q.net.guests {
		for i, n := range g.nics {
			m, err := net.ParseMAC(qemu.QEMUMAC(n.MAC))
			if err != nil || g.bridges[i] != br || m.String() != mac.String() {
				continue
			}
			p, err := netip.ParsePrefix(n.Address)
			if err != nil {
				return netip.Prefix{}, false
			}
			if ack && !g.acked[i] {
				g.acked[i] = true
				q.net.guests[vm] = g
				q.net.poke()
			}
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// serverID is the DHCP server identifier on bridge br: the bridge's own
// address on the guest's subnet (an external switch's host address),
// else the subnet's first address, which guests never get (AssignAddress).
func (q *Runner) serverID(br string) netip.Addr {
	var subnet netip.Prefix
	q.mu.Lock()
	for _, g := range q.net.guests {
		for i, n := range g.nics {
			if p, err := netip.ParsePrefix(n.Address); err == nil && g.bridges[i] == br {
				subnet = p.Masked()
			}
		}
	}
	q.mu.Unlock()
	if ifi, err := net.InterfaceByName(br); err == nil {
		addrs, _ := ifi.Addrs()
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && subnet.IsValid() && subnet.Contains(p.Addr()) {
				return p.Addr()
			}
		}
	}
	if subnet.IsValid() {
		return subnet.Addr().Next()
	}
	return netip.IPv4Unspecified()
}

// incomingGrace is how long the target of a migration lets the previous
// owner's report stand (GuestAddresses) before it reports a guest it has
// not yet seen holding an address.
const incomingGrace = 10 * time.Second

// probeGuests records, for each guest launched here, the addresses it
// took from this node's DHCP server or answers ARP probes for from its
// switch's bridge (hostnet.ProbeARP), when that changed (qemu.GuestNet): a
// guest's address is reported once the guest has it, by the node it runs
// on. A report supersedes the other nodes' reports of the VM.
func (q *Runner) probeGuests(ctx context.Context, cluster string) {
	if q.net == nil || cluster == "" {
		return
	}
	q.mu.Lock()
	guests := make(map[string]guestNICs, len(q.net.guests))
	for vm, g := range q.net.guests {
		g.acked = append([]bool(nil), g.acked...)
		guests[vm] = g
	}
	q.mu.Unlock()
	for vm := range q.net.reported {
		if _, ok := guests[vm]; !ok {
			delete(q.net.reported, vm) // gone from here: a new launch reports afresh
		}
	}
	for vm, g := range guests {
		if g.parked {
			continue
		}
		rec := qemu.GuestNet{Node: q.node, VM: vm, Token: g.token, Addresses: make([]string, len(g.nics)), Sources: make([]string, len(g.nics)),
			Launched: g.since.UTC()}
		any, seen := false, false
		for i, n := range g.nics {
			p, err := netip.ParsePrefix(n.Address)
			mac, merr := net.ParseMAC(qemu.QEMUMAC(n.MAC))
			if err != nil || merr != nil {
				continue
			}
			any = true
			if ok, _ := hostnet.ProbeARP(ctx, g.bridges[i], p.Addr(), mac, 200*time.Millisecond); ok {
				rec.Addresses[i], rec.Sources[i], seen = n.Address, "arp", true
			} else if g.acked[i] {
				rec.Addresses[i], rec.Sources[i], seen = n.Address, "dhcp", true
			}
		}
		if !any || !seen && g.incoming && time.Since(g.since) < incomingGrace {
			continue
		}
		if old, ok := q.net.reported[vm]; ok && old.Token == rec.Token && old.Launched.Equal(rec.Launched) &&
			fmt.Sprint(old.Addresses) == fmt.Sprint(rec.Addresses) {
			continue
		}
		rec.CheckedAt = q.e.Now().UTC()
		ops := []store.Op{record.Put(qemu.GuestNetKey(cluster, q.node, vm), rec)}
		if c, err := q.e.GetCluster(ctx, cluster); err == nil {
			for _, n := range c.Nodes {
				if n != q.node {
					ops = append(ops, store.Del(qemu.GuestNetKey(cluster, n, vm)))
				}
			}
		}
		if _, err := q.st.Commit(ctx, nil, ops); err == nil {
			q.net.reported[vm] = rec
		}
	}
}
