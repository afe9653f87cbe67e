package planreview

import (
	"fmt"
	"sort"
	"strings"
)

// Categories a pipeline can deny (kayoctl plan review --deny), in
// documentation order.
var Categories = []string{"replace", "destroy", "data-loss", "format", "quorum-loss", "node-removal", "maintenance", "migrate"}

// categoryHelp says what each category matches.
var categoryHelp = map[string]string{
	"replace":      "a kayo resource is replaced (destroyed and created again)",
	"destroy":      "a kayo resource is destroyed",
	"data-loss":    "a VM replaced or destroyed, a volume reformatted, or destroyed with force_destroy",
	"format":       "a shared volume is formatted (created, or reformatted by a replacement)",
	"quorum-loss":  "a cluster tolerates fewer node failures after the plan than before",
	"node-removal": "a node leaves a cluster",
	"maintenance":  "a host enters maintenance (its VMs are drained)",
	"migrate":      "a VM migrates, or may (the scheduler decides at apply)",
}

// Denial is a denied category present in the plan.
type Denial struct {
	Category string   `json:"category"`
	Count    int      `json:"count"`
	Items    []string `json:"items"`
}

// ParseDeny parses a comma-separated list of categories; "" is none.
func ParseDeny(s string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, c := range strings.Split(s, ",") {
		c = strings.TrimSpace(c)
		if c == "" || seen[c] {
			continue
		}
		if _, ok := categoryHelp[c]; !ok {
			return nil, fmt.Errorf("--deny: unknown category %q; allowed: %s", c, strings.Join(Categories, ", "))
		}
		seen[c] = true
		out = append(out, c)
	}
	return out, nil
}

// Matches lists, per category, what in the report it matches.
func (rep *Report) Matches() map[string][]string {
	m := map[string][]string{}
	add := func(c, item string) { m[c] = append(m[c], item) }
	for _, r := range rep.Replacements {
		add("replace", r.Address)
		if r.Type == "kayo_virtual_machine" || r.Type == "kayo_shared_volume" {
			add("data-loss", r.Address)
		}
	}
	for _, d := range rep.Destroyed {
		add("destroy", d.Address)
		if strings.HasPrefix(d.Risk, "data loss") {
			add("data-loss", d.Address)
		}
	}
	for _, v := range rep.Volumes {
		if v.Action == "formatted" || v.Action == "reformatted" {
			add("format", v.Address)
		}
	}
	for _, c := range rep.Clusters {
		if c.FailuresBefore >= 0 && c.FailuresAfter >= 0 && c.FailuresAfter < c.FailuresBefore {
			add("quorum-loss", fmt.Sprintf("%s (%d → %d failures tolerated)", c.Cluster, c.FailuresBefore, c.FailuresAfter))
		}
		for _, n := range c.NodesRemoved {
			add("node-removal", c.Cluster+"/"+n)
		}
	}
	for _, mt := range rep.Maintenance {
		if mt.Entering {
			add("maintenance", mt.Host)
		}
	}
	for _, mg := range rep.Migrations {
		add("migrate", mg.Cluster+"/"+mg.VM)
	}
	for _, items := range m {
		sort.Strings(items)
	}
	return m
}

// Gate records in rep the denied categories the plan has and reports
// whether there is any.
func (rep *Report) Gate(deny []string) bool {
	rep.Denied = nil
	m := rep.Matches()
	for _, c := range deny {
		if items := m[c]; len(items) > 0 {
			rep.Denied = append(rep.Denied, Denial{Category: c, Count: len(items), Items: items})
		}
	}
	return len(rep.Denied) > 0
}
