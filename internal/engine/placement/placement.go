// Package placement is the VM scheduler of a kayo cluster: a pure,
// deterministic function from cluster state and a VM specification to the
// node that should run the VM, or a precise reason why no node can.
//
// It has its own input types (Node, VM, State, Spec) so that it depends on
// nothing else in the engine. It does no I/O, reads no clock and never
// iterates a map where order matters: the same input always gives the same
// output, whatever the order of State.Nodes and State.VMs.
//
// Hard constraints (a node that fails one is rejected, with a Reason):
//   - the node is in the cluster, up, and not in maintenance;
//   - it is in Spec.PossibleOwners (nil means every node; an empty, non-nil
//     slice means none);
//   - its free memory — MemoryMB minus its host reserve minus the memory of
//     every other VM on it (the VM itself excluded if it is already there) —
//     is at least Spec.MemoryMB;
//   - required anti-affinity: no other VM of the same AntiAffinityClass is
//     on the node when either the VM being placed or that other VM has mode
//     "required".
//
// Choice among the nodes that pass (see Planner.Place for the full rules):
// the owner_node pin if set; otherwise the current node if it still passes
// (no needless moves); otherwise, as Windows failover clustering does,
// nodes without a preferred anti-affinity clash first, then preferred owners
// in order, then the most free memory, then the node name.
package placement

import (
	"fmt"
	"sort"
	"strings"
)

// DefaultReservedMB is the host memory reserve of a node whose ReservedMB
// is 0: memory kept for the parent partition, never given to VMs.
const DefaultReservedMB int64 = 2048

// Anti-affinity modes of Spec.AntiAffinityMode and VM.AntiAffinityMode.
// The empty string means ModePreferred.
const (
	ModePreferred = "preferred"
	ModeRequired  = "required"
)

// Node is a cluster node as the scheduler sees it.
type Node struct {
	Name        string
	Up          bool
	InCluster   bool
	Maintenance bool
	// MemoryMB is the node's total memory.
	MemoryMB int64
	// ReservedMB is the host reserve: 0 means DefaultReservedMB, a negative
	// value means no reserve.
	ReservedMB      int64
	ProcessorVendor string
}

// Reserve is the effective host reserve of n in MB.
func (n Node) Reserve() int64 {
	switch {
	case n.ReservedMB == 0:
		return DefaultReservedMB
	case n.ReservedMB < 0:
		return 0
	}
	return n.ReservedMB
}

// VM is a VM the cluster already knows, on Node ("" if it runs nowhere).
// Its memory counts against Node's capacity whatever the node's state.
type VM struct {
	Name              string
	MemoryMB          int64
	Node              string
	AntiAffinityClass string
	// AntiAffinityMode of this VM ("" = preferred). A "required" VM keeps
	// every other VM of its class off its node, whatever their own mode.
	AntiAffinityMode string
}

// State is the committed cluster state placement decides against.
type State struct {
	Nodes []Node
	VMs   []VM
}

// Spec is the VM to place (a new VM, or a known one identified by Name).
type Spec struct {
	Name     string
	MemoryMB int64
	// OwnerNode is the pin: "" lets the scheduler choose.
	OwnerNode string
	// PreferredOwners in order of preference (unknown names are ignored).
	PreferredOwners []string
	// PossibleOwners is the hard limit: nil means every node, an empty
	// non-nil slice means no node.
	PossibleOwners    []string
	AntiAffinityClass string
	// AntiAffinityMode is "preferred" (or "") or "required".
	AntiAffinityMode string
	// CurrentNode is where the VM runs now; "" means: the node of the VM of
	// the same Name in State, if any.
	CurrentNode string
}

// Decision is where the VM should run, and why.
type Decision struct {
	Node string
	// Current is the node the VM runs on now ("" if none); the VM moves
	// when Node != Current.
	Current string
	// FreeMB is the free memory left on Node once the VM runs there (after
	// the host reserve).
	FreeMB int64
	// Reasons explains the choice, most important first.
	Reasons []string
}

// ReasonCode classifies why a node cannot take a VM.
type ReasonCode string

