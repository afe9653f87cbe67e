package orphans

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A state file (version 4) as Terraform 1.8 writes it, trimmed: one VM of
// a for_each keyed by name, a host, a data source and another provider's
// resource.
const stateV4JSON = `{
  "version": 4, "terraform_version": "1.8.5", "serial": 7, "lineage": "x", "outputs": {},
  "resources": [
    {"mode": "data", "type": "kayo_hosts", "name": "all", "provider": "provider[\"local/kayo/kayo\"]",
     "instances": [{"schema_version": 0, "attributes": {"id": "hosts"}}]},
    {"mode": "managed", "type": "kayo_host", "name": "h", "provider": "provider[\"local/kayo/kayo\"]",
     "instances": [{"index_key": "y21", "schema_version": 0, "attributes": {"id": "Y-21", "name": "Y-21"}}]},
    {"mode": "managed", "type": "kayo_virtual_machine", "name": "vm", "provider": "provider[\"local/kayo/kayo\"]",
     "instances": [{"index_key": "VM01", "schema_version": 0, "attributes": {"id": "C1/VM01", "name": "VM01", "cluster_id": "C1"}}]},
    {"module": "module.lab", "mode": "managed", "type": "kayo_cluster", "name": "c", "provider": "provider[\"local/kayo/kayo\"]",
     "instances": [{"schema_version": 0, "attributes": {"id": "C1", "name": "C1"}}]},
    {"mode": "managed", "type": "null_resource", "name": "n", "provider": "provider[\"registry.terraform.io/hashicorp/null\"]",
     "instances": [{"schema_version": 0, "attributes": {"id": "123"}}]}
  ],
  "check_results": null
}`

// show -json of the same state.
const showStateJSON = `{"format_version": "1.0", "terraform_version": "1.8.5", "values": {"root_module": {
  "resources": [
    {"address": "data.kayo_hosts.all", "mode": "data", "type": "kayo_hosts", "name": "all", "values": {"id": "hosts"}},
    {"address": "kayo_host.h[\"y21\"]", "mode": "managed", "type": "kayo_host", "name": "h", "index": "y21", "values": {"id": "Y-21", "name": "Y-21"}},
    {"address": "kayo_virtual_machine.vm[\"VM01\"]", "mode": "managed", "type": "kayo_virtual_machine", "name": "vm", "index": "VM01",
     "values": {"id": "C1/VM01", "name": "VM01", "cluster_id": "C1"}}
  ],
  "child_modules": [{"address": "module.lab", "resources": [
    {"address": "module.lab.kayo_cluster.c", "mode": "managed", "type": "kayo_cluster", "name": "c", "values": {"id": "C1", "name": "C1"}}]}]
}}}`

// show -json of a saved plan whose prior state holds VM01 and which
// creates VM02 (cluster known) and the host Y-22 (keyed apart from its name).
const showPlanJSON = `{"format_version": "1.2", "terraform_version": "1.8.5",
  "planned_values": {"root_module": {}},
  "prior_state": {"format_version": "1.0", "values": {"root_module": {"resources": [
    {"address": "kayo_virtual_machine.vm[\"VM01\"]", "mode": "managed", "type": "kayo_virtual_machine", "name": "vm", "index": "VM01",
     "values": {"id": "C1/VM01", "name": "VM01", "cluster_id": "C1"}}]}}},
  "resource_changes": [
    {"address": "kayo_virtual_machine.vm[\"VM01\"]", "mode": "managed", "type": "kayo_virtual_machine", "name": "vm", "index": "VM01",
     "change": {"actions": ["no-op"], "after": {"id": "C1/VM01", "name": "VM01", "cluster_id": "C1"}}},
    {"address": "kayo_virtual_machine.vm[\"VM02\"]", "mode": "managed", "type": "kayo_virtual_machine", "name": "vm", "index": "VM02",
     "change": {"actions": ["create"], "after": {"name": "VM02", "cluster_id": "C1"}, "after_unknown": {"id": true}}},
    {"address": "kayo_host.h[\"y22\"]", "mode": "managed", "type": "kayo_host", "name": "h", "index": "y22",
     "change": {"actions": ["create"], "after": {"name": "Y-22"}, "after_unknown": {"id": true}}},
    {"address": "kayo_shared_volume.o", "mode": "managed", "type": "kayo_shared_volume", "name": "o",
     "change": {"actions": ["create"], "after": {"lun": "lun0", "label": "VMSTORE"}, "after_unknown": {"id": true, "cluster_id": true}}}
  ]}`

