package engine

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/hostfacts"
)

// Virtual switches (kayo_virtual_switch): Hyper-V's virtual networks, one
// per cluster and name, present on every node. An external switch is
// bound on each node to a host network adapter; internal and private
// ones stay inside each node. VM adapters name a switch in `switch`. A
// node agent makes each switch a Linux bridge (internal/nodeagent/qemurun/net.go).

// Switch types.
const (
	SwitchExternal = "external"
	SwitchInternal = "internal"
	SwitchPrivate  = "private"
)

// Switch events.
const (
	EventSwitchCreated = "switch.created"
	EventSwitchUpdated = "switch.updated"
	EventSwitchDeleted = "switch.deleted"
)

// MaxSwitchNameLen is Hyper-V Manager's limit on a virtual network name.
const MaxSwitchNameLen = 100

// SwitchSpec is what a kayo_virtual_switch declares.
type SwitchSpec struct {
	Cluster string `json:"cluster"`
	Name    string `json:"name"`
	Type    string `json:"type"`
	// Adapter is the host network adapter an external switch binds on
	// every node (a declared adapter's name or a reported interface).
	Adapter string `json:"adapter,omitempty"`
	// NodeAdapters binds it to another adapter on the nodes named.
	NodeAdapters map[string]string `json:"node_adapters,omitempty"`
	// Subnet (IPv4 CIDR; "" none): each VM adapter on the switch gets a
	// static address of it when the adapter is made, kept for the
	// adapter's life (moves included), handed to the guest by its node's
	// agent.
	Subnet string `json:"subnet,omitempty"`
}

// Switch is a virtual switch as the cluster database holds it.
type Switch struct {
	SwitchSpec
	CreatedAt time.Time `json:"created_at"`
	// Users counts the VM commits that named the switch: each bumps the
	// record, so a deletion that read the switch before cannot commit.
	Users    int64 `json:"users"`
	Revision int64 `json:"-"`
}

// ID is the switch's import ID, cluster/name.
func (s SwitchSpec) ID() string { return s.Cluster + "/" + s.Name }

// AdapterOn is the host adapter an external switch binds on node ("" for
// other types).
func (s SwitchSpec) AdapterOn(node string) string {
	if s.Type != SwitchExternal {
		return ""
	}
	if a, ok := s.NodeAdapters[node]; ok {
		return a
	}
	return s.Adapter
}

// BridgeName is the Linux bridge of switch cluster/name on every node:
// interface names hold 15 bytes, so a hash of the two.
func BridgeName(cluster, name string) string {
	return "kbr" + shortHash(cluster+"/"+name)
}

// TapName is the tap of a VM's i-th adapter on node: during a live
// migration source and target both have one, maybe in one namespace
// (a lab's agents on one machine), so the node's TapPrefix comes first.
func TapName(cluster, node, vm string, i int) string {
	return TapPrefix(cluster, node) + shortHash(fmt.Sprintf("%s/%d", vm, i))
}

// TapPrefix starts the names of node's taps.
func TapPrefix(cluster, node string) string { return "kt" + shortHash(cluster + "/" + node)[:4] }

func shortHash(s string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(s))
	return fmt.Sprintf("%08x", h.Sum32())
}

