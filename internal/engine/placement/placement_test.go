package placement

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

const (
	y21 = "Y-21-2k8x64"
	y22 = "Y-22-2k8x64"
)

func node(name string, memMB int64) Node {
	return Node{Name: name, Up: true, InCluster: true, MemoryMB: memMB, ProcessorVendor: "intel"}
}

func seed() State {
	return State{Nodes: []Node{node(y21, 32768), node(y22, 32768)}}
}

func mustPlace(t *testing.T, s State, spec Spec) Decision {
	t.Helper()
	d, err := Place(s, spec)
	if err != nil {
		t.Fatalf("Place(%+v): %v", spec, err)
	}
	return d
}

func noFit(t *testing.T, err error) *NoFitError {
	t.Helper()
	var nf *NoFitError
	if !errors.As(err, &nf) {
		t.Fatalf("want *NoFitError, got %T %v", err, err)
	}
	return nf
}

func TestSpreadByFreeMemory(t *testing.T) {
	s := seed()
	s.VMs = []VM{{Name: "A", MemoryMB: 4096, Node: y21}}
	d := mustPlace(t, s, Spec{Name: "WEB01", MemoryMB: 2048})
	if d.Node != y22 || d.Moves() || d.Current != "" {
		t.Fatalf("got %+v", d)
	}
	if d.FreeMB != 32768-2048-2048 {
		t.Errorf("FreeMB = %d", d.FreeMB)
	}
	// Equal free memory: the name decides.
	d = mustPlace(t, seed(), Spec{Name: "WEB01", MemoryMB: 2048})
	if d.Node != y21 {
		t.Fatalf("tie: got %s", d.Node)
	}
}

func TestMemoryRejectionMessage(t *testing.T) {
	s := State{Nodes: []Node{node(y21, 8192)}, VMs: []VM{{Name: "A", MemoryMB: 5120, Node: y21}}}
	_, err := Place(s, Spec{Name: "WEB01", MemoryMB: 4096})
	nf := noFit(t, err)
	want := `memory_mb: no node can run VM "WEB01": Y-21-2k8x64: not enough memory: needs 4096 MB, 1024 MB free after the 2048 MB host reserve`
	if err.Error() != want {
		t.Fatalf("got  %s\nwant %s", err, want)
	}
	if nf.VM != "WEB01" || nf.Attribute != "memory_mb" || !nf.Rejections[0].Has(ReasonMemory) {
		t.Errorf("got %+v", nf)
	}
	// Exactly full fits.
	mustPlace(t, s, Spec{Name: "WEB01", MemoryMB: 1024})
}

func TestReserve(t *testing.T) {
	n := node(y21, 4096)
	if n.Reserve() != DefaultReservedMB {
		t.Fatal(n.Reserve())
	}
	n.ReservedMB = -1
	if n.Reserve() != 0 {
		t.Fatal(n.Reserve())
	}
	mustPlace(t, State{Nodes: []Node{n}}, Spec{Name: "V", MemoryMB: 4096})
	n.ReservedMB = 1024
	_, err := Place(State{Nodes: []Node{n}}, Spec{Name: "V", MemoryMB: 4096})
	if !strings.Contains(err.Error(), "3072 MB free after the 1024 MB host reserve") {
		t.Fatal(err)
	}
}

func TestEveryRejectionReason(t *testing.T) {
	s := State{Nodes: []Node{
		{Name: "a-out", Up: true, InCluster: false, MemoryMB: 65536},
		{Name: "b-down", Up: false, InCluster: true, MemoryMB: 65536},
		{Name: "c-maint", Up: true, InCluster: true, Maintenance: true, MemoryMB: 65536},
		node("d-notowner", 65536),
		node("e-small", 4096),
		node("f-db", 65536),
	}, VMs: []VM{{Name: "DB01", MemoryMB: 1024, Node: "f-db", AntiAffinityClass: "db"}}}
	spec := Spec{Name: "DB02", MemoryMB: 4096, AntiAffinityClass: "db", AntiAffinityMode: ModeRequired,
		PossibleOwners: []string{"a-out", "b-down", "c-maint", "e-small", "f-db"}}
	_, err := Place(s, spec)
	nf := noFit(t, err)
	want := map[string]ReasonCode{
		"a-out": ReasonNotInCluster, "b-down": ReasonDown, "c-maint": ReasonMaintenance,
		"d-notowner": ReasonNotPossibleOwner, "e-small": ReasonMemory, "f-db": ReasonAntiAffinity,
	}
	if len(nf.Rejections) != len(want) {
		t.Fatalf("rejections %+v", nf.Rejections)
	}
	for _, r := range nf.Rejections {
		if len(r.Reasons) != 1 || r.Reasons[0].Code != want[r.Node] {
			t.Errorf("%s: %+v, want %s", r.Node, r.Reasons, want[r.Node])
		}
	}
	msg := err.Error()
	for _, s := range []string{`VM "DB02"`, "a-out: not a node of the cluster", "b-down: down", "c-maint: in maintenance",
		`d-notowner: not in possible_owners`, "e-small: not enough memory: needs 4096 MB, 2048 MB free after the 2048 MB host reserve",
		`f-db: required anti-affinity: VM "DB01" of anti_affinity_class "db" already runs here`} {
		if !strings.Contains(msg, s) {
			t.Errorf("message lacks %q:\n%s", s, msg)
		}
	}
	if nf.Attribute != "memory_mb" {
		t.Errorf("attribute %q", nf.Attribute)
	}
}