func write(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func addresses(ins []Instance) []string {
	var out []string
	for _, in := range ins {
		out = append(out, in.Address+"="+in.ID())
	}
	return out
}

func TestReadStateFile(t *testing.T) {
	s, err := ReadStateFile(write(t, "terraform.tfstate", stateV4JSON))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(addresses(s.Held), " ")
	want := `kayo_host.h["y21"]=Y-21 kayo_virtual_machine.vm["VM01"]=C1/VM01 module.lab.kayo_cluster.c=C1`
	if got != want {
		t.Errorf("held:\n got %s\nwant %s", got, want)
	}
	if len(s.Creates) != 0 {
		t.Errorf("a state file creates nothing; got %v", addresses(s.Creates))
	}
}

func TestReadShowJSONState(t *testing.T) {
	s, err := ReadShowJSON(write(t, "show.json", showStateJSON))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(addresses(s.Held), " ")
	want := `kayo_host.h["y21"]=Y-21 kayo_virtual_machine.vm["VM01"]=C1/VM01 module.lab.kayo_cluster.c=C1`
	if got != want {
		t.Errorf("held:\n got %s\nwant %s", got, want)
	}
	// No state at all: show -json prints only its format version.
	s, err = ReadShowJSON(write(t, "empty.json", `{"format_version":"1.0"}`))
	if err != nil || len(s.Held) != 0 {
		t.Errorf("show -json of no state: %v, %v", s, err)
	}
}

func TestReadShowJSONPlan(t *testing.T) {
	s, err := ReadShowJSON(write(t, "plan.json", showPlanJSON))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(addresses(s.Held), " "), `kayo_virtual_machine.vm["VM01"]=C1/VM01`; got != want {
		t.Errorf("held (the prior state): %s, want %s", got, want)
	}
	if got, want := strings.Join(addresses(s.Creates), " "),
		`kayo_virtual_machine.vm["VM02"]= kayo_host.h["y22"]= kayo_shared_volume.o=`; got != want {
		t.Errorf("creates: %s, want %s", got, want)
	}
}

// TestBadInput: a file that is not a state (or the other kind of state),
// or no file, is an error naming the file and what was expected.
func TestBadInput(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.tfstate")
	for _, c := range []struct {
		name, content string
		read          func(string) (*State, error)
		want          []string
	}{
		{"main.tf", `resource "kayo_host" "h" {}`, ReadStateFile, []string{"main.tf", "not a Terraform/OpenTofu state", "not a JSON object", "terraform.tfstate"}},
		{"empty.json", "", ReadShowJSON, []string{"empty.json", "the file is empty"}},
		{"array.json", `[1, 2]`, ReadShowJSON, []string{"array.json", "not a JSON object", "terraform show -json"}},
		{"other.json", `{"name": "x"}`, ReadStateFile, []string{"other.json", `no "version"`, "version 4"}},
		{"other.json", `{"name": "x"}`, ReadShowJSON, []string{"other.json", `no "format_version"`, "terraform show -json"}},
		{"v3.tfstate", `{"version": 3, "modules": []}`, ReadStateFile, []string{"v3.tfstate", "state version 3", "only version 4"}},
		{"show.json", showStateJSON, ReadStateFile, []string{"show.json", "terraform show -json", "--state-json"}},
		{"terraform.tfstate", stateV4JSON, ReadShowJSON, []string{"terraform.tfstate", "a state file (version 4)", "--state"}},
		{"future.json", `{"format_version": "2.0"}`, ReadShowJSON, []string{"future.json", "format_version 2.0", "only 1.x"}},
		{"broken.tfstate", `{"version": 4, "resources": [`, ReadStateFile, []string{"broken.tfstate", "unexpected end of JSON"}},
	} {
		_, err := c.read(write(t, c.name, c.content))
		if err == nil {
			t.Errorf("%s (%q): no error", c.name, c.content)
			continue
		}
		if !errors.Is(err, ErrNotState) {
			t.Errorf("%s: %v does not wrap ErrNotState", c.name, err)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", c.name, err, w)
			}
		}
	}
	// An empty state file is an empty state, as Terraform reads it (a CLI
	// killed while rewriting it leaves one).
	if s, err := ReadStateFile(write(t, "terraform.tfstate", "")); err != nil || len(s.Held) != 0 {
		t.Errorf("empty state file: %v, %v; want an empty state", s, err)
	}
	for _, read := range []func(string) (*State, error){ReadStateFile, ReadShowJSON} {
		_, err := read(missing)
		if err == nil || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "no such file") {
			t.Errorf("missing file: %v", err)
		}
	}
}

func vmObject(cluster, name string) Object {
	return Object{Type: TypeVM, ID: cluster + "/" + name, Name: name, Match: [][2]string{{"name", name}, {"cluster_id", cluster}}}
}