// CheckSwitchSpec validates s on its own.
func CheckSwitchSpec(s SwitchSpec) error {
	if s.Cluster == "" {
		return invalid("cluster_id", s.Cluster, "the name of a cluster")
	}
	if strings.TrimSpace(s.Name) == "" || len(s.Name) > MaxSwitchNameLen || strings.ContainsAny(s.Name, "/\\") {
		return invalid("name", s.Name, fmt.Sprintf("1 to %d characters, no / or \\", MaxSwitchNameLen))
	}
	switch s.Type {
	case SwitchExternal:
		if strings.TrimSpace(s.Adapter) == "" && len(s.NodeAdapters) == 0 {
			return &InputError{Attribute: "adapter", Value: s.Adapter,
				Detail: "an external switch binds to a host network adapter: name one (adapter, or node_adapters per node)"}
		}
		for n, a := range s.NodeAdapters {
			if strings.TrimSpace(a) == "" {
				return &InputError{Attribute: "node_adapters", Value: a, Detail: fmt.Sprintf("node %q: an empty adapter name; name a network adapter of that host", n)}
			}
		}
	case SwitchInternal, SwitchPrivate:
		if s.Adapter != "" {
			return &InputError{Attribute: "adapter", Value: s.Adapter,
				Detail: fmt.Sprintf("%q: only an external switch binds to a host adapter; a %s switch takes none", s.Adapter, s.Type)}
		}
		if len(s.NodeAdapters) > 0 {
			return &InputError{Attribute: "node_adapters", Value: fmt.Sprint(s.NodeAdapters),
				Detail: fmt.Sprintf("only an external switch binds to host adapters; a %s switch takes none", s.Type)}
		}
	default:
		return invalid("type", s.Type, `"external", "internal" or "private"`)
	}
	if s.Subnet != "" {
		p, err := netip.ParsePrefix(s.Subnet)
		if err != nil || !p.Addr().Is4() || p.Masked() != p || p.Bits() < 8 || p.Bits() > 29 {
			return invalid("subnet", s.Subnet, "an IPv4 network in CIDR form, /8 to /29, e.g. 10.77.0.0/24")
		}
	}
	return nil
}

// AssignAddress is the lowest address of subnet for a guest: not the
// network, the broadcast or the first host address (a router's, by
// custom), nor one reserved (hosts' and VMs' addresses). It returns it
// in CIDR form.
func AssignAddress(subnet string, reserved map[netip.Addr]bool) (string, error) {
	p, err := netip.ParsePrefix(subnet)
	if err != nil {
		return "", invalid("subnet", subnet, "an IPv4 network in CIDR form")
	}
	a := p.Addr().Next().Next()
	for ; p.Contains(a) && p.Contains(a.Next()); a = a.Next() {
		if !reserved[a] {
			return netip.PrefixFrom(a, p.Bits()).String(), nil
		}
	}
	return "", fmt.Errorf("subnet %s has no free address left for a VM adapter: %w", subnet, ErrInUse)
}

