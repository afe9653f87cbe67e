// Package orphans finds the objects of a kayo cluster database that no
// Terraform or OpenTofu state holds — made by an apply that was killed
// after the provider created them but before the CLI saved them — and
// writes the `import {}` blocks (Terraform ≥ 1.5, OpenTofu ≥ 1.6) that
// adopt them. `kayoctl state orphans` is its command line.
package orphans

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
)

// Resource types of the provider (internal/provider/*_resource.go).
const (
	TypeHost    = "kayo_host"
	TypeCluster = "kayo_cluster"
	TypeQuorum  = "kayo_quorum"
	TypeVolume  = "kayo_shared_volume"
	TypeVM      = "kayo_virtual_machine"
)

// IsKayoType reports whether typ is a managed resource type of the provider.
func IsKayoType(typ string) bool {
	switch typ {
	case TypeHost, TypeCluster, TypeQuorum, TypeVolume, TypeVM:
		return true
	}
	return false
}

// Object is one object of the cluster database, as the resource that
// manages it sees it.
type Object struct {
	// Type is the resource type managing it.
	Type string
	// ID is its id attribute in a state, which is also an import ID the
	// resource's ImportState accepts: the host, cluster or (kayo_quorum)
	// cluster name, the volume UUID, CLUSTER/NAME of a VM.
	ID string
	// Name is the name attribute (volumes: the label), for addresses.
	Name string
	// Match are the attributes that identify it among a plan's creations:
	// the first must be known and equal, the others equal when known.
	Match [][2]string
	// About says what it is, for people.
	About string
	// Unsettled, when set, says why it cannot be imported yet (an
	// interrupted operation the next apply settles).
	Unsettled string
}

// List returns the objects of the cluster database (of cluster only,
// unless ""), by type and id. Quorums count only when a kayo_quorum set
// them: a cluster without one has an implicit node_majority.
func List(ctx context.Context, e *engine.Engine, cluster string) ([]Object, error) {
	var out []Object
	hosts, err := e.ListHosts(ctx)
	if err != nil {
		return nil, err
	}
	for _, h := range hosts {
		if cluster != "" && h.Cluster != cluster {
			continue
		}
		about := "host " + h.Name
		if h.Cluster != "" {
			about += ", node of cluster " + h.Cluster
		}
		out = append(out, Object{Type: TypeHost, ID: h.Name, Name: h.Name, Match: [][2]string{{"name", h.Name}}, About: about})
	}
	clusters, err := e.ListClusters(ctx)
	if err != nil {
		return nil, err
	}
	for _, c := range clusters {
		if cluster != "" && c.Name != cluster {
			continue
		}
		out = append(out, Object{Type: TypeCluster, ID: c.Name, Name: c.Name, Match: [][2]string{{"name", c.Name}},
			About: fmt.Sprintf("cluster %s of %d nodes", c.Name, len(c.Nodes))})
		q, err := e.GetQuorum(ctx, c.Name)
		if err != nil {
			return nil, fmt.Errorf("quorum of cluster %s: %w", c.Name, err)
		}
		if q.Managed {
			out = append(out, Object{Type: TypeQuorum, ID: c.Name, Name: c.Name, Match: [][2]string{{"cluster_id", c.Name}},
				About: fmt.Sprintf("quorum of cluster %s: %s", c.Name, q.Type)})
		}
	}
	vols, err := e.ListVolumes(ctx, cluster)
	if err != nil {
		return nil, err
	}
	for _, v := range vols {
		name := v.Label
		if name == "" {
			name = "volume_" + v.DriveLetter
		}
		out = append(out, Object{Type: TypeVolume, ID: v.ID, Name: name,
			Match: [][2]string{{"lun", v.LUN}, {"cluster_id", v.Cluster}, {"drive_letter", v.DriveLetter}, {"label", v.Label}},
			About: fmt.Sprintf("shared volume %s: (%s) of cluster %s on LUN %s", v.DriveLetter, v.Label, v.Cluster, v.LUN)})
	}
	vms, err := e.ListVMs(ctx, cluster)
	if err != nil {
		return nil, err
	}
	for _, v := range vms {
		o := Object{Type: TypeVM, ID: v.ID(), Name: v.Name, Match: [][2]string{{"name", v.Name}, {"cluster_id", v.Cluster}},
			About: fmt.Sprintf("VM %s of cluster %s, %s on %s", v.Name, v.Cluster, v.Status, v.Node)}
		if p := v.Pending; p != nil {
			o.Unsettled = fmt.Sprintf("its %s was interrupted (phase %s, process %s); the next apply or plan that "+
				"touches it finishes or rolls it back: run this command again afterwards", p.Op, p.Phase, p.Holder)
		}
		out = append(out, o)
	}
	sort.SliceStable(out, func(i, j int) bool { return typeRank(out[i].Type) < typeRank(out[j].Type) })
	return out, nil
}

// typeRank orders types as a configuration depends on them.
func typeRank(typ string) int {
	return strings.Index(TypeHost+TypeCluster+TypeQuorum+TypeVolume+TypeVM, typ)
}