// Reason codes, in the order a Rejection lists them.
const (
	ReasonUnknownNode      ReasonCode = "unknown_node"
	ReasonNotInCluster     ReasonCode = "not_in_cluster"
	ReasonDown             ReasonCode = "down"
	ReasonMaintenance      ReasonCode = "maintenance"
	ReasonEvacuating       ReasonCode = "evacuating"
	ReasonNotPossibleOwner ReasonCode = "not_possible_owner"
	ReasonMemory           ReasonCode = "insufficient_memory"
	ReasonAntiAffinity     ReasonCode = "anti_affinity_required"
)

// Reason is one failed hard constraint.
type Reason struct {
	Code    ReasonCode
	Message string
}

// Rejection lists why one node cannot take the VM.
type Rejection struct {
	Node    string
	Reasons []Reason
}

func (r Rejection) String() string {
	m := make([]string, len(r.Reasons))
	for i, x := range r.Reasons {
		m[i] = x.Message
	}
	return r.Node + ": " + strings.Join(m, "; ")
}

// Has reports whether the rejection carries code c.
func (r Rejection) Has(c ReasonCode) bool {
	for _, x := range r.Reasons {
		if x.Code == c {
			return true
		}
	}
	return false
}

// NoFitError is returned when no node (or, with a pin, not the pinned node)
// can take the VM. Rejections are sorted by node name.
type NoFitError struct {
	VM string
	// Attribute is the kayo_virtual_machine attribute to blame in a
	// diagnostic: "owner_node" when the pin cannot take the VM; otherwise
	// "possible_owners", "memory_mb" or "anti_affinity_mode" when that
	// constraint rejected the otherwise healthy nodes, or "" when no node is
	// healthy (a cluster problem, not the VM's configuration).
	Attribute  string
	Rejections []Rejection
}

func (e *NoFitError) Error() string {
	parts := make([]string, len(e.Rejections))
	for i, r := range e.Rejections {
		parts[i] = r.String()
	}
	detail := strings.Join(parts, "; ")
	if e.Attribute == "owner_node" && len(e.Rejections) == 1 {
		r := e.Rejections[0]
		return fmt.Sprintf("owner_node: VM %q cannot run on its owner_node %q: %s", e.VM, r.Node, strings.TrimPrefix(r.String(), r.Node+": "))
	}
	prefix := ""
	if e.Attribute != "" {
		prefix = e.Attribute + ": "
	}
	if len(e.Rejections) == 0 {
		return fmt.Sprintf("%sno node can run VM %q: the cluster has no nodes", prefix, e.VM)
	}
	return fmt.Sprintf("%sno node can run VM %q: %s", prefix, e.VM, detail)
}

// SpecError is an invalid Spec or State value.
type SpecError struct {
	VM        string
	Attribute string
	Value     string
	Allowed   string
}

func (e *SpecError) Error() string {
	return fmt.Sprintf("%s: VM %q: invalid value %q: %s", e.Attribute, e.VM, e.Value, e.Allowed)
}

// Place decides where spec should run in state s. It returns a *SpecError
// for an invalid spec or state and a *NoFitError when nothing fits. It
// indexes s on every call (O(len(s.VMs))); to place many VMs against one
// evolving state, use a Planner.
func Place(s State, spec Spec) (Decision, error) {
	p, err := NewPlanner(s)
	if err != nil {
		return Decision{}, err
	}
	return p.Place(spec)
}

type vmRec struct {
	node  int // index in Planner.nodes, -1 if none
	mem   int64
	class string
	req   bool
}

// classUse counts, per node, the VMs of one anti-affinity class.
type classUse struct {
	all, req []int32
}

// Planner is an indexed, mutable copy of a State: per-node memory use and
// anti-affinity class counts are kept up to date as VMs are assigned, so
// each Place costs O(nodes + len(spec lists)) whatever the number of VMs.
// A Planner is not safe for concurrent use.
type Planner struct {
	nodes   []Node         // sorted by name
	idx     map[string]int // name → index in nodes
	used    []int64        // memory of VMs per node
	classes map[string]*classUse
	vms     map[string]vmRec
	evac    int // node being evacuated, -1 if none

	// scratch, reused by every Place
	fail     []uint8
	possible []bool
	rank     []int
}

