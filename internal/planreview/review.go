package planreview

import (
	"context"
	"fmt"
	"sort"
	"strings"

	tfjson "github.com/hashicorp/terraform-json"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/quorum"
)

// Source is the cluster database, asked what the plan alone cannot tell:
// where the scheduler puts a VM and how it moves, which VMs a drain moves
// where, the quorum of a cluster the configuration does not manage.
// cmd/kayoctl implements it with the engine's read-only plan calls.
type Source interface {
	// PlanVM judges a VM's planned values (the plan's "after" object) as
	// `terraform plan` did.
	PlanVM(ctx context.Context, after map[string]any) (VMPlan, error)
	// PlanDrain lists the moves draining hosts of cluster makes.
	PlanDrain(ctx context.Context, cluster string, hosts []string, reason string) ([]Move, error)
	// PlanNodeRemoval lists the moves of a cluster update (its planned
	// values) that removes nodes.
	PlanNodeRemoval(ctx context.Context, after map[string]any) ([]Move, error)
	// Quorum is the cluster's committed quorum configuration.
	Quorum(ctx context.Context, cluster string) (QuorumConfig, error)
}

// VMPlan is the database's verdict on one VM update.
type VMPlan struct {
	Move                bool
	From, To, Type, Why string
	// Pinned: To is the owner_node pin; otherwise the scheduler's choice
	// today, which apply may revise.
	Pinned bool
}

// Move is one VM a drain moves.
type Move struct {
	VM, From, To, Type, Why string
}

// QuorumConfig is a cluster's quorum type and witness ("" for none).
type QuorumConfig struct {
	Type, Witness string
}

// Report is what a reviewer must know about a plan.
type Report struct {
	// Database: "not consulted", "consulted", or why it could not be.
	Database     string          `json:"database"`
	Counts       Counts          `json:"counts"`
	Migrations   []Migration     `json:"migrations"`
	Replacements []Replacement   `json:"replacements"`
	Volumes      []VolumeChange  `json:"volumes"`
	Clusters     []ClusterChange `json:"clusters"`
	Maintenance  []Maintenance   `json:"maintenance"`
	Destroyed    []Destroyed     `json:"destroyed"`
	Notes        []string        `json:"notes,omitempty"`
	// Denied is filled by Gate: the denied categories present.
	Denied []Denial `json:"denied,omitempty"`
}

// Counts are the kayo resource changes of the plan by action.
type Counts struct {
	Create  int `json:"create"`
	Update  int `json:"update"`
	Replace int `json:"replace"`
	Delete  int `json:"delete"`
}

// Migration is a VM that moves to another node.
type Migration struct {
	Address string `json:"address"`
	VM      string `json:"vm"`
	Cluster string `json:"cluster"`
	From    string `json:"from"`
	// To is "" when apply decides; with DecidedAtApply and a To, To is
	// the scheduler's choice today.
	To string `json:"to"`
	// Type: live, quick, offline, or "" when apply decides.
	Type           string `json:"type"`
	Why            string `json:"why,omitempty"`
	Reason         string `json:"reason"`
	DecidedAtApply bool   `json:"decided_at_apply"`
}

// Replacement is a resource destroyed and created again.
type Replacement struct {
	Address string   `json:"address"`
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Because []string `json:"because"`
	Risk    string   `json:"risk"`
}

// VolumeChange is a shared volume formatted or destroyed.
type VolumeChange struct {
	Address string `json:"address"`
	Cluster string `json:"cluster"`
	LUN     string `json:"lun"`
	Letter  string `json:"drive_letter"`
	Label   string `json:"label,omitempty"`
	// Action: formatted (new), reformatted (replaced), destroyed.
	Action string `json:"action"`
	Risk   string `json:"risk"`
}