func TestNoFitAttribute(t *testing.T) {
	down := seed()
	down.Nodes[0].Up, down.Nodes[1].Maintenance = false, true
	cases := []struct {
		name string
		s    State
		spec Spec
		attr string
	}{
		{"no healthy node", down, Spec{Name: "V", MemoryMB: 1}, ""},
		{"no nodes", State{}, Spec{Name: "V", MemoryMB: 1}, ""},
		{"possible owners", seed(), Spec{Name: "V", MemoryMB: 1, PossibleOwners: []string{}}, "possible_owners"},
		{"possible owners unknown", seed(), Spec{Name: "V", MemoryMB: 1, PossibleOwners: []string{"nope"}}, "possible_owners"},
		{"memory", seed(), Spec{Name: "V", MemoryMB: 40000}, "memory_mb"},
		{"anti", State{Nodes: seed().Nodes, VMs: []VM{{Name: "A", MemoryMB: 1, Node: y21, AntiAffinityClass: "c"}, {Name: "B", MemoryMB: 1, Node: y22, AntiAffinityClass: "c"}}},
			Spec{Name: "V", MemoryMB: 1, AntiAffinityClass: "c", AntiAffinityMode: ModeRequired}, "anti_affinity_mode"},
	}
	for _, tc := range cases {
		_, err := Place(tc.s, tc.spec)
		if nf := noFit(t, err); nf.Attribute != tc.attr {
			t.Errorf("%s: attribute %q want %q (%v)", tc.name, nf.Attribute, tc.attr, err)
		}
		if !strings.Contains(err.Error(), `VM "V"`) {
			t.Errorf("%s: %v does not name the VM", tc.name, err)
		}
	}
}

func TestPin(t *testing.T) {
	s := seed()
	s.VMs = []VM{{Name: "WEB01", MemoryMB: 2048, Node: y21}}
	d := mustPlace(t, s, Spec{Name: "WEB01", MemoryMB: 2048, OwnerNode: y22})
	if d.Node != y22 || d.Current != y21 || !d.Moves() {
		t.Fatalf("got %+v", d)
	}
	s.Nodes[1].Maintenance = true
	_, err := Place(s, Spec{Name: "WEB01", MemoryMB: 2048, OwnerNode: y22})
	nf := noFit(t, err)
	want := `owner_node: VM "WEB01" cannot run on its owner_node "Y-22-2k8x64": in maintenance`
	if nf.Attribute != "owner_node" || err.Error() != want {
		t.Fatalf("got %q (%+v)", err, nf)
	}
	_, err = Place(s, Spec{Name: "WEB01", MemoryMB: 2048, OwnerNode: "Y-99"})
	if nf := noFit(t, err); nf.Attribute != "owner_node" || nf.Rejections[0].Reasons[0].Code != ReasonUnknownNode {
		t.Fatalf("got %v", err)
	}
	// A pin outside possible owners.
	_, err = Place(seed(), Spec{Name: "V", MemoryMB: 1, OwnerNode: y22, PossibleOwners: []string{y21}})
	if nf := noFit(t, err); !nf.Rejections[0].Has(ReasonNotPossibleOwner) || !strings.Contains(err.Error(), "owner_node") {
		t.Fatal(err)
	}
}

