package planreview

import (
	"errors"
	"strings"
	"testing"
)

func TestReadRefusesWhatIsNotAKayoPlan(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"empty", "  \n", "the input is empty"},
		{"binary plan file", "PK\x03\x04\x14\x00\x08\x00", "the input is not JSON"},
		{"plan text", "Terraform will perform the following actions:", "the input is not JSON"},
		{"array", `[1, 2]`, "not an object"},
		{"no format version", `{"planned_values": {}}`, "has no format_version"},
		{"a state", `{"format_version": "1.0", "terraform_version": "1.8.5", "values": {"root_module": {}}}`, "the input is not a plan"},
		{"unsupported format", `{"format_version": "7.0", "planned_values": {}}`, "unsupported plan format version"},
		{"another provider only", `{"format_version": "1.2", "planned_values": {}, "resource_changes": [
			{"address": "terraform_data.x", "mode": "managed", "type": "terraform_data", "name": "x",
			 "provider_name": "terraform.io/builtin/terraform", "change": {"actions": ["create"]}}]}`,
			"the plan holds no kayo resource (kayo_* types of local/kayo/kayo); its providers: terraform.io/builtin/terraform"},
		{"empty plan", `{"format_version": "1.2", "planned_values": {}}`, "its providers: none (an empty plan)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Read([]byte(tc.in))
			if err == nil || p != nil {
				t.Fatalf("Read accepted it: %+v", p)
			}
			if !errors.Is(err, ErrBadPlan) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q (ErrBadPlan: %v), want it to contain %q", err, errors.Is(err, ErrBadPlan), tc.want)
			}
		})
	}
}

func TestReadAcceptsAKayoPlanWithoutChanges(t *testing.T) {
	in := `{"format_version": "1.2", "planned_values": {}, "resource_changes": [
		{"address": "kayo_host.y21", "mode": "managed", "type": "kayo_host", "name": "y21",
		 "provider_name": "local/kayo/kayo", "change": {"actions": ["no-op"], "before": {"name": "Y-21"}, "after": {"name": "Y-21"}}}]}`
	p, err := Read([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	rep := Review(t.Context(), p, nil)
	if rep.Counts != (Counts{}) || len(rep.Migrations) != 0 || rep.Gate(Categories) {
		t.Errorf("a no-op plan: %+v", rep)
	}
	var b strings.Builder
	if err := rep.Write(&b, "table"); err != nil || !strings.Contains(b.String(), "Nothing to review") {
		t.Errorf("table of a no-op plan (err %v):\n%s", err, b.String())
	}
}

func TestParseDeny(t *testing.T) {
	got, err := ParseDeny(" replace,format ,,replace,quorum-loss")
	if err != nil || strings.Join(got, ",") != "replace,format,quorum-loss" {
		t.Errorf("ParseDeny = %v, %v", got, err)
	}
	if _, err := ParseDeny("replace,explode"); err == nil || !strings.Contains(err.Error(), `unknown category "explode"; allowed: replace, destroy,`) {
		t.Errorf("ParseDeny of an unknown category: %v", err)
	}
	if got, err := ParseDeny(""); err != nil || len(got) != 0 {
		t.Errorf("ParseDeny(\"\") = %v, %v", got, err)
	}
}

func TestFailures(t *testing.T) {
	for _, tc := range []struct {
		q     QuorumConfig
		nodes int
		want  int
	}{
		{QuorumConfig{Type: "node_majority"}, 3, 1},
		{QuorumConfig{Type: "node_majority"}, 2, 0},
		{QuorumConfig{Type: "node_and_disk_majority", Witness: "w"}, 2, 1},
		{QuorumConfig{Type: "node_and_disk_majority"}, 2, -1}, // no witness: no figures
		{QuorumConfig{Type: "disk_only", Witness: "w"}, 4, 3},
		{QuorumConfig{Type: "node_majority"}, 0, -1},
	} {
		if got := failures(tc.q, tc.nodes); got != tc.want {
			t.Errorf("failures(%v, %d) = %d, want %d", tc.q, tc.nodes, got, tc.want)
		}
	}
}