// ClusterChange is a cluster whose nodes or quorum change.
type ClusterChange struct {
	Address      string   `json:"address"`
	Cluster      string   `json:"cluster"`
	Action       string   `json:"action"`
	NodesAdded   []string `json:"nodes_added"`
	NodesRemoved []string `json:"nodes_removed"`
	QuorumBefore string   `json:"quorum_before"`
	QuorumAfter  string   `json:"quorum_after"`
	// Failures tolerated before and after; -1 where there is no cluster
	// (created, destroyed) or the figures cannot be known.
	FailuresBefore int `json:"failures_tolerated_before"`
	FailuresAfter  int `json:"failures_tolerated_after"`
	// QuorumAssumed: neither the plan nor the database said the quorum;
	// node_majority (a cluster's quorum without kayo_quorum) was assumed.
	QuorumAssumed bool `json:"quorum_assumed,omitempty"`
}

// Maintenance is a host entering (or leaving) maintenance.
type Maintenance struct {
	Address  string `json:"address"`
	Host     string `json:"host"`
	Cluster  string `json:"cluster"`
	Entering bool   `json:"entering"`
	// Drains are the VMs it moves away (also in Migrations).
	Drains []string `json:"drains"`
}

// Destroyed is a resource the plan deletes without recreating.
type Destroyed struct {
	Address string `json:"address"`
	Type    string `json:"type"`
	Name    string `json:"name"`
	Risk    string `json:"risk,omitempty"`
}

// Review reads plan p; src may be nil (no database: what the plan and its
// prior state tell). A failing Source is noted and the review goes on from
// the plan alone.
func Review(ctx context.Context, p *tfjson.Plan, src Source) Report {
	r := &reviewer{ctx: ctx, src: src, prior: indexPrior(p.PriorState), seen: map[string]bool{}}
	r.rep.Database = "not consulted"
	if src != nil {
		r.rep.Database = "consulted"
	}
	var vms, hosts, clusters, quorums, volumes []*tfjson.ResourceChange
	for _, rc := range p.ResourceChanges {
		if rc.Mode != tfjson.ManagedResourceMode || !isKayo(rc.Type) || rc.Change == nil {
			continue
		}
		a := rc.Change.Actions
		switch {
		case a.Replace():
			r.rep.Counts.Replace++
			r.replacement(rc)
		case a.Create():
			r.rep.Counts.Create++
		case a.Update():
			r.rep.Counts.Update++
		case a.Delete():
			r.rep.Counts.Delete++
			r.destroyed(rc)
		default:
			continue
		}
		switch rc.Type {
		case "kayo_virtual_machine":
			vms = append(vms, rc)
		case "kayo_host":
			hosts = append(hosts, rc)
		case "kayo_cluster":
			clusters = append(clusters, rc)
		case "kayo_quorum":
			quorums = append(quorums, rc)
		case "kayo_shared_volume":
			volumes = append(volumes, rc)
		}
	}
	for _, rc := range vms {
		r.vm(rc)
	}
	for _, rc := range hosts {
		r.host(rc)
	}
	r.clusters(clusters, quorums)
	for _, rc := range volumes {
		r.volume(rc)
	}
	r.rep.sort()
	return r.rep
}

type reviewer struct {
	ctx   context.Context
	src   Source
	prior prior
	rep   Report
	// seen: VMs (cluster/name) already in Migrations.
	seen map[string]bool
}

func (r *reviewer) note(format string, a ...any) {
	r.rep.Notes = append(r.rep.Notes, fmt.Sprintf(format, a...))
}

func (r *reviewer) replacement(rc *tfjson.ResourceChange) {
	var because []string
	for _, p := range rc.Change.ReplacePaths {
		because = append(because, pathString(p))
	}
	before, _ := rc.Change.Before.(map[string]any)
	after, _ := rc.Change.After.(map[string]any)
	for i, b := range because {
		if v, ok := before[b]; ok && !strings.Contains(b, ".") {
			because[i] = fmt.Sprintf("%s: %s → %s", b, show(v), showAfter(after, rc.Change.AfterUnknown, b))
		}
	}
	r.rep.Replacements = append(r.rep.Replacements, Replacement{
		Address: rc.Address, Type: rc.Type, Name: displayName(rc.Type, before), Because: because, Risk: replaceRisk(rc.Type)})
}