// NewPlanner indexes s. Node names must be unique and non-empty, VM names
// unique and non-empty. A VM on a node that is not in s.Nodes counts
// nowhere.
func NewPlanner(s State) (*Planner, error) {
	n := len(s.Nodes)
	p := &Planner{
		nodes:    append([]Node(nil), s.Nodes...),
		idx:      make(map[string]int, n),
		used:     make([]int64, n),
		classes:  make(map[string]*classUse),
		vms:      make(map[string]vmRec, len(s.VMs)),
		evac:     -1,
		fail:     make([]uint8, n),
		possible: make([]bool, n),
		rank:     make([]int, n),
	}
	sort.SliceStable(p.nodes, func(i, j int) bool { return p.nodes[i].Name < p.nodes[j].Name })
	for i, n := range p.nodes {
		if n.Name == "" {
			return nil, fmt.Errorf("placement: a node has an empty name")
		}
		if _, dup := p.idx[n.Name]; dup {
			return nil, fmt.Errorf("placement: node %q appears twice in the state", n.Name)
		}
		p.idx[n.Name] = i
	}
	for _, v := range s.VMs {
		if v.Name == "" {
			return nil, fmt.Errorf("placement: a VM has an empty name")
		}
		if _, dup := p.vms[v.Name]; dup {
			return nil, fmt.Errorf("placement: VM %q appears twice in the state", v.Name)
		}
		ni := -1
		if i, ok := p.idx[v.Node]; ok {
			ni = i
		}
		p.add(v.Name, vmRec{node: ni, mem: v.MemoryMB, class: v.AntiAffinityClass, req: v.AntiAffinityMode == ModeRequired})
	}
	return p, nil
}

func (p *Planner) add(name string, r vmRec) {
	p.vms[name] = r
	if r.node < 0 {
		return
	}
	p.used[r.node] += r.mem
	if r.class != "" {
		c := p.classes[r.class]
		if c == nil {
			c = &classUse{all: make([]int32, len(p.nodes)), req: make([]int32, len(p.nodes))}
			p.classes[r.class] = c
		}
		c.all[r.node]++
		if r.req {
			c.req[r.node]++
		}
	}
}

func (p *Planner) remove(name string) {
	r, ok := p.vms[name]
	if !ok {
		return
	}
	delete(p.vms, name)
	if r.node < 0 {
		return
	}
	p.used[r.node] -= r.mem
	if r.class != "" {
		c := p.classes[r.class]
		c.all[r.node]--
		if r.req {
			c.req[r.node]--
		}
	}
}

// Assign records that the VM of spec now runs on node ("" = nowhere),
// with spec's memory and anti-affinity, replacing any earlier record of the
// VM. It does not check constraints: call Place first.
func (p *Planner) Assign(spec Spec, node string) error {
	ni := -1
	if node != "" {
		i, ok := p.idx[node]
		if !ok {
			return fmt.Errorf("placement: cannot assign VM %q to %q: not a node of the state", spec.Name, node)
		}
		ni = i
	}
	p.remove(spec.Name)
	p.add(spec.Name, vmRec{node: ni, mem: spec.MemoryMB, class: spec.AntiAffinityClass, req: spec.AntiAffinityMode == ModeRequired})
	return nil
}

func checkSpec(spec Spec) error {
	if spec.Name == "" {
		return &SpecError{VM: spec.Name, Attribute: "name", Value: "", Allowed: "a VM needs a name"}
	}
	if spec.MemoryMB <= 0 {
		return &SpecError{VM: spec.Name, Attribute: "memory_mb", Value: fmt.Sprint(spec.MemoryMB), Allowed: "must be a positive number of MB"}
	}
	switch spec.AntiAffinityMode {
	case "", ModePreferred, ModeRequired:
	default:
		return &SpecError{VM: spec.Name, Attribute: "anti_affinity_mode", Value: spec.AntiAffinityMode, Allowed: `allowed values are "preferred" and "required"`}
	}
	return nil
}

// failure bits of a node for a spec
const (
	fNotInCluster uint8 = 1 << iota
	fDown
	fMaintenance
	fEvacuating
	fNotPossible
	fMemory
	fAnti
)

const fUnhealthy = fNotInCluster | fDown | fMaintenance | fEvacuating

// query is a Spec prepared for evaluation against every node; it uses the
// Planner's scratch slices (possible, rank).
type query struct {
	spec   Spec
	self   vmRec
	selfOK bool
	req    bool
	class  *classUse // nil: no class, or no VM of it anywhere
}