// Orphan is an object no state holds, with the address to adopt it at.
type Orphan struct {
	Object
	// To is the resource address the import block adopts it at.
	To string
	// From says where To comes from: "plan" (the plan creates the same
	// object there), "state" (its siblings in the state are keyed by
	// name) or "guess" (an address to change to the configuration's).
	From string
}

// Find returns the objects no state holds, each with an address: the one
// a plan of states would create it at, else one its siblings in a state
// suggest, else a guess from its name.
func Find(objects []Object, states []*State) []Orphan {
	held := map[string]bool{}
	var all []Instance
	var creates []Instance
	for _, s := range states {
		for _, in := range s.Held {
			held[in.Type+"\x00"+in.ID()] = true
		}
		all = append(all, s.Held...)
		creates = append(creates, s.Creates...)
	}
	used := map[string]bool{}
	for _, in := range all {
		used[in.Address] = true
	}
	var out []Orphan
	for _, o := range objects {
		if held[o.Type+"\x00"+o.ID] {
			continue
		}
		orphan := Orphan{Object: o}
		if a := fromPlan(o, creates, used); a != "" {
			orphan.To, orphan.From = a, "plan"
		} else if a := fromSiblings(o, all); a != "" && !used[a] {
			orphan.To, orphan.From = a, "state"
		} else {
			orphan.To, orphan.From = guess(o, used), "guess"
		}
		if o.Unsettled == "" {
			used[orphan.To] = true
		}
		out = append(out, orphan)
	}
	return out
}

// fromPlan is the address of the one planned creation that is o.
func fromPlan(o Object, creates []Instance, used map[string]bool) string {
	found := ""
	for _, c := range creates {
		if c.Type != o.Type || used[c.Address] || !matches(o.Match, c.Values) {
			continue
		}
		if found != "" {
			return "" // two candidates: no address is sure
		}
		found = c.Address
	}
	return found
}

func matches(match [][2]string, values map[string]any) bool {
	for i, m := range match {
		v, known := values[m[0]].(string)
		if !known {
			if i == 0 {
				return false
			}
			continue
		}
		if v != m[1] {
			return false
		}
	}
	return len(match) > 0
}

// fromSiblings: when the state holds one resource of o's type whose
// instances are all keyed by their name (for_each over names), o belongs
// beside them under its own name.
func fromSiblings(o Object, held []Instance) string {
	type res struct{ module, name string }
	ok := map[res]bool{}
	for _, in := range held {
		if in.Type != o.Type {
			continue
		}
		r := res{in.Module, in.Name}
		k, isString := in.Key.(string)
		byName := isString && k == str(in.Values["name"])
		if prev, seen := ok[r]; seen {
			ok[r] = prev && byName
		} else {
			ok[r] = byName
		}
	}
	var found []res
	for r, byName := range ok {
		if byName {
			found = append(found, r)
		}
	}
	if len(found) != 1 || o.Name == "" {
		return ""
	}
	r := found[0]
	a := o.Type + "." + r.name + keySuffix(o.Name)
	if r.module != "" {
		a = r.module + "." + a
	}
	return a
}

// guess is an address made of o's name, unused so far.
func guess(o Object, used map[string]bool) string {
	var b strings.Builder
	for _, r := range strings.ToLower(o.Name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	label := b.String()
	if label == "" || label[0] >= '0' && label[0] <= '9' {
		label = "r_" + label
	}
	a := o.Type + "." + label
	for i := 2; used[a]; i++ {
		a = fmt.Sprintf("%s.%s_%d", o.Type, label, i)
	}
	return a
}

// ImportBlock is the import block adopting id at address to.
func ImportBlock(to, id string) string {
	return fmt.Sprintf("import {\n  to = %s\n  id = %s\n}\n", to, hclString(id))
}

// hclString quotes s as an HCL string literal.
func hclString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`, "\t", `\t`, "${", "$${", "%{", "%%{")
	return `"` + r.Replace(s) + `"`
}

// WriteHCL writes the orphans as a .tf file: a comment per object, the
// import blocks of those that can be imported now.
func WriteHCL(b *strings.Builder, orphans []Orphan, files []string) {
	ready := 0
	for _, o := range orphans {
		if o.Unsettled == "" {
			ready++
		}
	}
	fmt.Fprintf(b, "# kayoctl state orphans: %d object%s of the cluster database in no state (%s).\n",
		len(orphans), plural(len(orphans)), strings.Join(files, ", "))
	if len(orphans) == 0 {
		return
	}
	if ready > 0 {
		b.WriteString("# Save this as a .tf file of the configuration and run apply to adopt them\n" +
			"# (import blocks: Terraform >= 1.5, OpenTofu >= 1.6).\n")
	}
	for _, o := range orphans {
		fmt.Fprintf(b, "\n# %s %s: %s\n", o.Type, o.ID, o.About)
		if o.Unsettled != "" {
			fmt.Fprintf(b, "# Not importable yet: %s.\n", o.Unsettled)
			continue
		}
		if o.From == "guess" {
			b.WriteString("# The address is a guess from its name: change `to` to its address in your configuration.\n")
		}
		b.WriteString(ImportBlock(o.To, o.ID))
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
