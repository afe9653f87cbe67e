package planreview

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata goldens")

// The plans in testdata are `terraform show -json` and `tofu show -json`
// of real plans: cmd/kayoctl's TestPlanReviewOfRealPlans applies
// cmd/kayoctl/testdata/planreview/base.tf and plans each scenario against
// it (-update there rewrites them).
var scenarios = []string{"changes", "maintenance"}

// plansOf lists the committed plans of a scenario: terraform's, and
// tofu's where committed.
func plansOf(t testing.TB, scenario string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join("testdata", scenario+".*.plan.json"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no testdata/%s.*.plan.json (%v)", scenario, err)
	}
	for i, n := range names {
		names[i] = filepath.Base(n)
	}
	return names
}

func readPlan(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func goldenFile(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (rerun with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (rerun with -update if meant):\n--- got ---\n%s\n--- want ---\n%s", name, got, want)
	}
}

// TestReviewWithoutDatabase reviews the committed plans from the plan
// alone: goldens for every format, the same for both CLIs' plans.
func TestReviewWithoutDatabase(t *testing.T) {
	for _, sc := range scenarios {
		for _, name := range plansOf(t, sc) {
			p, err := Read(readPlan(t, name))
			if err != nil {
				t.Fatal(err)
			}
			rep := Review(context.Background(), p, nil)
			for format, ext := range map[string]string{"table": "txt", "markdown": "md", "json": "json"} {
				var b bytes.Buffer
				if err := rep.Write(&b, format); err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(name, ".terraform.") && *update {
					continue // terraform's plan writes the golden; tofu's must match it
				}
				goldenFile(t, sc+".plan-only."+ext, b.String())
			}
		}
	}
}

// TestReviewChangesPlan names what the changes scenario must show, so a
// golden rewritten by mistake cannot hide a lost finding.
func TestReviewChangesPlan(t *testing.T) {
	for _, cli := range plansOf(t, "changes") {
		p, err := Read(readPlan(t, cli))
		if err != nil {
			t.Fatal(err)
		}
		rep := Review(context.Background(), p, nil)
		var web *Migration
		for i := range rep.Migrations {
			if rep.Migrations[i].VM == "WEB01" {
				web = &rep.Migrations[i]
			}
		}
		if web == nil || web.From != "Y-21-2k8x64" || web.To != "Y-22-2k8x64" || web.Type != "live" || web.DecidedAtApply {
			t.Errorf("%s: WEB01's migration: %+v", cli, web)
		}
		m := rep.Matches()
		if got := strings.Join(m["replace"], ","); got != "kayo_virtual_machine.db01" {
			t.Errorf("%s: replaced %q, want kayo_virtual_machine.db01", cli, got)
		}
		if got := strings.Join(m["quorum-loss"], ","); got != "HVCLUSTER (1 → 0 failures tolerated)" {
			t.Errorf("%s: quorum-loss %q", cli, got)
		}
		if got := strings.Join(m["node-removal"], ","); got != "HVCLUSTER/Y-23-2k8x64" {
			t.Errorf("%s: node-removal %q", cli, got)
		}
		if got := strings.Join(m["destroy"], ","); got != "kayo_shared_volume.p,kayo_virtual_machine.tmp01" {
			t.Errorf("%s: destroyed %q", cli, got)
		}
		if got := strings.Join(m["migrate"], ","); !strings.Contains(got, "HVCLUSTER/APP01") {
			t.Errorf("%s: the removal of Y-23 should drain APP01: migrate %q", cli, got)
		}
		if !rep.Gate([]string{"replace", "maintenance"}) || len(rep.Denied) != 1 || rep.Denied[0].Category != "replace" {
			t.Errorf("%s: Gate(replace, maintenance): %+v", cli, rep.Denied)
		}
		if rep.Gate([]string{"maintenance", "format"}) {
			t.Errorf("%s: Gate(maintenance, format) found %+v in a plan without either", cli, rep.Denied)
		}
	}
}

func TestReviewMaintenancePlan(t *testing.T) {
	for _, cli := range plansOf(t, "maintenance") {
		p, err := Read(readPlan(t, cli))
		if err != nil {
			t.Fatal(err)
		}
		rep := Review(context.Background(), p, nil)
		if len(rep.Maintenance) != 1 || rep.Maintenance[0].Host != "Y-22-2k8x64" || !rep.Maintenance[0].Entering ||
			strings.Join(rep.Maintenance[0].Drains, ",") != "DB01" {
			t.Errorf("%s: maintenance %+v", cli, rep.Maintenance)
		}
		if len(rep.Clusters) != 1 || rep.Clusters[0].QuorumBefore != "node_majority" ||
			rep.Clusters[0].QuorumAfter != "node_and_disk_majority (witness witness0)" {
			t.Errorf("%s: quorum change %+v", cli, rep.Clusters)
		}
	}
}

// fakeSource answers as a database would, or fails.
type fakeSource struct{ err error }

func (f fakeSource) PlanVM(_ context.Context, after map[string]any) (VMPlan, error) {
	if f.err != nil {
		return VMPlan{}, f.err
	}
	if after["name"] == "APP01" {
		return VMPlan{Move: true, From: "Y-23-2k8x64", To: "Y-21-2k8x64", Type: "live"}, nil
	}
	return VMPlan{}, nil
}

func (f fakeSource) PlanDrain(context.Context, string, []string, string) ([]Move, error) {
	return []Move{{VM: "DB01", From: "Y-22-2k8x64", To: "Y-23-2k8x64", Type: "quick", Why: "test"}}, f.err
}

func (f fakeSource) PlanNodeRemoval(context.Context, map[string]any) ([]Move, error) {
	return nil, f.err
}

func (f fakeSource) Quorum(context.Context, string) (QuorumConfig, error) {
	return QuorumConfig{Type: "node_majority"}, f.err
}

func TestReviewAsksTheSource(t *testing.T) {
	p, err := Read(readPlan(t, "maintenance.terraform.plan.json"))
	if err != nil {
		t.Fatal(err)
	}
	rep := Review(context.Background(), p, fakeSource{})
	var got []string
	for _, m := range rep.Migrations {
		got = append(got, m.VM+":"+m.From+">"+m.To+":"+m.Type)
	}
	if strings.Join(got, " ") != "APP01:Y-23-2k8x64>Y-21-2k8x64:live DB01:Y-22-2k8x64>Y-23-2k8x64:quick" {
		t.Errorf("migrations with the database: %v", got)
	}
	// A database that fails: noted, and the plan alone still speaks.
	rep = Review(context.Background(), p, fakeSource{err: errors.New("etcd: connection refused")})
	if len(rep.Notes) == 0 || !strings.Contains(strings.Join(rep.Notes, "\n"), "connection refused") {
		t.Errorf("notes: %v", rep.Notes)
	}
	if len(rep.Maintenance) != 1 || strings.Join(rep.Maintenance[0].Drains, ",") != "DB01" {
		t.Errorf("maintenance from the plan alone after a database error: %+v", rep.Maintenance)
	}
}