func (p *Planner) prepare(spec Spec) query {
	q := query{spec: spec, req: spec.AntiAffinityMode == ModeRequired}
	q.self, q.selfOK = p.vms[spec.Name]
	if spec.AntiAffinityClass != "" {
		q.class = p.classes[spec.AntiAffinityClass]
	}
	all := spec.PossibleOwners == nil
	for i := range p.possible {
		p.possible[i] = all
		p.rank[i] = len(spec.PreferredOwners)
	}
	for _, n := range spec.PossibleOwners {
		if i, ok := p.idx[n]; ok {
			p.possible[i] = true
		}
	}
	for k := len(spec.PreferredOwners) - 1; k >= 0; k-- {
		if i, ok := p.idx[spec.PreferredOwners[k]]; ok {
			p.rank[i] = k
		}
	}
	return q
}

func (q *query) selfOn(i int) bool { return q.selfOK && q.self.node == i }

// free is node i's free memory for q's VM (the VM's own memory returned if
// it is already there).
func (p *Planner) free(q *query, i int) int64 {
	used := p.used[i]
	if q.selfOn(i) {
		used -= q.self.mem
	}
	return p.nodes[i].MemoryMB - p.nodes[i].Reserve() - used
}

// clashes returns the number of other VMs of q's class on node i, and of
// those whose own mode is required.
func (p *Planner) clashes(q *query, i int) (all, req int) {
	if q.class == nil {
		return 0, 0
	}
	all, req = int(q.class.all[i]), int(q.class.req[i])
	if q.selfOn(i) && q.self.class == q.spec.AntiAffinityClass {
		all--
		if q.self.req {
			req--
		}
	}
	return all, req
}

func (p *Planner) fails(q *query, i int) uint8 {
	n := &p.nodes[i]
	var f uint8
	if !n.InCluster {
		f |= fNotInCluster
	}
	if !n.Up {
		f |= fDown
	}
	if n.Maintenance {
		f |= fMaintenance
	}
	if i == p.evac {
		f |= fEvacuating
	}
	if !p.possible[i] {
		f |= fNotPossible
	}
	if p.free(q, i) < q.spec.MemoryMB {
		f |= fMemory
	}
	if all, req := p.clashes(q, i); req > 0 || (q.req && all > 0) {
		f |= fAnti
	}
	return f
}

