package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/nodeagent/workexec"
)

// TestStateOrphans: the objects of the database that the state lacks are
// listed with import blocks (a VM under its siblings' for_each address,
// the rest under a guessed one); the state's own objects are not; bad
// input names the file and exits 1 before the database is read.
func TestStateOrphans(t *testing.T) {
	dir := newDataDir(t, 10)
	ctx := context.Background()
	e, err := engine.Open(engine.Config{LocalExecutor: workexec.Local, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	vol, err := e.CreateVolume(ctx, engine.VolumeSpec{Cluster: "HVCLUSTER", LUN: "lun0", SizeGiB: 1, Label: "VMSTORE",
		DriveLetter: "O", BlockSize: 4096, NodeSlots: 4})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"VM01", "VM02"} {
		s := engine.VMSpec{Cluster: "HVCLUSTER", Volume: vol.ID, Name: name, MemoryMB: 1024, ProcessorCount: 1,
			VHD: engine.VHDSpec{SizeGiB: 1, Type: "dynamic"}, AntiAffinityMode: "preferred",
			Migration: "live", State: "running", Failback: engine.FailbackSpec{Mode: "prevent"}, MaxFailures: 2, FailurePeriodHours: 6}
		if _, err := e.CreateVM(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	e.ReleaseMounts()
	_ = e.Close()

	// A state holding the cluster, three of its hosts, the volume and VM01.
	var res []string
	inst := func(typ, name, key, attrs string) {
		k := ""
		if key != "" {
			k = fmt.Sprintf(`"index_key": %q, `, key)
		}
		res = append(res, fmt.Sprintf(`{"mode": "managed", "type": %q, "name": %q, "provider": "provider[\"local/kayo/kayo\"]",
  "instances": [{%s"schema_version": 0, "attributes": {%s}}]}`, typ, name, k, attrs))
	}
	for i, n := range threeNodes {
		inst("kayo_host", fmt.Sprintf("h%d", i), "", fmt.Sprintf(`"id": %q, "name": %q`, n, n))
	}
	inst("kayo_cluster", "c", "", `"id": "HVCLUSTER", "name": "HVCLUSTER"`)
	inst("kayo_shared_volume", "o", "", fmt.Sprintf(`"id": %q, "label": "VMSTORE"`, vol.ID))
	inst("kayo_virtual_machine", "vm", "VM01", `"id": "HVCLUSTER/VM01", "name": "VM01"`)
	stateFile := filepath.Join(t.TempDir(), "terraform.tfstate")
	doc := `{"version": 4, "terraform_version": "1.8.5", "serial": 3, "lineage": "l", "outputs": {}, "resources": [` +
		strings.Join(res, ",\n") + `]}`
	if err := os.WriteFile(stateFile, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}

	code, out, errOut := kayoctl(t, nil, "--data-dir", dir, "state", "orphans", "--state", stateFile)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"2 objects of the cluster database in no state (" + stateFile + ")",
		"import {\n  to = kayo_virtual_machine.vm[\"VM02\"]\n  id = \"HVCLUSTER/VM02\"\n}",
		"import {\n  to = kayo_host.y_24_2k8x64\n  id = \"Y-24-2k8x64\"\n}",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, held := range []string{"HVCLUSTER/VM01", vol.ID, `id = "HVCLUSTER"`, `id = "Y-21-2k8x64"`} {
		if strings.Contains(out, held) {
			t.Errorf("output names %s, which the state holds:\n%s", held, out)
		}
	}

	// Flags after the subcommand, --cluster and --json.
	code, out, errOut = kayoctl(t, nil, "state", "orphans", "--json", "--state", stateFile, "--data-dir", dir, "--cluster", "HVCLUSTER")
	if code != 0 {
		t.Fatalf("--json: exit %d: %s", code, errOut)
	}
	var list []orphanJSON
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if len(list) != 1 || list[0].ID != "HVCLUSTER/VM02" || list[0].From != "state" {
		t.Errorf("--json --cluster HVCLUSTER = %+v, want only VM02 (Y-24 is in no cluster)", list)
	}

	// Bad input: exit 1 naming the file; no state given: usage, exit 2.
	notState := filepath.Join(t.TempDir(), "main.tf")
	if err := os.WriteFile(notState, []byte(`resource "kayo_host" "h" {}`), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "none.tfstate")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--state", notState}, 1, notState + ": not a Terraform/OpenTofu state"},
		{[]string{"--state-json", notState}, 1, "want the output of `terraform show -json`"},
		{[]string{"--state-json", stateFile}, 1, "pass it with --state"},
		{[]string{"--state", missing}, 1, missing + ": no such file; want a state file"},
		{nil, 2, "--state terraform.tfstate or --state-json FILE"},
		{[]string{"--state", stateFile, "extra"}, 2, `unexpected argument "extra"`},
	} {
		code, _, errOut := kayoctl(t, nil, append([]string{"--data-dir", dir, "state", "orphans"}, c.args...)...)
		if code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("state orphans %v: exit %d, stderr %q; want exit %d and %q", c.args, code, errOut, c.code, c.want)
		}
	}
	if code, _, _ := kayoctl(t, nil, "--data-dir", dir, "state", "list"); code != 2 {
		t.Errorf("state list: exit %d, want 2", code)
	}
}
