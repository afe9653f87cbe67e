package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/placement"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// Placement of a VM against the committed cluster database, and why a placement cannot work.

// placementView is a cluster's state as placement reads it, with the
// revisions to compare when committing a decision.
type placementView struct {
	cluster Cluster
	hosts   map[string]Host
	state   placement.State
	recs    map[string]nodeVMs
	revs    map[string]int64
	// guard compares quorum, liveness and the cluster record.
	guard  []store.Cmp
	quorum Quorum
}

func (e *Engine) placementView(ctx context.Context, c Cluster) (*placementView, error) {
	hosts, err := e.hostMap(ctx)
	if err != nil {
		return nil, err
	}
	q, nodes, guard, err := e.quorumAndNodes(ctx, c, hosts)
	if err != nil {
		return nil, err
	}
	v := &placementView{cluster: c, hosts: hosts, guard: guard, quorum: q, recs: map[string]nodeVMs{}, revs: map[string]int64{}}
	for _, h := range nodes {
		_, registered := hosts[h.Name]
		v.state.Nodes = append(v.state.Nodes, placement.Node{Name: h.Name, Up: !h.Down, InCluster: registered,
			Maintenance: h.Maintenance, MemoryMB: h.MemoryMB, ProcessorVendor: h.ProcessorVendor})
	}
	kvs, _, err := e.st.List(ctx, vmNodeClusterPrefix(c.Name))
	if err != nil {
		return nil, err
	}
	ds := make([]*decodedNodeVMs, len(kvs))
	n := 0
	for i, kv := range kvs {
		if ds[i], err = e.nodeVMsRecord(c.Name, kv); err != nil {
			return nil, err
		}
		n += len(ds[i].vms)
	}
	// Sized once: grown VM by VM it was a third of a plan's placement.
	v.state.VMs = make([]placement.VM, 0, n)
	for i, d := range ds {
		v.recs[d.node], v.revs[d.node] = d.r, kvs[i].ModRevision
		v.state.VMs = append(v.state.VMs, d.vms...)
	}
	return v, nil
}

// decodedNodeVMs is a node's capacity record decoded, with the VMs it
// holds as placement sees them, kept with its bytes: the record changes
// with every VM placed on or moved off the node, but a plan reads it for
// every VM. Its map is shared and must not be written (vmTxn.seed copies).
type decodedNodeVMs struct {
	node string
	r    nodeVMs
	vms  []placement.VM
}

func (e *Engine) nodeVMsRecord(cluster string, kv store.KV) (*decodedNodeVMs, error) {
	return memo(&e.nodeVMRecs, kv.Key, kv.Value, func() (*decodedNodeVMs, error) {
		d := &decodedNodeVMs{node: strings.TrimPrefix(kv.Key, vmNodeClusterPrefix(cluster))}
		if err := decode(kv, &d.r); err != nil {
			return nil, err
		}
		for _, name := range sortedKeys(d.r.VMs) {
			x := d.r.VMs[name]
			pname := name
			if x.Incoming {
				pname = name + "@incoming"
			}
			d.vms = append(d.vms, placement.VM{Name: pname, MemoryMB: x.MemoryMB, Node: d.node,
				AntiAffinityClass: x.Class, AntiAffinityMode: x.Mode})
		}
		return d, nil
	})
}

// hostCmp pins the host record of node (maintenance, memory) in a commit.
func (v *placementView) hostCmp(node string) store.Cmp {
	return store.At(hostKey(node), v.hosts[node].Revision)
}

func placementSpec(s VMSpec, current string) placement.Spec {
	return placement.Spec{Name: s.Name, MemoryMB: s.MemoryMB, OwnerNode: s.OwnerNode,
		PreferredOwners: s.PreferredOwners, PossibleOwners: s.PossibleOwners,
		AntiAffinityClass: s.AntiAffinityClass, AntiAffinityMode: s.AntiAffinityMode, CurrentNode: current}
}

// decision is where a VM goes.
type decision struct {
	Node string
	// Stay: the VM's pin cannot take it (down, maintenance) and the pin
	// did not change, so it stays where it is; StayReason says why.
	Stay       bool
	StayReason string
}

// decide places s (the VM vm, nil when new) against v. A pin that did not
// change and whose node is down or in maintenance keeps the VM where it
// is (it moves back once the node returns); any other misfit is an
// InputError naming the attribute to blame.
func decide(v *placementView, s VMSpec, vm *VM) (decision, error) {
	if err := checkOwnerNames(v.cluster, s, vm); err != nil {
		return decision{}, err
	}
	current := ""
	if vm != nil {
		current = vm.Node
	}
	d, err := placement.Place(v.state, placementSpec(s, current))
	if err == nil {
		return decision{Node: d.Node}, nil
	}
	var nf *placement.NoFitError
	if !errors.As(err, &nf) {
		var se *placement.SpecError
		if errors.As(err, &se) {
			return decision{}, invalid(se.Attribute, se.Value, se.Allowed)
		}
		return decision{}, err
	}
	if vm != nil && s.OwnerNode != "" && s.OwnerNode == vm.OwnerNode && nf.Attribute == "owner_node" && len(nf.Rejections) == 1 &&
		onlyUnavailable(nf.Rejections[0]) {
		ps := placementSpec(s, current)
		ps.OwnerNode = ""
		d2, err2 := placement.Place(v.state, ps)
		if err2 == nil {
			return decision{Node: d2.Node, Stay: true, StayReason: nf.Rejections[0].String()}, nil
		}
	}
	return decision{}, blame(nf, s, vm)
}

