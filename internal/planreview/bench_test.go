package planreview

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"testing"
)

// scalePlan turns a real plan (testdata/changes.terraform.plan.json) into
// one of n VM migrations: WEB01's resource change and prior-state entry
// copied n times under new names, the rest of the plan kept.
func scalePlan(tb testing.TB, n int) []byte {
	tb.Helper()
	var doc map[string]any
	if err := json.Unmarshal(readPlan(tb, "changes.terraform.plan.json"), &doc); err != nil {
		tb.Fatal(err)
	}
	var web map[string]any
	var changes []any
	for _, rc := range doc["resource_changes"].([]any) {
		m := rc.(map[string]any)
		if m["address"] == "kayo_virtual_machine.web01" {
			web = m
			continue
		}
		changes = append(changes, m)
	}
	if web == nil {
		tb.Fatal("the plan has no kayo_virtual_machine.web01")
	}
	root := doc["prior_state"].(map[string]any)["values"].(map[string]any)["root_module"].(map[string]any)
	var priorWeb map[string]any
	for _, r := range root["resources"].([]any) {
		if r.(map[string]any)["address"] == "kayo_virtual_machine.web01" {
			priorWeb = r.(map[string]any)
		}
	}
	resources := root["resources"].([]any)
	for i := range n {
		name := fmt.Sprintf("WEB%04d", i)
		addr := fmt.Sprintf("kayo_virtual_machine.web[%q]", name)
		c := clone(tb, web)
		c["address"], c["index"] = addr, name
		ch := c["change"].(map[string]any)
		ch["before"].(map[string]any)["name"] = name
		ch["after"].(map[string]any)["name"] = name
		changes = append(changes, c)
		p := clone(tb, priorWeb)
		p["address"], p["index"] = addr, name
		p["values"].(map[string]any)["name"] = name
		resources = append(resources, p)
	}
	doc["resource_changes"] = changes
	root["resources"] = resources
	b, err := json.Marshal(doc)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func clone(tb testing.TB, m map[string]any) map[string]any {
	b, err := json.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		tb.Fatal(err)
	}
	return out
}

func TestScalePlan(t *testing.T) {
	p, err := Read(scalePlan(t, 50))
	if err != nil {
		t.Fatal(err)
	}
	rep := Review(context.Background(), p, nil)
	if n := len(rep.Matches()["migrate"]); n != 50+1 { // 50 WEBs and APP01's drain
		t.Errorf("%d migrations, want 51", n)
	}
}

// BenchmarkReview1000VMs is `kayoctl plan review` of a 1,000-VM migration
// plan without the database: parse, review, table.
func BenchmarkReview1000VMs(b *testing.B) {
	data := scalePlan(b, 1000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		p, err := Read(data)
		if err != nil {
			b.Fatal(err)
		}
		rep := Review(context.Background(), p, nil)
		if len(rep.Migrations) != 1001 {
			b.Fatalf("%d migrations", len(rep.Migrations))
		}
		if err := rep.Write(io.Discard, "table"); err != nil {
			b.Fatal(err)
		}
	}
}