func (r *reviewer) destroyed(rc *tfjson.ResourceChange) {
	before, _ := rc.Change.Before.(map[string]any)
	r.rep.Destroyed = append(r.rep.Destroyed, Destroyed{
		Address: rc.Address, Type: rc.Type, Name: displayName(rc.Type, before), Risk: destroyRisk(rc.Type, before)})
}

func replaceRisk(typ string) string {
	switch typ {
	case "kayo_virtual_machine":
		return "data loss: the VM is destroyed with its VHD and created empty"
	case "kayo_shared_volume":
		return "data loss: the volume is formatted again; every file on it is lost"
	case "kayo_cluster":
		return "the cluster is dissolved and formed again"
	case "kayo_host":
		return "the host is unregistered and registered again"
	}
	return ""
}

func destroyRisk(typ string, before map[string]any) string {
	switch typ {
	case "kayo_virtual_machine":
		return "data loss: the VM and its VHD are deleted"
	case "kayo_shared_volume":
		if b, _ := before["force_destroy"].(bool); b {
			return "data loss: force_destroy deletes every file on the volume"
		}
		return "apply refuses it while files remain on it (force_destroy is false)"
	case "kayo_quorum":
		return "the cluster returns to node_majority"
	case "kayo_cluster":
		return "the cluster is dissolved"
	}
	return ""
}

// displayName is the name a person knows a resource by.
func displayName(typ string, v map[string]any) string {
	switch typ {
	case "kayo_shared_volume":
		l, _ := v["drive_letter"].(string)
		lun, _ := v["lun"].(string)
		if l != "" {
			return l + ": (" + lun + ")"
		}
		return lun
	case "kayo_quorum":
		c, _ := v["cluster_id"].(string)
		return c
	}
	n, _ := v["name"].(string)
	return n
}

func (r *reviewer) vm(rc *tfjson.ResourceChange) {
	a := rc.Change.Actions
	if !a.Update() {
		return
	}
	before, _ := rc.Change.Before.(map[string]any)
	after, _ := rc.Change.After.(map[string]any)
	unknown, _ := rc.Change.AfterUnknown.(map[string]any)
	name, _ := before["name"].(string)
	cluster, _ := before["cluster_id"].(string)
	from, _ := before["current_node"].(string)
	m := Migration{Address: rc.Address, VM: name, Cluster: cluster, From: from, Reason: vmReason(before, after)}
	if r.src != nil && onlyComputedUnknown(unknown) {
		vp, err := r.src.PlanVM(r.ctx, after)
		if err == nil {
			if !vp.Move {
				return
			}
			m.From, m.To, m.Type, m.Why, m.DecidedAtApply = vp.From, vp.To, vp.Type, vp.Why, !vp.Pinned
			r.addMigration(m)
			return
		}
		r.note("database: VM %s: %v (judged from the plan alone)", name, err)
	}
	if isUnknown(unknown, "current_node") {
		if !placementChanged(before, after) {
			return
		}
		m.DecidedAtApply = true
		r.addMigration(m)
		return
	}
	to, _ := after["current_node"].(string)
	if to == "" || to == from {
		return
	}
	m.To = to
	m.Type, m.Why = r.guessType(before, after, from, to)
	r.addMigration(m)
}

// onlyComputedUnknown: the unknowns of a VM plan are values the engine
// computes, so the configuration is fully known.
func onlyComputedUnknown(unknown map[string]any) bool {
	for _, k := range unknownKeys(unknown) {
		switch k {
		case "current_node", "status", "status_reason", "last_migration", "vhd_path", "config_path", "max_failures", "network_adapters":
		default:
			return false
		}
	}
	return true
}

