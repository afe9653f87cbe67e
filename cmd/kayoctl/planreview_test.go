package main

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/testcli"
)

var update = flag.Bool("update", false, "rewrite testdata/planreview goldens and internal/planreview/testdata plans from real CLI runs")

// planScenarios are the configurations planned against testdata/planreview/base.tf.
var planScenarios = []struct{ name, varFile string }{
	{"changes", ""},
	{"maintenance", "maintenance.tfvars"},
}

var reviewFormats = map[string]string{"table": "txt", "markdown": "md", "json": "json"}

func copyTestdata(t *testing.T, dir string, names map[string]string) {
	t.Helper()
	for dst, src := range names {
		b, err := os.ReadFile(filepath.Join("testdata", "planreview", src))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, dst), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// golden compares got with testdata/planreview/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "planreview", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (rerun with -update if the change is meant):\n--- got ---\n%s\n--- want ---\n%s", name, got, want)
	}
}

// TestPlanReviewOfRealPlans applies testdata/planreview/base.tf with each
// CLI, plans the scenarios against it (a migration, a replacement by a
// rename, a node removal that lowers the failures tolerated, a volume
// destroy; a host entering maintenance and a quorum change), and reviews
// `show -json` of each plan with the cluster database: goldens of the table,
// Markdown and JSON, and the exit codes of --deny. The plans come from the
// CLIs each run; -update also commits them to internal/planreview/testdata
// for the package's own tests.
func TestPlanReviewOfRealPlans(t *testing.T) {
	for _, cli := range testcli.CLIs(t) {
		t.Run(cli.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			mirror := testcli.NewMirror(t, testcli.KayoProvider(t))
			data := t.TempDir()
			env := map[string]string{"KAYO_DATA_DIR": data}
			wd := testcli.NewWorkdir(cli, t.TempDir(), mirror)
			wd.Env = append(wd.Env, "KAYO_DATA_DIR="+data)
			copyTestdata(t, wd.Dir, map[string]string{"hosts.tf": "hosts.tf", "main.tf": "base.tf"})
			testcli.Must(t, wd.Init(ctx))
			testcli.Must(t, wd.Apply(ctx))

			for _, sc := range planScenarios {
				files := map[string]string{"main.tf": sc.name + ".tf"}
				args := []string{"plan", "-input=false", "-no-color", "-out=" + sc.name + ".tfplan"}
				if sc.varFile != "" {
					files[sc.varFile] = sc.varFile
					args = append(args, "-var-file="+sc.varFile)
				}
				copyTestdata(t, wd.Dir, files)
				testcli.Must(t, wd.Run(ctx, args...))
				planJSON := testcli.Must(t, wd.ShowJSON(ctx, sc.name+".tfplan")).Stdout
				planPath := filepath.Join(wd.Dir, sc.name+".json")
				if err := os.WriteFile(planPath, []byte(planJSON), 0o644); err != nil {
					t.Fatal(err)
				}
				if *update {
					dst := filepath.Join("..", "..", "internal", "planreview", "testdata", sc.name+"."+cli.Name+".plan.json")
					if err := os.WriteFile(dst, []byte(planJSON), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				for format, ext := range reviewFormats {
					code, out, stderr := kayoctl(t, env, "plan", "review", "--format", format, planPath)
					if code != exitOK {
						t.Fatalf("%s: plan review --format %s: exit %d: %s", sc.name, format, code, stderr)
					}
					golden(t, sc.name+".db."+ext, out)
				}
			}

			changes := filepath.Join(wd.Dir, "changes.json")
			code, out, stderr := kayoctl(t, env, "plan", "review", "--deny", "replace,quorum-loss,maintenance", changes)
			if code != exitDenied || !strings.Contains(stderr, "denied changes: replace, quorum-loss") ||
				!strings.Contains(out, "DENIED replace (1): kayo_virtual_machine.db01") ||
				!strings.Contains(out, "DENIED quorum-loss (1): HVCLUSTER (1 → 0 failures tolerated)") {
				t.Errorf("--deny replace,quorum-loss,maintenance on the changes plan: exit %d (want %d)\nstdout:\n%s\nstderr: %s", code, exitDenied, out, stderr)
			}
			if code, _, stderr := kayoctl(t, env, "plan", "review", "--deny", "maintenance", changes); code != exitOK {
				t.Errorf("--deny maintenance on a plan without maintenance: exit %d: %s", code, stderr)
			}
			maint := filepath.Join(wd.Dir, "maintenance.json")
			if code, _, stderr := kayoctl(t, env, "plan", "review", "--deny", "maintenance", maint); code != exitDenied {
				t.Errorf("--deny maintenance on the maintenance plan: exit %d, want %d: %s", code, exitDenied, stderr)
			}
			// The plan file itself is not JSON.
			code, _, stderr = kayoctl(t, env, "plan", "review", filepath.Join(wd.Dir, "changes.tfplan"))
			if code != exitError || !strings.Contains(stderr, "is not JSON") {
				t.Errorf("review of the binary plan file: exit %d, stderr %q; want exit 1 saying it is not JSON", code, stderr)
			}

			// A plan of another provider only.
			other := testcli.NewWorkdir(cli, t.TempDir(), mirror)
			copyTestdata(t, other.Dir, map[string]string{"main.tf": "other-provider.tf"})
			testcli.Must(t, other.Init(ctx))
			testcli.Must(t, other.Run(ctx, "plan", "-input=false", "-no-color", "-out=other.tfplan"))
			otherPath := filepath.Join(other.Dir, "other.json")
			if err := os.WriteFile(otherPath, []byte(testcli.Must(t, other.ShowJSON(ctx, "other.tfplan")).Stdout), 0o644); err != nil {
				t.Fatal(err)
			}
			code, _, stderr = kayoctl(t, env, "plan", "review", otherPath)
			if code != exitError || !strings.Contains(stderr, "holds no kayo resource") || !strings.Contains(stderr, "terraform") {
				t.Errorf("review of a terraform_data plan: exit %d, stderr %q; want exit 1 naming its provider", code, stderr)
			}
		})
	}
}

func TestPlanReviewUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"plan"}, exitUsage, "want `plan review PLAN.json`"},
		{[]string{"plan", "review"}, exitUsage, "want exactly one plan file"},
		{[]string{"plan", "review", "--format", "yaml", "x.json"}, exitUsage, `--format "yaml": allowed are table, markdown, json`},
		{[]string{"plan", "review", "--deny", "replace,explode", "x.json"}, exitUsage, `unknown category "explode"`},
		{[]string{"plan", "review", filepath.Join(t.TempDir(), "missing.json")}, exitError, "no such file"},
	} {
		code, _, stderr := kayoctl(t, nil, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("kayoctl %v: exit %d, stderr %q; want exit %d containing %q", tc.args, code, stderr, tc.code, tc.want)
		}
	}
}
