package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/placement"
)

// statusJSON is `kayoctl status --json`.
type statusJSON struct {
	Clusters []clusterJSON `json:"clusters"`
	// Unclustered are registered hosts that are no node of any cluster.
	Unclustered []nodeJSON `json:"unclustered_hosts"`
}

type clusterJSON struct {
	Name                    string      `json:"name"`
	StaticAddress           string      `json:"static_address"`
	HeartbeatTimeoutSeconds int         `json:"heartbeat_timeout_seconds"`
	Quorum                  quorumJSON  `json:"quorum"`
	Leader                  *leaderJSON `json:"leader"`
	Nodes                   []nodeJSON  `json:"nodes"`
}

type quorumJSON struct {
	Cluster      string `json:"cluster"`
	Type         string `json:"type"`
	WitnessDisk  string `json:"witness_disk,omitempty"`
	WitnessShare string `json:"witness_share,omitempty"`
	// Managed: set by a kayo_quorum (else the implicit node_majority).
	Managed bool `json:"managed"`
	engine.QuorumStatus
}

type leaderJSON struct {
	Node    string    `json:"node"`
	Term    int64     `json:"term"`
	Expires time.Time `json:"expires"`
	Valid   bool      `json:"valid"`
}

type nodeJSON struct {
	Name          string     `json:"name"`
	State         string     `json:"state"`
	DownReason    string     `json:"down_reason,omitempty"`
	Votes         int        `json:"votes"`
	MemoryMB      int64      `json:"memory_mb"`
	LastHeartbeat *time.Time `json:"last_heartbeat"`
	// Cluster nodes only: memory the node's VMs hold, what is left for
	// VMs after the host reserve, and the VMs it owns (by name).
	// Accel: the accelerator of the node's QEMU VMs (kvm or tcg), as its
	// agent reports it; empty with no QEMU executor.
	Accel        string       `json:"accel,omitempty"`
	MemoryUsedMB int64        `json:"memory_used_mb"`
	MemoryFreeMB int64        `json:"memory_free_mb"`
	VMs          []nodeVMJSON `json:"vms"`
}

// nodeVMJSON is one VM a node owns.
type nodeVMJSON struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	// Pinned: its owner_node is this node; Away: it is pinned elsewhere.
	Pinned bool   `json:"pinned,omitempty"`
	Away   string `json:"pinned_to,omitempty"`
	Token  int64  `json:"token"`
}

func toQuorumJSON(q engine.Quorum) quorumJSON {
	return quorumJSON{Cluster: q.Cluster, Type: q.Type, WitnessDisk: q.WitnessDisk, WitnessShare: q.WitnessShare,
		Managed: q.Managed, QuorumStatus: q.Status}
}

func nodeOf(h engine.Host, hbs map[string]engine.Heartbeat, votes int) nodeJSON {
	n := nodeJSON{Name: h.Name, State: h.State(), DownReason: h.DownReason, MemoryMB: h.MemoryMB}
	if !h.Down {
		n.Votes = votes
	}
	if hb, ok := hbs[h.Name]; ok {
		t := hb.Time
		n.LastHeartbeat = &t
	}
	return n
}

// collectStatus reads everything status shows in a few short reads.
func collectStatus(ctx context.Context, e *engine.Engine, only string) (statusJSON, error) {
	out := statusJSON{Clusters: []clusterJSON{}, Unclustered: []nodeJSON{}}
	clusters, err := e.ListClusters(ctx)
	if err != nil {
		return out, err
	}
	hosts, err := e.ListHosts(ctx)
	if err != nil {
		return out, err
	}
	hbs, err := e.Heartbeats(ctx)
	if err != nil {
		return out, err
	}
	beats, err := e.QEMUAgents(ctx)
	if err != nil {
		return out, err
	}
	byName := map[string]engine.Host{}
	for _, h := range hosts {
		byName[h.Name] = h
		if h.Cluster == "" && only == "" {
			out.Unclustered = append(out.Unclustered, nodeOf(h, hbs, 0))
		}
	}
	found := false
	for _, c := range clusters {
		if only != "" && c.Name != only {
			continue
		}
		found = true
		q, err := e.GetQuorum(ctx, c.Name)
		if err != nil {
			return out, err
		}
		cj := clusterJSON{Name: c.Name, StaticAddress: c.StaticAddress, HeartbeatTimeoutSeconds: c.HeartbeatTimeoutSeconds,
			Quorum: toQuorumJSON(q), Nodes: []nodeJSON{}}
		if l, err := e.Leader(ctx, c.Name); err == nil {
			cj.Leader = &leaderJSON{Node: l.Holder, Term: l.Term, Expires: l.Expires, Valid: l.Live}
		} else if !errors.Is(err, engine.ErrNotFound) {
			return out, err
		}
		vms, err := e.ObservedVMs(ctx, c.Name)
		if err != nil {
			return out, err
		}
		for _, n := range c.Nodes {
			h, ok := byName[n]
			if !ok {
				h = engine.Host{HostSpec: engine.HostSpec{Name: n}, Down: true, DownReason: "not registered"}
			}
			nj := nodeOf(h, hbs, q.Status.NodeVotes)
			if b, ok := beats[n]; ok && b.Stopped.IsZero() {
				nj.Accel = b.Accel
			}
			nj.VMs = []nodeVMJSON{}
			for _, vm := range vms {
				if vm.Node != n {
					continue
				}
				nj.MemoryUsedMB += vm.MemoryMB
				v := nodeVMJSON{Name: vm.Name, Status: vm.Status, Pinned: vm.OwnerNode == n, Token: vm.Token}
				if vm.OwnerNode != "" && vm.OwnerNode != n {
					v.Away = vm.OwnerNode
				}
				nj.VMs = append(nj.VMs, v)
			}
			nj.MemoryFreeMB = max(h.MemoryMB-placement.DefaultReservedMB-nj.MemoryUsedMB, 0)
			cj.Nodes = append(cj.Nodes, nj)
		}
		out.Clusters = append(out.Clusters, cj)
	}
	if only != "" && !found {
		return out, fmt.Errorf("cluster %q: %w", only, engine.ErrNotFound)
	}
	return out, nil
}