// HostAdapters lists the adapter names a host has: its declared
// network_adapters and the interfaces its agent reported.
func HostAdapters(h Host, r *hostfacts.Report) []string {
	var out []string
	for _, a := range h.Adapters {
		out = append(out, a.Name)
	}
	if r != nil {
		for _, a := range r.Adapters {
			out = append(out, a.Name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// CheckSwitchBinding judges an external switch against the cluster's
// nodes (in order) and the adapters each has (HostAdapters), and the
// cluster's other switches: every node must have the adapter it binds,
// node_adapters names only nodes, and one adapter of a node serves at
// most one external switch (as in Hyper-V).
func CheckSwitchBinding(s SwitchSpec, nodes []string, adapters map[string][]string, others []SwitchSpec) error {
	if s.Type != SwitchExternal {
		return nil
	}
	keys := make([]string, 0, len(s.NodeAdapters))
	for n := range s.NodeAdapters {
		keys = append(keys, n)
	}
	sort.Strings(keys)
	for _, n := range keys {
		if !slices.Contains(nodes, n) {
			return &InputError{Attribute: "node_adapters", Value: n,
				Detail: fmt.Sprintf("%q is not a node of cluster %q; nodes: %s", n, s.Cluster, quoteList(nodes))}
		}
	}
	for _, n := range nodes {
		a, attr := s.AdapterOn(n), "adapter"
		if _, ok := s.NodeAdapters[n]; ok {
			attr = "node_adapters"
		}
		if a == "" {
			return &InputError{Attribute: "adapter", Value: "",
				Detail: fmt.Sprintf("node %q has no adapter for external switch %q: set adapter, or node_adapters[%q]", n, s.Name, n)}
		}
		have := adapters[n]
		if !slices.Contains(have, a) {
			return &InputError{Attribute: attr, Value: a,
				Detail: fmt.Sprintf("node %q has no network adapter %q; its adapters (declared and reported): %s", n, a, quoteList(have))}
		}
		for _, o := range others {
			if o.Name != s.Name && o.Type == SwitchExternal && o.AdapterOn(n) == a {
				return &InputError{Attribute: attr, Value: a,
					Detail: fmt.Sprintf("adapter %q of node %q is bound to external switch %q already; an adapter serves one external switch", a, n, o.Name)}
			}
		}
	}
	return nil
}

// CheckVMSwitches judges a VM's adapters against the switches of its
// cluster (by name): each must name one. A switch is named by its name
// or its ID (cluster/name: a reference to a kayo_virtual_switch created
// in the same apply, unknown at plan). Only adapters not in old (the
// VM's committed adapters) are judged: an adapter a VM had before
// switches existed stays.
func CheckVMSwitches(cluster string, adapters, old []VMAdapter, switches []string) error {
	for i, a := range adapters {
		if i < len(old) && old[i].Switch == a.Switch {
			continue
		}
		name := SwitchNameOf(cluster, a.Switch)
		if slices.Contains(switches, name) {
			continue
		}
		have := "none: declare a kayo_virtual_switch"
		if len(switches) > 0 {
			have = quoteList(switches)
		}
		return &InputError{Attribute: fmt.Sprintf("network_adapters[%d].switch", i), Value: a.Switch,
			Detail: fmt.Sprintf("cluster %q has no virtual switch %q; its switches: %s (a switch created in the same apply: name it by its id, kayo_virtual_switch.NAME.id)",
				cluster, a.Switch, have)}
	}
	return nil
}

// SwitchNameOf is the switch name an adapter's `switch` value names: the
// value itself, or the name part of an ID of cluster.
func SwitchNameOf(cluster, v string) string {
	if n, ok := strings.CutPrefix(v, cluster+"/"); ok {
		return n
	}
	return v
}

func quoteList(v []string) string {
	if len(v) == 0 {
		return "none"
	}
	q := make([]string, len(v))
	for i, s := range v {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

func switchRecord(kv store.KV) (Switch, error) {
	var s Switch
	if err := decode(kv, &s); err != nil {
		return s, err
	}
	s.Revision = kv.ModRevision
	return s, nil
}

// GetSwitch returns switch cluster/name.
func (e *Engine) GetSwitch(ctx context.Context, cluster, name string) (Switch, error) {
	kv, err := e.st.Get(ctx, switchKey(cluster, name))
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return Switch{}, fmt.Errorf("virtual switch %q of cluster %q: %w", name, cluster, ErrNotFound)
		}
		return Switch{}, err
	}
	return switchRecord(kv)
}

// ListSwitches returns the switches of cluster, by name.
func (e *Engine) ListSwitches(ctx context.Context, cluster string) ([]Switch, error) {
	kvs, _, err := e.st.List(ctx, switchClusterPrefix(cluster))
	if err != nil {
		return nil, err
	}
	out := make([]Switch, 0, len(kvs))
	for _, kv := range kvs {
		s, err := switchRecord(kv)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// checkSwitch judges s against the committed cluster: its nodes' adapters
// (declared, and reported by fresh agent reports) and its other switches.
func (e *Engine) checkSwitch(ctx context.Context, s SwitchSpec) (Cluster, error) {
	if err := CheckSwitchSpec(s); err != nil {
		return Cluster{}, err
	}
	c, err := e.clusterHead(ctx, s.Cluster)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return Cluster{}, &InputError{Attribute: "cluster_id", Value: s.Cluster, Detail: err.Error()}
		}
		return Cluster{}, err
	}
	if s.Type != SwitchExternal {
		return c, nil
	}
	hosts, err := e.hostMap(ctx)
	if err != nil {
		return c, err
	}
	reports, _, err := e.readReports(ctx)
	if err != nil {
		return c, err
	}
	adapters := map[string][]string{}
	for _, n := range c.Nodes {
		var r *hostfacts.Report
		if rep, ok := reports[n]; ok {
			r = &rep
		}
		adapters[n] = HostAdapters(hosts[n], r)
	}
	sws, err := e.ListSwitches(ctx, s.Cluster)
	if err != nil {
		return c, err
	}
	others := make([]SwitchSpec, 0, len(sws))
	for _, o := range sws {
		others = append(others, o.SwitchSpec)
	}
	return c, CheckSwitchBinding(s, c.Nodes, adapters, others)
}

// PlanSwitch judges s against the committed database, changing nothing.
// judged is false when the cluster is not committed yet (apply judges).
func (e *Engine) PlanSwitch(ctx context.Context, s SwitchSpec) (judged bool, err error) {
	if err := CheckSwitchSpec(s); err != nil {
		return true, err
	}
	if _, err := e.clusterHead(ctx, s.Cluster); errors.Is(err, ErrNotFound) {
		return false, nil
	}
	_, err = e.checkSwitch(ctx, s)
	return true, err
}

// CreateSwitch records a new switch; the nodes' agents make it.
func (e *Engine) CreateSwitch(ctx context.Context, s SwitchSpec) (Switch, error) {
	return e.putSwitch(ctx, s, true)
}

// UpdateSwitch changes a switch's adapter binding in place (its type is
// fixed: a new type is a new switch).
func (e *Engine) UpdateSwitch(ctx context.Context, s SwitchSpec) (Switch, error) {
	return e.putSwitch(ctx, s, false)
}

func (e *Engine) putSwitch(ctx context.Context, s SwitchSpec, create bool) (Switch, error) {
	var out Switch
	err := e.retry(ctx, func() error {
		c, err := e.checkSwitch(ctx, s)
		if err != nil {
			return err
		}
		key := switchKey(s.Cluster, s.Name)
		cur, err := e.GetSwitch(ctx, s.Cluster, s.Name)
		cmp := store.At(key, cur.Revision)
		kind := EventSwitchUpdated
		switch {
		case errors.Is(err, ErrNotFound) && create:
			cur, cmp, kind = Switch{CreatedAt: e.now().UTC()}, store.Absent(key), EventSwitchCreated
		case err != nil:
			return err
		case create:
			return fmt.Errorf("virtual switch %q already exists in cluster %q (import it: terraform import kayo_virtual_switch.NAME %s): %w",
				s.Name, s.Cluster, s.ID(), ErrExists)
		case cur.Type != s.Type:
			return &InputError{Attribute: "type", Value: s.Type,
				Detail: fmt.Sprintf("switch %q is %s; a switch's type does not change (replace it)", s.Name, cur.Type)}
		}
		next := Switch{SwitchSpec: s, CreatedAt: cur.CreatedAt, Users: cur.Users}
		detail := map[string]string{"type": s.Type}
		if s.Adapter != "" {
			detail["adapter"] = s.Adapter
		}
		rev, err := e.st.Commit(ctx, []store.Cmp{cmp, store.At(clusterKey(c.Name), c.Revision)}, []store.Op{
			putJSON(key, next),
			e.eventOp(Event{Kind: kind, Cluster: s.Cluster, Subject: s.Name, Detail: detail}),
		})
		if err != nil {
			return err
		}
		next.Revision = rev
		out = next
		return nil
	})
	return out, err
}

// DeleteSwitch removes a switch no VM names; with VMs on it, it is
// refused naming them (ErrInUse).
func (e *Engine) DeleteSwitch(ctx context.Context, cluster, name string) error {
	return e.retry(ctx, func() error {
		sw, err := e.GetSwitch(ctx, cluster, name)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		vms, err := e.ListVMs(ctx, cluster)
		if err != nil {
			return err
		}
		var users []string
		for _, vm := range vms {
			for _, a := range vm.Adapters {
				if SwitchNameOf(cluster, a.Switch) == name {
					users = append(users, vm.Name)
					break
				}
			}
		}
		if len(users) > 0 {
			return fmt.Errorf("virtual switch %q of cluster %q: VMs %s have adapters on it; move or remove them first: %w",
				name, cluster, quoteList(users), ErrInUse)
		}
		// A VM commit naming the switch bumps its record (switchRefs): this
		// comparison fails if one landed since the VMs were read.
		_, err = e.st.Commit(ctx, []store.Cmp{store.At(switchKey(cluster, name), sw.Revision)}, []store.Op{
			store.Del(switchKey(cluster, name)),
			e.eventOp(Event{Kind: EventSwitchDeleted, Cluster: cluster, Subject: name, Detail: map[string]string{"type": sw.Type}}),
		})
		return err
	})
}

// switchesStrict says whether cluster c's VM adapters must name a
// kayo_virtual_switch: on a qemu cluster (its agents attach the adapters
// to the switch's bridges) and on any cluster that has a switch. A
// simulator cluster with none keeps free-text switch names (its lab
// configurations predate kayo_virtual_switch).
func switchesStrict(c Cluster, switches []Switch) bool {
	return c.Hypervisor == HypervisorQEMU || len(switches) > 0
}

// checkVMAdapters judges spec s's adapters (those not in old) against
// cluster c's committed switches. It returns the switches those
// adapters name (a commit bumps them) and the cluster's switches by name.
func (e *Engine) checkVMAdapters(ctx context.Context, c Cluster, s VMSpec, old []VMAdapter) ([]Switch, map[string]Switch, error) {
	sws, err := e.ListSwitches(ctx, c.Name)
	if err != nil {
		return nil, nil, err
	}
	if !switchesStrict(c, sws) {
		return nil, nil, nil
	}
	byName := map[string]Switch{}
	names := make([]string, len(sws))
	for i, sw := range sws {
		names[i] = sw.Name
		byName[sw.Name] = sw
	}
	if err := CheckVMSwitches(c.Name, s.Adapters, old, names); err != nil {
		return nil, nil, err
	}
	var used []Switch
	for i, a := range s.Adapters {
		if i < len(old) && old[i].Switch == a.Switch {
			continue // referenced already: a deletion sees the VM
		}
		n := SwitchNameOf(c.Name, a.Switch)
		if !slices.ContainsFunc(used, func(u Switch) bool { return u.Name == n }) {
			used = append(used, byName[n])
		}
	}
	return used, byName, nil
}

// switchRefs checks the adapters of the VM the transaction commits,
// assigns addresses to new adapters on switches with a subnet (kept for
// adapters that stay) and bumps each switch the new adapters name,
// compared with its revision: the VM and a deletion of its switch, or
// two VMs taking one address, cannot both commit.
func (t *vmTxn) switchRefs(c Cluster, s VMSpec, old []VMAdapter, oldAddrs []string) ([]string, error) {
	used, byName, err := t.e.checkVMAdapters(t.ctx, c, s, old)
	if err != nil || byName == nil {
		return nil, err
	}
	for _, sw := range used {
		key := switchKey(c.Name, sw.Name)
		t.cmps = append(t.cmps, store.At(key, sw.Revision))
		sw.Users++
		t.ops = append(t.ops, putJSON(key, sw))
	}
	addrs := make([]string, len(s.Adapters))
	var reserved map[netip.Addr]bool
	for i, a := range s.Adapters {
		if i < len(old) && old[i].Switch == a.Switch {
			if i < len(oldAddrs) {
				addrs[i] = oldAddrs[i]
			}
			continue
		}
		sw := byName[SwitchNameOf(c.Name, a.Switch)]
		if sw.Subnet == "" {
			continue
		}
		if reserved == nil {
			if reserved, err = t.e.reservedAddresses(t.ctx, c, s.Name); err != nil {
				return nil, err
			}
			for _, o := range oldAddrs { // the VM's own, kept or not
				if p, err := netip.ParsePrefix(o); err == nil {
					reserved[p.Addr()] = true
				}
			}
		}
		if addrs[i], err = AssignAddress(sw.Subnet, reserved); err != nil {
			return nil, err
		}
		p, _ := netip.ParsePrefix(addrs[i])
		reserved[p.Addr()] = true
	}
	if !slices.ContainsFunc(addrs, func(a string) bool { return a != "" }) {
		return nil, nil
	}
	return addrs, nil
}

// reservedAddresses are the addresses a new guest address must not take:
// the cluster's static address, its hosts' declared adapter addresses
// and the other VMs' guest addresses.
func (e *Engine) reservedAddresses(ctx context.Context, c Cluster, vm string) (map[netip.Addr]bool, error) {
	out := map[netip.Addr]bool{}
	add := func(s string) {
		if p, err := netip.ParsePrefix(s); err == nil {
			out[p.Addr()] = true
		} else if a, err := netip.ParseAddr(s); err == nil {
			out[a] = true
		}
	}
	add(c.StaticAddress)
	hosts, err := e.hostMap(ctx)
	if err != nil {
		return nil, err
	}
	for _, h := range hosts {
		add(h.Address)
		for _, a := range h.Adapters {
			add(a.Address)
		}
	}
	vms, err := e.ListVMs(ctx, c.Name)
	if err != nil {
		return nil, err
	}
	for _, v := range vms {
		if v.Name == vm {
			continue
		}
		for _, a := range v.AdapterAddresses {
			add(a)
		}
	}
	return out, nil
}