// TestFind: held objects are left out; the others get the address a plan
// creates them at, else their siblings' pattern, else a guess.
func TestFind(t *testing.T) {
	state, err := ParseStateFile("terraform.tfstate", []byte(stateV4JSON))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := ParseShowJSON("plan.json", []byte(showPlanJSON))
	if err != nil {
		t.Fatal(err)
	}
	objects := []Object{
		{Type: TypeHost, ID: "Y-21", Name: "Y-21", Match: [][2]string{{"name", "Y-21"}}},
		{Type: TypeHost, ID: "Y-22", Name: "Y-22", Match: [][2]string{{"name", "Y-22"}}},
		{Type: TypeCluster, ID: "C1", Name: "C1", Match: [][2]string{{"name", "C1"}}},
		{Type: TypeVolume, ID: "5f0c-uuid", Name: "VMSTORE", Match: [][2]string{{"lun", "lun0"}, {"cluster_id", "C1"}, {"label", "VMSTORE"}}},
		vmObject("C1", "VM01"), vmObject("C1", "VM02"), vmObject("C1", "VM03"), vmObject("C2", "DB-1"),
	}
	got := map[string]string{}
	for _, o := range Find(objects, []*State{state}) {
		got[o.ID] = o.To + " (" + o.From + ")"
	}
	want := map[string]string{
		"Y-22":      `kayo_host.y_22 (guess)`, // the state's host is keyed y21, not by name
		"5f0c-uuid": `kayo_shared_volume.vmstore (guess)`,
		"C1/VM02":   `kayo_virtual_machine.vm["VM02"] (state)`,
		"C1/VM03":   `kayo_virtual_machine.vm["VM03"] (state)`,
		"C2/DB-1":   `kayo_virtual_machine.vm["DB-1"] (state)`,
	}
	if !equalMaps(got, want) {
		t.Errorf("with the state file:\n got %v\nwant %v", got, want)
	}

	got = map[string]string{}
	for _, o := range Find(objects, []*State{plan}) {
		got[o.ID] = o.To + " (" + o.From + ")"
	}
	want = map[string]string{
		"Y-21":      `kayo_host.y_21 (guess)`, // in neither the prior state nor the plan
		"Y-22":      `kayo_host.h["y22"] (plan)`,
		"C1":        `kayo_cluster.c1 (guess)`,
		"5f0c-uuid": `kayo_shared_volume.o (plan)`, // cluster_id unknown at plan: lun and label decide
		"C1/VM02":   `kayo_virtual_machine.vm["VM02"] (plan)`,
		"C1/VM03":   `kayo_virtual_machine.vm["VM03"] (state)`,
		"C2/DB-1":   `kayo_virtual_machine.vm["DB-1"] (state)`,
	}
	if !equalMaps(got, want) {
		t.Errorf("with the plan:\n got %v\nwant %v", got, want)
	}
}

// TestFindGuessesApart: two objects whose names make the same label get
// distinct addresses; an unsettled object is listed without taking one.
func TestFindGuessesApart(t *testing.T) {
	a := Object{Type: TypeHost, ID: "HV-1", Name: "HV-1"}
	b := Object{Type: TypeHost, ID: "HV_1", Name: "HV_1"}
	u := vmObject("C", "9X")
	u.Unsettled = "its create was interrupted"
	got := Find([]Object{a, b, u}, nil)
	if len(got) != 3 || got[0].To != "kayo_host.hv_1" || got[1].To != "kayo_host.hv_1_2" || got[2].To != "kayo_virtual_machine.r_9x" {
		t.Fatalf("Find = %+v", got)
	}
	var sb strings.Builder
	WriteHCL(&sb, got, []string{"a.tfstate", "b.json"})
	out := sb.String()
	for _, w := range []string{"3 objects of the cluster database in no state (a.tfstate, b.json)",
		"import {\n  to = kayo_host.hv_1\n  id = \"HV-1\"\n}\n", "change `to` to its address",
		"# Not importable yet: its create was interrupted."} {
		if !strings.Contains(out, w) {
			t.Errorf("HCL lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, `id = "C/9X"`) {
		t.Errorf("HCL imports the unsettled VM:\n%s", out)
	}
}

func TestImportBlockQuotes(t *testing.T) {
	got := ImportBlock(`kayo_host.h["a"]`, `we"ird\${x}`)
	want := "import {\n  to = kayo_host.h[\"a\"]\n  id = \"we\\\"ird\\\\$${x}\"\n}\n"
	if got != want {
		t.Errorf("ImportBlock:\n got %q\nwant %q", got, want)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