// classVMs names the other VMs of q's class on node i (only those with
// mode required if requiredOnly), sorted. O(VMs): error path only.
func (p *Planner) classVMs(q *query, i int, requiredOnly bool) []string {
	var names []string
	for n, r := range p.vms {
		if r.node == i && n != q.spec.Name && r.class == q.spec.AntiAffinityClass && (r.req || !requiredOnly) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}

func (p *Planner) rejection(q *query, i int, f uint8) Rejection {
	n := p.nodes[i]
	r := Rejection{Node: n.Name}
	add := func(c ReasonCode, format string, a ...any) {
		r.Reasons = append(r.Reasons, Reason{Code: c, Message: fmt.Sprintf(format, a...)})
	}
	if f&fNotInCluster != 0 {
		add(ReasonNotInCluster, "not a node of the cluster")
	}
	if f&fDown != 0 {
		add(ReasonDown, "down")
	}
	if f&fMaintenance != 0 {
		add(ReasonMaintenance, "in maintenance")
	}
	if f&fEvacuating != 0 {
		add(ReasonEvacuating, "being evacuated")
	}
	if f&fNotPossible != 0 {
		add(ReasonNotPossibleOwner, "not in possible_owners [%s]", quoteList(q.spec.PossibleOwners))
	}
	if f&fMemory != 0 {
		free := p.free(q, i)
		if free < 0 {
			free = 0
		}
		add(ReasonMemory, "not enough memory: needs %d MB, %d MB free after the %d MB host reserve", q.spec.MemoryMB, free, n.Reserve())
	}
	if f&fAnti != 0 {
		if q.req {
			add(ReasonAntiAffinity, "required anti-affinity: VM %s of anti_affinity_class %q already runs here", quoteList(p.classVMs(q, i, false)), q.spec.AntiAffinityClass)
		} else {
			add(ReasonAntiAffinity, "required anti-affinity: VM %s of anti_affinity_class %q runs here with anti_affinity_mode \"required\"", quoteList(p.classVMs(q, i, true)), q.spec.AntiAffinityClass)
		}
	}
	return r
}

// Place decides where spec runs, against the Planner's current state; it
// changes nothing (call Assign to record the decision). Rules, in order:
//
//  1. Pin: with OwnerNode set the answer is that node, or a *NoFitError
//     with Attribute "owner_node" saying why it cannot take the VM (a pinned
//     VM is never placed elsewhere; to keep a VM where it is while its pin
//     is down, the caller decides, e.g. by placing with OwnerNode "").
//  2. Stability: an unpinned VM whose current node passes every hard
//     constraint stays there, even if a preferred owner has become free
//     (failback is the caller's policy: place with CurrentNode "" and
//     remove the VM from the state to get the preferred node).
//  3. Otherwise the nodes passing every hard constraint are ordered by:
//     no preferred anti-affinity clash (no other VM of the same class)
//     first — as in Windows, where anti-affinity outranks the preferred
//     owners list —, then position in PreferredOwners (listed nodes
//     first, in order), then most free memory, then name.
func (p *Planner) Place(spec Spec) (Decision, error) {
	if err := checkSpec(spec); err != nil {
		return Decision{}, err
	}
	q := p.prepare(spec)
	current := -1
	if spec.CurrentNode != "" {
		if i, ok := p.idx[spec.CurrentNode]; ok {
			current = i
		}
	} else if q.selfOK {
		current = q.self.node
	}
	d := Decision{}
	if current >= 0 {
		d.Current = p.nodes[current].Name
	}

	if spec.OwnerNode != "" {
		i, ok := p.idx[spec.OwnerNode]
		if !ok {
			return Decision{}, &NoFitError{VM: spec.Name, Attribute: "owner_node", Rejections: []Rejection{{
				Node:    spec.OwnerNode,
				Reasons: []Reason{{Code: ReasonUnknownNode, Message: "not a node of the cluster"}},
			}}}
		}
		if f := p.fails(&q, i); f != 0 {
			return Decision{}, &NoFitError{VM: spec.Name, Attribute: "owner_node", Rejections: []Rejection{p.rejection(&q, i, f)}}
		}
		d.Node = spec.OwnerNode
		d.FreeMB = p.free(&q, i) - spec.MemoryMB
		d.Reasons = []string{fmt.Sprintf("owner_node pins the VM to %s", spec.OwnerNode)}
		return d, nil
	}

	if current >= 0 && p.fails(&q, current) == 0 {
		d.Node = p.nodes[current].Name
		d.FreeMB = p.free(&q, current) - spec.MemoryMB
		d.Reasons = []string{fmt.Sprintf("stays on its current node %s, which can still run it", d.Node)}
		return d, nil
	}

	// One pass: the best candidate by (no clash, rank, most free, name —
	// nodes are sorted by name, so ties keep the first), and how many
	// candidates share its (clash, rank) level.
	best, bestClash, bestRank, bestFree, ties := -1, false, 0, int64(0), 0
	for i := range p.nodes {
		f := p.fails(&q, i)
		p.fail[i] = f
		if f != 0 {
			continue
		}
		all, _ := p.clashes(&q, i)
		clash, r, free := all > 0, p.rank[i], p.free(&q, i)
		switch {
		case best < 0 || clash != bestClash && !clash || clash == bestClash && r < bestRank:
			best, bestClash, bestRank, bestFree, ties = i, clash, r, free, 1
		case clash == bestClash && r == bestRank:
			ties++
			if free > bestFree {
				best, bestFree = i, free
			}
		}
	}
	if best < 0 {
		return Decision{}, p.noFit(&q)
	}
	n := p.nodes[best].Name
	d.Node = n
	d.FreeMB = bestFree - spec.MemoryMB
	d.Reasons = make([]string, 0, 4)
	if current >= 0 {
		d.Reasons = append(d.Reasons, fmt.Sprintf("its current node %s can no longer run it: %s", p.nodes[current].Name,
			strings.TrimPrefix(p.rejection(&q, current, p.fail[current]).String(), p.nodes[current].Name+": ")))
	}
	if spec.AntiAffinityClass != "" {
		if bestClash {
			d.Reasons = append(d.Reasons, fmt.Sprintf("every node that can run it already runs a VM of anti_affinity_class %q", spec.AntiAffinityClass))
		} else {
			d.Reasons = append(d.Reasons, fmt.Sprintf("no other VM of anti_affinity_class %q runs on %s", spec.AntiAffinityClass, n))
		}
	}
	if bestRank < len(spec.PreferredOwners) {
		d.Reasons = append(d.Reasons, fmt.Sprintf("%s is preferred owner #%d", n, bestRank+1))
	} else if len(spec.PreferredOwners) > 0 {
		d.Reasons = append(d.Reasons, "no preferred owner can run it")
	}
	if ties > 1 {
		d.Reasons = append(d.Reasons, fmt.Sprintf("%s has the most free memory of %d equally preferred nodes (%d MB free after the VM)", n, ties, d.FreeMB))
	}
	return d, nil
}

func (p *Planner) noFit(q *query) *NoFitError {
	e := &NoFitError{VM: q.spec.Name}
	healthy, possible := 0, 0
	var mem, anti bool
	for i := range p.nodes {
		f := p.fail[i]
		e.Rejections = append(e.Rejections, p.rejection(q, i, f))
		if f&fUnhealthy != 0 {
			continue
		}
		healthy++
		if f&fNotPossible != 0 {
			continue
		}
		possible++
		mem = mem || f&fMemory != 0
		anti = anti || f&fAnti != 0
	}
	switch {
	case healthy == 0:
	case possible == 0:
		e.Attribute = "possible_owners"
	case mem:
		e.Attribute = "memory_mb"
	case anti:
		e.Attribute = "anti_affinity_mode"
	}
	return e
}

// Move is one VM relocated by Evacuate.
type Move struct {
	VM       string
	From, To string
	Reasons  []string
}

// Evacuate moves VMs off node (a drain for maintenance, or a failover when
// the node is down): the VMs are placed one by one, the Planner's state
// updated as each lands, so later VMs see the memory and anti-affinity of
// earlier ones. node itself is excluded (reason "being evacuated")
// whatever its state.
//
// Order, deterministic: VMs with placement wishes (a pin elsewhere or
// preferred owners) first, then larger memory first, then name. For each
// VM the CurrentNode is node; an owner_node pin on another node is not
// binding here: it becomes the first preferred owner (so the VM goes back
// to its pin when the pin can take it, anti-affinity permitting, and
// otherwise where Place would send it unpinned); a pin on node itself is
// ignored. Specs are usually the VMs on node; others are placed too.
//
// moves lists the VMs placed, in placement order; failed has one error per
// VM that fits nowhere (a *NoFitError naming it) or whose spec is invalid
// (a *SpecError). err is set, and nothing placed, when node is not in the
// state.
func (p *Planner) Evacuate(node string, vms []Spec) (moves []Move, failed []error, err error) {
	i, ok := p.idx[node]
	if !ok {
		return nil, nil, fmt.Errorf("placement: cannot evacuate %q: not a node of the state", node)
	}
	p.evac = i
	defer func() { p.evac = -1 }()

	order := append([]Spec(nil), vms...)
	wish := func(s Spec) bool {
		return (s.OwnerNode != "" && s.OwnerNode != node) || len(s.PreferredOwners) > 0
	}
	sort.SliceStable(order, func(a, b int) bool {
		x, y := order[a], order[b]
		if wx, wy := wish(x), wish(y); wx != wy {
			return wx
		}
		if x.MemoryMB != y.MemoryMB {
			return x.MemoryMB > y.MemoryMB
		}
		return x.Name < y.Name
	})
	for _, s := range order {
		sp := s
		sp.CurrentNode = node
		if sp.OwnerNode != "" {
			if sp.OwnerNode != node {
				sp.PreferredOwners = append([]string{sp.OwnerNode}, sp.PreferredOwners...)
			}
			sp.OwnerNode = ""
		}
		d, perr := p.Place(sp)
		if perr != nil {
			failed = append(failed, perr)
			continue
		}
		if err := p.Assign(sp, d.Node); err != nil {
			failed = append(failed, err)
			continue
		}
		moves = append(moves, Move{VM: s.Name, From: node, To: d.Node, Reasons: d.Reasons})
	}
	return moves, failed, nil
}