// checkOwnerNames refuses possible_owners or preferred_owners naming a
// host that is not a node of the cluster, when newly asked for (a node
// removed later does not fail VMs that still list it: placement ignores
// it). A typo would otherwise shrink possible_owners silently.
func checkOwnerNames(c Cluster, s VMSpec, vm *VM) error {
	lists := []struct {
		attr      string
		now       []string
		unchanged bool
	}{
		{attr: "possible_owners", now: s.PossibleOwners},
		{attr: "preferred_owners", now: s.PreferredOwners},
	}
	if vm != nil {
		lists[0].unchanged = sameNames(s.PossibleOwners, vm.PossibleOwners)
		lists[1].unchanged = sameNames(s.PreferredOwners, vm.PreferredOwners)
	}
	for _, l := range lists {
		if l.unchanged {
			continue
		}
		for _, n := range l.now {
			if !slices.Contains(c.Nodes, n) {
				allowed := "the cluster's nodes " + strings.Join(c.Nodes, ", ")
				return &InputError{Attribute: l.attr, Value: n, Allowed: allowed,
					Detail: fmt.Sprintf("%q is not a node of cluster %q; allowed: %s", n, c.Name, allowed)}
			}
		}
	}
	return nil
}

func sameNames(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func onlyUnavailable(r placement.Rejection) bool {
	for _, x := range r.Reasons {
		if x.Code != placement.ReasonDown && x.Code != placement.ReasonMaintenance {
			return false
		}
	}
	return len(r.Reasons) > 0
}

// blame turns a placement misfit into an InputError on the attribute the
// user can change: the pin when it is new or changed, else what changed.
func blame(nf *placement.NoFitError, s VMSpec, vm *VM) error {
	attr := nf.Attribute
	codes := map[placement.ReasonCode]bool{}
	for _, r := range nf.Rejections {
		for _, x := range r.Reasons {
			codes[x.Code] = true
		}
	}
	pinChanged := vm == nil || s.OwnerNode != vm.OwnerNode
	if attr == "owner_node" && !pinChanged {
		switch {
		case codes[placement.ReasonMemory] && s.MemoryMB != vm.MemoryMB:
			attr = "memory_mb"
		case codes[placement.ReasonAntiAffinity] && (s.AntiAffinityMode != vm.AntiAffinityMode || s.AntiAffinityClass != vm.AntiAffinityClass):
			attr = "anti_affinity_mode"
		case codes[placement.ReasonNotPossibleOwner]:
			attr = "possible_owners"
		}
	}
	if attr == "" {
		attr = "cluster_id"
		if s.OwnerNode != "" {
			attr = "owner_node"
		}
	}
	val := s.OwnerNode
	switch attr {
	case "memory_mb":
		val = fmt.Sprint(s.MemoryMB)
	case "anti_affinity_mode":
		val = s.AntiAffinityMode
	case "possible_owners":
		val = strings.Join(s.PossibleOwners, ",")
	case "cluster_id":
		val = s.Cluster
	}
	msg := nf.Error()
	msg = strings.TrimPrefix(msg, nf.Attribute+": ")
	return &InputError{Attribute: attr, Value: val, Detail: msg}
}

// migrationType is how a VM running or not moves between two nodes.
func migrationType(s VMSpec, running bool, from, to Host) (typ, why string) {
	switch {
	case !running:
		return MigrationOffline, "it is off"
	case s.Migration == MigrationQuick:
		return MigrationQuick, `migration = "quick"`
	case from.ProcessorVendor != to.ProcessorVendor:
		return MigrationQuick, fmt.Sprintf("processor vendors differ: %s has %s, %s has %s; live migration needs the same vendor",
			from.Name, from.ProcessorVendor, to.Name, to.ProcessorVendor)
	}
	return MigrationLive, ""
}

// MoveSummary is the one-line summary of a planned move, naming the VM.
func MoveSummary(name, typ, from, to string) string {
	switch typ {
	case MigrationLive:
		return fmt.Sprintf("%s will be live-migrated from %s to %s", name, from, to)
	case MigrationQuick:
		return fmt.Sprintf("%s will be quick-migrated from %s to %s", name, from, to)
	}
	return fmt.Sprintf("%s will be moved (it is off) from %s to %s", name, from, to)
}
