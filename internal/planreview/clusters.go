package planreview

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	tfjson "github.com/hashicorp/terraform-json"
)

// prior is what the plan's prior state says about the clusters.
type prior struct {
	vendor    map[string]string // host → processor vendor
	clusterOf map[string]string // host → its cluster
	nodes     map[string][]string
	quorum    map[string]QuorumConfig // cluster → its kayo_quorum
	vms       []priorVM
	vmAddress map[string]string // cluster/name → resource address
}

type priorVM struct {
	address, cluster, name, node string
}

func indexPrior(s *tfjson.State) prior {
	p := prior{vendor: map[string]string{}, clusterOf: map[string]string{}, nodes: map[string][]string{},
		quorum: map[string]QuorumConfig{}, vmAddress: map[string]string{}}
	walkState(s, func(r *tfjson.StateResource) {
		if r.Mode != tfjson.ManagedResourceMode {
			return
		}
		v := r.AttributeValues
		switch r.Type {
		case "kayo_host":
			n, _ := v["name"].(string)
			p.vendor[n], _ = v["processor_vendor"].(string)
		case "kayo_cluster":
			n, _ := v["name"].(string)
			p.nodes[n] = strings1(v["nodes"])
			for _, h := range p.nodes[n] {
				p.clusterOf[h] = n
			}
		case "kayo_quorum":
			c, _ := v["cluster_id"].(string)
			p.quorum[c] = quorumOf(v)
		case "kayo_virtual_machine":
			vm := priorVM{address: r.Address}
			vm.cluster, _ = v["cluster_id"].(string)
			vm.name, _ = v["name"].(string)
			vm.node, _ = v["current_node"].(string)
			p.vms = append(p.vms, vm)
			p.vmAddress[vm.cluster+"/"+vm.name] = r.Address
		}
	})
	sort.Slice(p.vms, func(i, j int) bool { return p.vms[i].name < p.vms[j].name })
	return p
}

func quorumOf(v map[string]any) QuorumConfig {
	q := QuorumConfig{}
	q.Type, _ = v["type"].(string)
	if d, _ := v["witness_disk"].(string); d != "" {
		q.Witness = d
	}
	if s, _ := v["witness_share"].(string); s != "" {
		q.Witness = s
	}
	return q
}

// clusters reports each cluster whose nodes or quorum change, with the
// failures tolerated before and after (internal/engine/quorum), and the
// VMs a node removal drains.
func (r *reviewer) clusters(clusters, quorums []*tfjson.ResourceChange) {
	type entry struct {
		ch     ClusterChange
		rc     *tfjson.ResourceChange
		nb, na []string // nodes before and after (nil: no cluster)
		qb, qa *QuorumConfig
	}
	byName := map[string]*entry{}
	var order []string
	get := func(name string) *entry {
		e := byName[name]
		if e == nil {
			e = &entry{ch: ClusterChange{Cluster: name}}
			byName[name] = e
			order = append(order, name)
			if nodes, ok := r.prior.nodes[name]; ok {
				e.nb, e.na = nodes, nodes
			}
		}
		return e
	}
	moduleCluster := map[string][]string{} // module address → clusters changed in it
	for _, rc := range clusters {
		before, _ := rc.Change.Before.(map[string]any)
		after, _ := rc.Change.After.(map[string]any)
		a := rc.Change.Actions
		name, _ := after["name"].(string)
		if name == "" {
			name, _ = before["name"].(string)
		}
		moduleCluster[rc.ModuleAddress] = append(moduleCluster[rc.ModuleAddress], name)
		if a.Replace() {
			// The old cluster goes, a new one (maybe renamed) comes.
			old, _ := before["name"].(string)
			eo := get(old)
			eo.rc, eo.ch.Address, eo.ch.Action = rc, rc.Address, "replaced"
			eo.nb, eo.na = strings1(before["nodes"]), nil
			if name != old {
				en := get(name)
				en.rc, en.ch.Address, en.ch.Action = rc, rc.Address, "created (replacing "+old+")"
				en.nb, en.na = nil, strings1(after["nodes"])
			} else {
				eo.ch.Action = "replaced"
				eo.na = strings1(after["nodes"])
			}
			continue
		}
		e := get(name)
		e.rc, e.ch.Address = rc, rc.Address
		switch {
		case a.Create():
			e.ch.Action, e.nb, e.na = "created", nil, strings1(after["nodes"])
		case a.Delete():
			e.ch.Action, e.nb, e.na = "destroyed", strings1(before["nodes"]), nil
		default:
			e.ch.Action, e.nb, e.na = "updated", strings1(before["nodes"]), strings1(after["nodes"])
		}
	}
	for _, rc := range quorums {
		before, _ := rc.Change.Before.(map[string]any)
		after, _ := rc.Change.After.(map[string]any)
		a := rc.Change.Actions
		c, _ := after["cluster_id"].(string)
		if c == "" {
			c, _ = before["cluster_id"].(string)
		}
		if c == "" && len(moduleCluster[rc.ModuleAddress]) == 1 {
			// A new cluster's id is unknown in the plan: the one cluster
			// created in the same module is the quorum's.
			c = moduleCluster[rc.ModuleAddress][0]
		}
		if c == "" {
			r.note("%s: cluster_id is known only at apply; its quorum is not judged", rc.Address)
			continue
		}
		e := get(c)
		if e.ch.Address == "" {
			e.ch.Address, e.ch.Action = rc.Address, "quorum "+actionWord(a)
		}
		if before != nil && !a.Create() {
			q := quorumOf(before)
			e.qb = &q
		}
		switch {
		case a.Delete() && !a.Replace():
			e.qa = &QuorumConfig{Type: "node_majority"}
		case after != nil:
			q := quorumOf(after)
			e.qa = &q
		}
	}
	for _, name := range order {
		e := byName[name]
		qb, qa := e.qb, e.qa
		if qb == nil || qa == nil {
			q, assumed := r.committedQuorum(name)
			if qb == nil {
				qb = &q
			}
			if qa == nil {
				qa = &q
			}
			e.ch.QuorumAssumed = assumed
		}
		added, removed := diff(e.nb, e.na)
		if e.nb == nil || e.na == nil {
			added, removed = []string{}, []string{}
		}
		e.ch.NodesAdded, e.ch.NodesRemoved = added, removed
		e.ch.FailuresBefore, e.ch.FailuresAfter = -1, -1
		if e.nb != nil {
			e.ch.QuorumBefore = qb.String()
			e.ch.FailuresBefore = failures(*qb, len(e.nb))
		}
		if e.na != nil {
			e.ch.QuorumAfter = qa.String()
			e.ch.FailuresAfter = failures(*qa, len(e.na))
		}
		if e.ch.QuorumBefore == e.ch.QuorumAfter && len(added) == 0 && len(removed) == 0 && e.nb != nil && e.na != nil &&
			!strings.HasPrefix(e.ch.Action, "replaced") {
			continue // nothing a reviewer weighs (an address, a timeout)
		}
		r.rep.Clusters = append(r.rep.Clusters, e.ch)
		if len(removed) > 0 && e.na != nil && e.rc != nil {
			after, _ := e.rc.Change.After.(map[string]any)
			r.drain(name, removed, "removal", after)
		}
	}
}