func (c *cli) status(args []string) error {
	fs := c.newFlagSet("status")
	asJSON := fs.Bool("json", false, "print JSON")
	only := fs.String("cluster", "", "show only this cluster")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	e, err := c.open()
	if err != nil {
		return err
	}
	defer closeEngine(e)
	st, err := collectStatus(context.Background(), e, *only)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(c.stdout, st)
	}
	var b bytes.Buffer
	printStatus(&b, st, colorOK(c.stdout, c.getenv), time.Now())
	return c.emit(&b)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeTable writes rows (the first is the header) in columns three
// spaces apart after indent. Columns in right are right-aligned. paint, if
// not nil, decorates a padded cell of a body row; colour codes are added
// after padding so they do not count as width.
func writeTable(w *bytes.Buffer, indent string, rows [][]string, right map[int]bool, paint func(row, col int, padded string) string) {
	if len(rows) == 0 {
		return
	}
	widths := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, cell := range r {
			widths[i] = max(widths[i], len(cell))
		}
	}
	for ri, r := range rows {
		var line strings.Builder
		line.WriteString(indent)
		for i, cell := range r {
			pad := strings.Repeat(" ", widths[i]-len(cell))
			padded := cell + pad
			if right[i] {
				padded = pad + cell
			}
			if ri > 0 && paint != nil {
				padded = paint(ri-1, i, padded)
			}
			line.WriteString(padded)
			if i < len(r)-1 {
				line.WriteString("   ")
			}
		}
		w.WriteString(strings.TrimRight(line.String(), " "))
		w.WriteString("\n")
	}
}