func TestStability(t *testing.T) {
	s := seed()
	s.VMs = []VM{{Name: "WEB01", MemoryMB: 2048, Node: y22}, {Name: "BIG", MemoryMB: 20000, Node: y22}}
	// Current node is valid: no move, even though y21 is preferred and emptier.
	d := mustPlace(t, s, Spec{Name: "WEB01", MemoryMB: 2048, PreferredOwners: []string{y21}})
	if d.Node != y22 || d.Moves() {
		t.Fatalf("got %+v", d)
	}
	// CurrentNode in the spec overrides the state.
	d = mustPlace(t, s, Spec{Name: "WEB01", MemoryMB: 2048, CurrentNode: y21})
	if d.Node != y21 {
		t.Fatalf("got %+v", d)
	}
	// possible_owners now excludes the current node: it moves, and says why.
	d = mustPlace(t, s, Spec{Name: "WEB01", MemoryMB: 2048, PossibleOwners: []string{y21}})
	if d.Node != y21 || !d.Moves() || !strings.Contains(d.Reasons[0], "can no longer run it: not in possible_owners") {
		t.Fatalf("got %+v", d)
	}
	// Growing beyond what the current node has: moves. Its own memory is not
	// counted against it: 32768-2048-20000 = 10720 free for it.
	if d := mustPlace(t, s, Spec{Name: "WEB01", MemoryMB: 10720}); d.Node != y22 {
		t.Fatalf("own memory counted twice: %+v", d)
	}
	if d := mustPlace(t, s, Spec{Name: "WEB01", MemoryMB: 10721}); d.Node != y21 {
		t.Fatalf("got %+v", d)
	}
}

func TestPreferredOwnersAndAntiAffinity(t *testing.T) {
	s := State{Nodes: []Node{node("n1", 65536), node("n2", 65536), node("n3", 65536), node("n4", 16384)}}
	d := mustPlace(t, s, Spec{Name: "V", MemoryMB: 1024, PreferredOwners: []string{"n4", "n2"}})
	if d.Node != "n4" || !strings.Contains(strings.Join(d.Reasons, "|"), "preferred owner #1") {
		t.Fatalf("got %+v", d)
	}
	s.Nodes[3].Up = false
	d = mustPlace(t, s, Spec{Name: "V", MemoryMB: 1024, PreferredOwners: []string{"n4", "n2"}})
	if d.Node != "n2" {
		t.Fatalf("got %+v", d)
	}
	// Preferred anti-affinity outranks the preferred owners list (as in Windows).
	s.VMs = []VM{{Name: "W1", MemoryMB: 1024, Node: "n2", AntiAffinityClass: "web"}}
	d = mustPlace(t, s, Spec{Name: "W2", MemoryMB: 1024, PreferredOwners: []string{"n4", "n2", "n3"}, AntiAffinityClass: "web"})
	if d.Node != "n3" {
		t.Fatalf("got %+v", d)
	}
	// ...but is only a preference: with every node clashing, it still places.
	s = State{Nodes: []Node{node("n1", 65536), node("n2", 65536)}, VMs: []VM{
		{Name: "W1", MemoryMB: 1024, Node: "n1", AntiAffinityClass: "web"},
		{Name: "W2", MemoryMB: 1024, Node: "n2", AntiAffinityClass: "web"},
	}}
	d = mustPlace(t, s, Spec{Name: "W3", MemoryMB: 1024, AntiAffinityClass: "web"})
	if d.Node != "n1" || !strings.Contains(strings.Join(d.Reasons, "|"), "every node that can run it") {
		t.Fatalf("got %+v", d)
	}
	// Required on the spec: rejected.
	_, err := Place(s, Spec{Name: "W3", MemoryMB: 1024, AntiAffinityClass: "web", AntiAffinityMode: ModeRequired})
	noFit(t, err)
	// Required on an existing VM binds a preferred newcomer too.
	s.VMs[1].AntiAffinityMode = ModeRequired
	d = mustPlace(t, s, Spec{Name: "W3", MemoryMB: 1024, AntiAffinityClass: "web"})
	if d.Node != "n1" {
		t.Fatalf("got %+v", d)
	}
	s.VMs[0].AntiAffinityMode = ModeRequired
	_, err = Place(s, Spec{Name: "W3", MemoryMB: 1024, AntiAffinityClass: "web"})
	if nf := noFit(t, err); !strings.Contains(err.Error(), `runs here with anti_affinity_mode "required"`) || nf.Attribute != "anti_affinity_mode" {
		t.Fatal(err)
	}
	// A VM never clashes with itself.
	d = mustPlace(t, s, Spec{Name: "W1", MemoryMB: 1024, AntiAffinityClass: "web", AntiAffinityMode: ModeRequired})
	if d.Node != "n1" || d.Moves() {
		t.Fatalf("got %+v", d)
	}
}