func (r *reviewer) addMigration(m Migration) {
	key := m.Cluster + "/" + m.VM
	if r.seen[key] {
		return
	}
	r.seen[key] = true
	r.rep.Migrations = append(r.rep.Migrations, m)
}

// vmReason says what in the configuration moves the VM.
func vmReason(before, after map[string]any) string {
	b, a := show(before["owner_node"]), show(after["owner_node"])
	switch {
	case b != a:
		return fmt.Sprintf("owner_node %s → %s", b, a)
	case show(before["possible_owners"]) != show(after["possible_owners"]):
		return "possible_owners changed"
	case show(before["current_node"]) != a && a != "null":
		return "back to its owner_node"
	}
	return "placement changed"
}

// placementChanged: an attribute the scheduler places by changes.
func placementChanged(before, after map[string]any) bool {
	for _, k := range []string{"owner_node", "preferred_owners", "possible_owners", "anti_affinity_class", "anti_affinity_mode", "memory_mb"} {
		if show(before[k]) != show(after[k]) {
			return true
		}
	}
	return false
}

// guessType is the plan-only rule of internal/engine's migrations: an off
// VM changes owner offline; live needs the same processor vendor on both
// nodes, else quick.
func (r *reviewer) guessType(before, after map[string]any, from, to string) (typ, why string) {
	if s, _ := after["state"].(string); s == "off" {
		return "offline", ""
	}
	if s, _ := before["status"].(string); s != "" && s != "running" {
		return "offline", "the VM is " + s
	}
	if m, _ := after["migration"].(string); m == "quick" {
		return "quick", "migration = \"quick\""
	}
	vf, okf := r.prior.vendor[from]
	vt, okt := r.prior.vendor[to]
	switch {
	case okf && okt && vf != vt:
		return "quick", fmt.Sprintf("processor vendors differ (%s → %s)", vf, vt)
	case okf && okt:
		return "live", ""
	}
	return "live", "assumed: the hosts are not in this configuration"
}

func (r *reviewer) host(rc *tfjson.ResourceChange) {
	if !rc.Change.Actions.Update() {
		return
	}
	before, _ := rc.Change.Before.(map[string]any)
	after, _ := rc.Change.After.(map[string]any)
	mb, _ := before["maintenance"].(bool)
	ma, ok := after["maintenance"].(bool)
	if !ok || ma == mb {
		return
	}
	name, _ := before["name"].(string)
	cluster := r.prior.clusterOf[name]
	mt := Maintenance{Address: rc.Address, Host: name, Cluster: cluster, Entering: ma, Drains: []string{}}
	if ma {
		for _, m := range r.drain(cluster, []string{name}, "maintenance", nil) {
			mt.Drains = append(mt.Drains, m.VM)
		}
	}
	r.rep.Maintenance = append(r.rep.Maintenance, mt)
}

// drain lists the VMs leaving hosts: the database's moves when it answers,
// else the VMs the prior state has on those hosts, their targets decided at
// apply. Each becomes a Migration.
func (r *reviewer) drain(cluster string, hosts []string, reason string, clusterAfter map[string]any) []Move {
	label := reason + " of " + strings.Join(hosts, ", ")
	if r.src != nil && cluster != "" {
		var moves []Move
		var err error
		if clusterAfter != nil {
			moves, err = r.src.PlanNodeRemoval(r.ctx, clusterAfter)
		} else {
			moves, err = r.src.PlanDrain(r.ctx, cluster, hosts, reason)
		}
		if err == nil {
			for _, m := range moves {
				r.addMigration(Migration{Address: r.prior.vmAddress[cluster+"/"+m.VM], VM: m.VM, Cluster: cluster,
					From: m.From, To: m.To, Type: m.Type, Why: m.Why, Reason: label, DecidedAtApply: true})
			}
			return moves
		}
		r.note("database: %s: %v (judged from the plan alone)", label, err)
	}
	var moves []Move
	on := map[string]bool{}
	for _, h := range hosts {
		on[h] = true
	}
	for _, vm := range r.prior.vms {
		if vm.cluster == cluster && on[vm.node] {
			moves = append(moves, Move{VM: vm.name, From: vm.node})
			r.addMigration(Migration{Address: vm.address, VM: vm.name, Cluster: cluster, From: vm.node, Reason: label, DecidedAtApply: true})
		}
	}
	return moves
}

