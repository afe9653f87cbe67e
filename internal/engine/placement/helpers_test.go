package placement

// What only the tests ask of a Planner or a Decision.

// Moves reports whether the decision moves the VM from a node it runs on.
func (d Decision) Moves() bool { return d.Current != "" && d.Current != d.Node }

// Remove forgets a VM (deleted), freeing its memory.
func (p *Planner) Remove(name string) { p.remove(name) }

// FreeMB is the memory of node available to VMs (after its host reserve);
// ok is false for an unknown node.
func (p *Planner) FreeMB(node string) (free int64, ok bool) {
	i, ok := p.idx[node]
	if !ok {
		return 0, false
	}
	return p.nodes[i].MemoryMB - p.nodes[i].Reserve() - p.used[i], true
}

// NodeOf returns the node a VM is assigned to ("" if none or unknown).
func (p *Planner) NodeOf(vm string) string {
	r, ok := p.vms[vm]
	if !ok || r.node < 0 {
		return ""
	}
	return p.nodes[r.node].Name
}

// Evacuate is Planner.Evacuate on a new Planner of s; err is also set, and
// nothing placed, when s is invalid.
func Evacuate(s State, node string, vms []Spec) (moves []Move, failed []error, err error) {
	p, err := NewPlanner(s)
	if err != nil {
		return nil, nil, err
	}
	return p.Evacuate(node, vms)
}