// committedQuorum is a cluster's quorum when the plan does not change it:
// the prior state's kayo_quorum, else the database's, else node_majority
// (assumed).
func (r *reviewer) committedQuorum(cluster string) (QuorumConfig, bool) {
	if q, ok := r.prior.quorum[cluster]; ok {
		return q, false
	}
	if r.src != nil {
		q, err := r.src.Quorum(r.ctx, cluster)
		if err == nil && q.Type != "" {
			return q, false
		}
		if err != nil {
			r.note("database: quorum of %s: %v", cluster, err)
		}
	}
	return QuorumConfig{Type: "node_majority"}, true
}

func actionWord(a tfjson.Actions) string {
	switch {
	case a.Replace():
		return "replaced"
	case a.Create():
		return "created"
	case a.Delete():
		return "destroyed"
	}
	return "updated"
}

func diff(before, after []string) (added, removed []string) {
	b, a := map[string]bool{}, map[string]bool{}
	for _, n := range before {
		b[n] = true
	}
	for _, n := range after {
		a[n] = true
		if !b[n] {
			added = append(added, n)
		}
	}
	for _, n := range before {
		if !a[n] {
			removed = append(removed, n)
		}
	}
	if added == nil {
		added = []string{}
	}
	if removed == nil {
		removed = []string{}
	}
	sort.Strings(added)
	sort.Strings(removed)
	return added, removed
}

// strings1 is a list or set of strings from JSON; nil when v is not one.
func strings1(v any) []string {
	xs, ok := v.([]any)
	if !ok {
		return nil
	}
	out := make([]string, 0, len(xs))
	for _, x := range xs {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// show renders a JSON value compactly ("null" for nil).
func show(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return x
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func showAfter(after map[string]any, unknown any, key string) string {
	if isUnknown(unknown, key) {
		return "(known after apply)"
	}
	return show(after[key])
}

func isUnknown(unknown any, key string) bool {
	m, _ := unknown.(map[string]any)
	b, _ := m[key].(bool)
	return b
}

// unknownKeys are the top-level attributes unknown (in whole or part).
func unknownKeys(unknown map[string]any) []string {
	var out []string
	for k, v := range unknown {
		if anyTrue(v) {
			out = append(out, k)
		}
	}
	return out
}

func anyTrue(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case []any:
		for _, e := range x {
			if anyTrue(e) {
				return true
			}
		}
	case map[string]any:
		for _, e := range x {
			if anyTrue(e) {
				return true
			}
		}
	}
	return false
}

// pathString renders a replace path such as ["vhd","type"] as vhd.type.
func pathString(p any) string {
	xs, ok := p.([]any)
	if !ok {
		return fmt.Sprint(p)
	}
	parts := make([]string, len(xs))
	for i, x := range xs {
		switch v := x.(type) {
		case string:
			parts[i] = v
		default:
			parts[i] = fmt.Sprint(v)
		}
	}
	return strings.Join(parts, ".")
}