func (r *reviewer) volume(rc *tfjson.ResourceChange) {
	a := rc.Change.Actions
	before, _ := rc.Change.Before.(map[string]any)
	after, _ := rc.Change.After.(map[string]any)
	v := after
	var action, risk string
	switch {
	case a.Replace():
		action, risk = "reformatted", "data loss: every file on the volume is lost"
		v = before
	case a.Create():
		action, risk = "formatted", "a new volume on LUN "+show(after["lun"])
		if f, _ := after["force_format"].(bool); f {
			risk = "force_format: whatever LUN " + show(after["lun"]) + " holds is overwritten"
		}
	case a.Delete():
		action, risk = "destroyed", destroyRisk(rc.Type, before)
		v = before
	default:
		return
	}
	c, _ := v["cluster_id"].(string)
	lun, _ := v["lun"].(string)
	l, _ := v["drive_letter"].(string)
	label, _ := v["label"].(string)
	r.rep.Volumes = append(r.rep.Volumes, VolumeChange{Address: rc.Address, Cluster: c, LUN: lun, Letter: l, Label: label, Action: action, Risk: risk})
}

func (rep *Report) sort() {
	sort.SliceStable(rep.Migrations, func(i, j int) bool {
		a, b := rep.Migrations[i], rep.Migrations[j]
		if a.Cluster != b.Cluster {
			return a.Cluster < b.Cluster
		}
		return a.VM < b.VM
	})
	sort.SliceStable(rep.Replacements, func(i, j int) bool { return rep.Replacements[i].Address < rep.Replacements[j].Address })
	sort.SliceStable(rep.Volumes, func(i, j int) bool { return rep.Volumes[i].Address < rep.Volumes[j].Address })
	sort.SliceStable(rep.Clusters, func(i, j int) bool { return rep.Clusters[i].Address < rep.Clusters[j].Address })
	sort.SliceStable(rep.Maintenance, func(i, j int) bool { return rep.Maintenance[i].Address < rep.Maintenance[j].Address })
	sort.SliceStable(rep.Destroyed, func(i, j int) bool { return rep.Destroyed[i].Address < rep.Destroyed[j].Address })
	// Empty lists, not null, in the JSON.
	if rep.Migrations == nil {
		rep.Migrations = []Migration{}
	}
	if rep.Replacements == nil {
		rep.Replacements = []Replacement{}
	}
	if rep.Volumes == nil {
		rep.Volumes = []VolumeChange{}
	}
	if rep.Clusters == nil {
		rep.Clusters = []ClusterChange{}
	}
	if rep.Maintenance == nil {
		rep.Maintenance = []Maintenance{}
	}
	if rep.Destroyed == nil {
		rep.Destroyed = []Destroyed{}
	}
}

// failures is quorum.Compute's FailuresTolerated, -1 when the figures do
// not exist (no nodes, a witness missing).
func failures(q QuorumConfig, nodes int) int {
	f, err := quorum.Compute(quorum.Config{Type: quorum.Type(q.Type), Nodes: nodes, Witness: q.Witness != ""})
	if err != nil {
		return -1
	}
	return f.FailuresTolerated
}

func (q QuorumConfig) String() string {
	if q.Type == "" {
		return ""
	}
	if q.Witness != "" {
		return q.Type + " (witness " + q.Witness + ")"
	}
	return q.Type
}
