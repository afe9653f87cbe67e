package placement

import (
	"fmt"
	"math/rand"
	"testing"
)

func benchCluster() ([]Node, []Spec) {
	r := rand.New(rand.NewSource(42))
	nodes := make([]Node, 16)
	names := make([]string, 16)
	for i := range nodes {
		names[i] = fmt.Sprintf("HV-%02d", i)
		nodes[i] = Node{Name: names[i], Up: true, InCluster: true, MemoryMB: 2 << 20, ProcessorVendor: "intel"}
	}
	specs := make([]Spec, 10000)
	for i := range specs {
		s := Spec{Name: fmt.Sprintf("VM%05d", i), MemoryMB: int64(512 * (1 + r.Intn(8)))}
		if r.Intn(4) == 0 {
			s.PreferredOwners = []string{names[r.Intn(16)], names[r.Intn(16)]}
		}
		if r.Intn(10) == 0 {
			s.PossibleOwners = names[:8+r.Intn(8)]
		}
		if r.Intn(2) == 0 {
			s.AntiAffinityClass = fmt.Sprintf("class%d", r.Intn(1000))
			if r.Intn(10) == 0 {
				s.AntiAffinityMode = ModeRequired
			}
		}
		specs[i] = s
	}
	return nodes, specs
}

// BenchmarkPlace10000VMs16Nodes places 10,000 VMs one by one over 16 nodes,
// the state updated incrementally (Planner.Place + Assign). One op = all
// 10,000 placements; ns/vm is the cost of one.
func BenchmarkPlace10000VMs16Nodes(b *testing.B) {
	nodes, specs := benchCluster()
	b.ReportAllocs()
	for b.Loop() {
		p, err := NewPlanner(State{Nodes: nodes})
		if err != nil {
			b.Fatal(err)
		}
		for _, s := range specs {
			d, err := p.Place(s)
			if err != nil {
				b.Fatal(err)
			}
			if err := p.Assign(s, d.Node); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(specs)), "ns/vm")
}

// BenchmarkPlaceOneShot10000VMs is one Place call (which indexes the state)
// against a 16-node cluster already running 10,000 VMs: the plan-time cost
// of checking one VM.
func BenchmarkPlaceOneShot10000VMs(b *testing.B) {
	nodes, specs := benchCluster()
	p, _ := NewPlanner(State{Nodes: nodes})
	s := State{Nodes: nodes}
	for _, sp := range specs {
		d, err := p.Place(sp)
		if err != nil {
			b.Fatal(err)
		}
		_ = p.Assign(sp, d.Node)
		s.VMs = append(s.VMs, VM{Name: sp.Name, MemoryMB: sp.MemoryMB, Node: d.Node, AntiAffinityClass: sp.AntiAffinityClass, AntiAffinityMode: sp.AntiAffinityMode})
	}
	spec := Spec{Name: "NEW", MemoryMB: 4096, PreferredOwners: []string{"HV-03"}, AntiAffinityClass: "class7"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Place(s, spec); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEvacuate16Nodes drains one node of a 16-node cluster running
// 10,000 VMs (about 625 VMs move).
func BenchmarkEvacuate16Nodes(b *testing.B) {
	nodes, specs := benchCluster()
	p, _ := NewPlanner(State{Nodes: nodes})
	s := State{Nodes: nodes}
	var onNode []Spec
	for _, sp := range specs {
		d, _ := p.Place(sp)
		_ = p.Assign(sp, d.Node)
		s.VMs = append(s.VMs, VM{Name: sp.Name, MemoryMB: sp.MemoryMB, Node: d.Node, AntiAffinityClass: sp.AntiAffinityClass, AntiAffinityMode: sp.AntiAffinityMode})
		if d.Node == "HV-05" {
			onNode = append(onNode, sp)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		moves, failed, err := Evacuate(s, "HV-05", onNode)
		if err != nil || len(failed) != 0 || len(moves) != len(onNode) {
			b.Fatal(err, len(failed), len(moves), len(onNode))
		}
	}
	b.ReportMetric(float64(len(onNode)), "vms_moved")
}