func TestSpecAndStateErrors(t *testing.T) {
	for _, tc := range []struct {
		spec Spec
		attr string
	}{
		{Spec{Name: "", MemoryMB: 1}, "name"},
		{Spec{Name: "V", MemoryMB: 0}, "memory_mb"},
		{Spec{Name: "V", MemoryMB: 1, AntiAffinityMode: "strict"}, "anti_affinity_mode"},
	} {
		_, err := Place(seed(), tc.spec)
		var se *SpecError
		if !errors.As(err, &se) || se.Attribute != tc.attr || !strings.HasPrefix(err.Error(), tc.attr+":") {
			t.Errorf("%+v: got %v", tc.spec, err)
		}
	}
	bad := []State{
		{Nodes: []Node{node("a", 1), node("a", 2)}},
		{Nodes: []Node{node("", 1)}},
		{Nodes: []Node{node("a", 1)}, VMs: []VM{{Name: "V"}, {Name: "V"}}},
		{Nodes: []Node{node("a", 1)}, VMs: []VM{{Name: ""}}},
	}
	for _, s := range bad {
		if _, err := Place(s, Spec{Name: "X", MemoryMB: 1}); err == nil {
			t.Errorf("state %+v: want error", s)
		}
	}
}

func TestPlannerAssign(t *testing.T) {
	p, err := NewPlanner(seed())
	if err != nil {
		t.Fatal(err)
	}
	spec := Spec{Name: "V", MemoryMB: 30720}
	d, err := p.Place(spec)
	if err != nil || d.Node != y21 {
		t.Fatal(d, err)
	}
	if err := p.Assign(spec, d.Node); err != nil {
		t.Fatal(err)
	}
	if f, _ := p.FreeMB(y21); f != 0 || p.NodeOf("V") != y21 {
		t.Fatal(f, p.NodeOf("V"))
	}
	// The same VM re-placed stays; a second one goes to y22.
	if d, _ := p.Place(spec); d.Node != y21 || d.Moves() {
		t.Fatal(d)
	}
	if d, _ := p.Place(Spec{Name: "W", MemoryMB: 30720}); d.Node != y22 {
		t.Fatal(d)
	}
	// Move it: y21 is freed.
	if err := p.Assign(spec, y22); err != nil {
		t.Fatal(err)
	}
	if f, _ := p.FreeMB(y21); f != 30720 {
		t.Fatal(f)
	}
	p.Remove("V")
	if f, _ := p.FreeMB(y22); f != 30720 || p.NodeOf("V") != "" {
		t.Fatal(f)
	}
	if err := p.Assign(spec, "nope"); err == nil {
		t.Fatal("want error")
	}
	if _, ok := p.FreeMB("nope"); ok {
		t.Fatal("unknown node")
	}
}

func TestEvacuate(t *testing.T) {
	s := State{Nodes: []Node{node("n1", 16384), node("n2", 16384), node("n3", 8192)}}
	specs := []Spec{
		{Name: "A", MemoryMB: 4096},
		{Name: "B", MemoryMB: 8192},
		{Name: "C", MemoryMB: 2048, PreferredOwners: []string{"n3"}},
		{Name: "D", MemoryMB: 6144, OwnerNode: "n1"}, // pinned to the drained node: pin ignored
		{Name: "E", MemoryMB: 12288},                 // fits nowhere once the others land
		{Name: "F", MemoryMB: 1024, OwnerNode: "n2"}, // pin elsewhere: becomes first preference
	}
	for _, sp := range specs {
		s.VMs = append(s.VMs, VM{Name: sp.Name, MemoryMB: sp.MemoryMB, Node: "n1"})
	}
	moves, failed, err := Evacuate(s, "n1", specs)
	if err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, m := range moves {
		if m.From != "n1" {
			t.Errorf("%+v", m)
		}
		got = append(got, m.VM+">"+m.To)
	}
	// Order: wishes first (C, F by memory desc then name), then E(12288), B(8192), D(6144), A(4096).
	// n2 14336 free, n3 6144 free: C and F land on their preferences, E
	// takes most of n2, B (8192) and D (6144) fit nowhere, A fits n3.
	want := []string{"C>n3", "F>n2", "E>n2", "A>n3"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("moves %v want %v", got, want)
	}
	if len(failed) != 2 {
		t.Fatalf("failed %v", failed)
	}
	for i, name := range []string{"B", "D"} {
		nf := noFit(t, failed[i])
		if nf.VM != name || !strings.Contains(failed[i].Error(), "n1: being evacuated") {
			t.Errorf("failed[%d] = %v", i, failed[i])
		}
	}
	// Deterministic, whatever the input order.
	rev := append([]Spec(nil), specs...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	moves2, _, _ := Evacuate(s, "n1", rev)
	if !reflect.DeepEqual(moves, moves2) {
		t.Fatal("not deterministic")
	}
	if _, _, err := Evacuate(s, "nope", specs); err == nil {
		t.Fatal("unknown node: want error")
	}
}
