package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/testcli"
)

// TestQuickstart runs examples/quickstart as `make demo` does: init, apply,
// the validation report, the volume and the VM, an empty second plan, destroy.
func TestQuickstart(t *testing.T) {
	root, err := testcli.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(root, "examples", "quickstart")
	for _, cli := range testcli.CLIs(t) {
		t.Run(cli.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			mirror := testcli.NewMirror(t, testcli.KayoProvider(t))
			dir := t.TempDir()
			copyTF(t, src, dir)
			wd := testcli.NewWorkdir(cli, dir, mirror)
			wd.Env = append(wd.Env, "KAYO_DATA_DIR="+t.TempDir())

			testcli.Must(t, wd.Init(ctx))
			if _, err := os.Stat(filepath.Join(dir, ".terraform.lock.hcl")); err != nil {
				t.Errorf("init wrote no lock file: %v", err)
			}
			testcli.Must(t, wd.Apply(ctx))

			var cluster struct {
				Name          string   `json:"name"`
				StaticAddress string   `json:"static_address"`
				Nodes         []string `json:"nodes"`
			}
			outputJSON(t, ctx, wd, "cluster", &cluster)
			if cluster.Name != "HVCLUSTER" || cluster.StaticAddress != "192.0.2.50/24" ||
				strings.Join(cluster.Nodes, ",") != "Y-21-2k8x64,Y-22-2k8x64" {
				t.Errorf("cluster output = %+v", cluster)
			}

			var report []struct {
				Category, Test, Result, Message string
			}
			outputJSON(t, ctx, wd, "validation", &report)
			categories := map[string]bool{}
			for _, v := range report {
				categories[v.Category] = true
				if v.Result != "passed" {
					t.Errorf("two identical hosts: validation %s / %s is %s: %s", v.Category, v.Test, v.Result, v.Message)
				}
			}
			for _, c := range []string{"Inventory", "Network", "Storage", "System Configuration"} {
				if !categories[c] {
					t.Errorf("validation report has no %q test; categories: %v", c, categories)
				}
			}

			summary := testcli.Must(t, wd.Run(ctx, "output", "-raw", "summary")).Stdout
			for _, s := range []string{"HVCLUSTER", "Y-21-2k8x64", "Y-22-2k8x64", "Validation report",
				"Shared volume O: VMSTORE", "Virtual machine WEB01: running on Y-21-2k8x64, VHD O:\\WEB01\\WEB01.vhd"} {
				if !strings.Contains(summary, s) {
					t.Errorf("summary output lacks %q:\n%s", s, summary)
				}
			}
			t.Logf("summary:\n%s", summary)

			changes, r := wd.Plan(ctx)
			testcli.Must(t, r)
			if changes {
				t.Fatalf("second plan is not empty:\n%s", r.Stdout)
			}
			testcli.Must(t, wd.Destroy(ctx))
		})
	}
}

func outputJSON(t *testing.T, ctx context.Context, wd *testcli.Workdir, name string, v any) {
	t.Helper()
	r := testcli.Must(t, wd.OutputJSON(ctx, name))
	if err := json.Unmarshal([]byte(r.Stdout), v); err != nil {
		t.Fatalf("output %s: %v\n%s", name, err, r.Stdout)
	}
}

// copyTF copies the .tf files of src into dst.
func copyTF(t *testing.T, src, dst string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(src, "*.tf"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no .tf files in %s (%v)", src, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