// colorOK: colour only on a terminal, and never with NO_COLOR set.
func colorOK(w io.Writer, getenv func(string) string) bool {
	if getenv("NO_COLOR") != "" || getenv("TERM") == "dumb" {
		return false
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

type painter bool

func (p painter) paint(code, s string) string {
	if !p {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

func (p painter) state(s string) string {
	switch s {
	case engine.HostUp:
		return p.paint("32", s)
	case engine.HostDown:
		return p.paint("31", s)
	default:
		return p.paint("33", s)
	}
}

func ago(t *time.Time, now time.Time) string {
	if t == nil {
		return "never (no agent)"
	}
	d := now.Sub(*t)
	if d < 0 {
		d = 0
	}
	return d.Round(100*time.Millisecond).String() + " ago"
}

// printStatus writes the human form. Colour codes go outside the
// tabwriter's cells (they would count as width), so each cell is padded
// first and painted afterwards.
func printStatus(w *bytes.Buffer, st statusJSON, colour bool, now time.Time) {
	p := painter(colour)
	if len(st.Clusters) == 0 && len(st.Unclustered) == 0 {
		w.WriteString("No hosts or clusters in this data directory.\n")
		return
	}
	for i, c := range st.Clusters {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "Cluster %s at %s (heartbeat timeout %ds)\n", p.paint("1", c.Name), c.StaticAddress, c.HeartbeatTimeoutSeconds)
		q := c.Quorum
		verdict := p.paint("32", "has quorum")
		if !q.HasQuorum {
			verdict = p.paint("1;31", "QUORUM LOST")
		}
		typ := q.Type
		if !q.Managed {
			typ += " (implicit: no kayo_quorum)"
		}
		if wit := q.WitnessDisk + q.WitnessShare; wit != "" {
			typ += ", witness " + wit
		}
		fmt.Fprintf(w, "  Quorum  %s\n", typ)
		fmt.Fprintf(w, "          %d of %d votes present, %d needed, tolerates %d node failure%s: %s\n",
			q.VotesPresent, q.TotalVotes, q.VotesNeeded, q.FailuresTolerated, plural(q.FailuresTolerated), verdict)
		switch {
		case c.Leader == nil:
			fmt.Fprintf(w, "  Leader  none (no agent has run)\n")
		case c.Leader.Valid:
			fmt.Fprintf(w, "  Leader  %s (term %d)\n", c.Leader.Node, c.Leader.Term)
		default:
			fmt.Fprintf(w, "  Leader  none (lease of %s, term %d, expired %s ago)\n", c.Leader.Node, c.Leader.Term,
				now.Sub(c.Leader.Expires).Round(time.Second))
		}
		fmt.Fprintln(w)
		printNodes(w, p, c.Nodes, now)
	}
	if len(st.Unclustered) > 0 {
		if len(st.Clusters) > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w, "Hosts in no cluster")
		fmt.Fprintln(w)
		printNodes(w, p, st.Unclustered, now)
	}
}

func printNodes(w *bytes.Buffer, p painter, nodes []nodeJSON, now time.Time) {
	rows := [][]string{{"NODE", "STATE", "VOTES", "MEMORY", "USED", "FREE", "LAST HEARTBEAT", "VMS"}}
	for _, n := range nodes {
		state := n.State
		if n.DownReason != "" {
			state += " (" + n.DownReason + ")"
		}
		used, free, vms := "-", "-", ""
		if n.VMs != nil {
			used, free = fmt.Sprintf("%d MB", n.MemoryUsedMB), fmt.Sprintf("%d MB", n.MemoryFreeMB)
			names := make([]string, len(n.VMs))
			for i, v := range n.VMs {
				names[i] = v.Name
				switch {
				case v.Pinned:
					names[i] += " (pinned)"
				case v.Away != "":
					names[i] += " (pinned to " + v.Away + ")"
				}
				if v.Status != engine.VMRunning {
					names[i] += " " + v.Status
				}
			}
			vms = strings.Join(names, ", ")
			if vms == "" {
				vms = "none"
			}
		}
		rows = append(rows, []string{n.Name, state, fmt.Sprint(n.Votes), fmt.Sprintf("%d MB", n.MemoryMB), used, free,
			ago(n.LastHeartbeat, now), vms})
	}
	// QEMU's accelerator per node, when an agent runs QEMU VMs there.
	if slices.ContainsFunc(nodes, func(n nodeJSON) bool { return n.Accel != "" }) {
		rows[0] = append(rows[0], "ACCEL")
		for i, n := range nodes {
			a := n.Accel
			if a == "" {
				a = "-"
			}
			rows[i+1] = append(rows[i+1], a)
		}
	}
	writeTable(w, "  ", rows, map[int]bool{2: true, 3: true, 4: true, 5: true}, func(row, col int, padded string) string {
		if col != 1 {
			return padded
		}
		st := nodes[row].State
		return p.state(st) + padded[len(st):]
	})
}

func (c *cli) quorum(args []string) error {
	fs := c.newFlagSet("quorum")
	asJSON := fs.Bool("json", false, "print JSON")
	only := fs.String("cluster", "", "show only this cluster")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	e, err := c.open()
	if err != nil {
		return err
	}
	defer closeEngine(e)
	ctx := context.Background()
	clusters, err := e.ListClusters(ctx)
	if err != nil {
		return err
	}
	out := []quorumJSON{}
	for _, cl := range clusters {
		if *only != "" && cl.Name != *only {
			continue
		}
		q, err := e.GetQuorum(ctx, cl.Name)
		if err != nil {
			return err
		}
		out = append(out, toQuorumJSON(q))
	}
	if *only != "" && len(out) == 0 {
		return fmt.Errorf("cluster %q: %w", *only, engine.ErrNotFound)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Cluster < out[j].Cluster })
	if *asJSON {
		return writeJSON(c.stdout, out)
	}
	var b bytes.Buffer
	if len(out) == 0 {
		b.WriteString("No clusters in this data directory.\n")
		return c.emit(&b)
	}
	rows := [][]string{{"CLUSTER", "TYPE", "WITNESS", "NODES UP", "VOTES", "NEEDED", "TOLERATES", "QUORUM"}}
	for _, q := range out {
		wit := q.WitnessDisk + q.WitnessShare
		if wit == "" {
			wit = "-"
		}
		verdict := "yes"
		if !q.HasQuorum {
			verdict = "LOST"
		}
		rows = append(rows, []string{q.Cluster, q.Type, wit, fmt.Sprintf("%d/%d", q.NodesUp, q.Nodes),
			fmt.Sprintf("%d/%d", q.VotesPresent, q.TotalVotes), fmt.Sprint(q.VotesNeeded), fmt.Sprint(q.FailuresTolerated), verdict})
	}
	writeTable(&b, "", rows, nil, nil)
	return c.emit(&b)
}
