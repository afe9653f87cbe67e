package testcli

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	code := m.Run()
	Cleanup()
	os.Exit(code)
}

func TestWriteMirrorLayout(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "p")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	m, err := WriteMirror(filepath.Join(base, "mirror"), "",
		Provider{Source: "local/kayo/kayo", Version: "0.1.0", Binary: bin},
		Provider{Source: "local/bench/noop", Version: "0.2.0", Binary: bin})
	if err != nil {
		t.Fatal(err)
	}
	platform := runtime.GOOS + "_" + runtime.GOARCH
	for _, p := range []string{
		"local/kayo/kayo/0.1.0/" + platform + "/terraform-provider-kayo_v0.1.0",
		"local/bench/noop/0.2.0/" + platform + "/terraform-provider-noop_v0.2.0",
	} {
		if _, err := os.Stat(filepath.Join(m.Dir, p)); err != nil {
			t.Errorf("mirror lacks %s: %v", p, err)
		}
	}
	if m.ConfigFile != filepath.Join(base, "cli.tfrc") {
		t.Errorf("config file %s", m.ConfigFile)
	}
	cfg, err := os.ReadFile(m.ConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"filesystem_mirror", m.Dir, `"local/kayo/kayo", "local/bench/noop"`} {
		if !strings.Contains(string(cfg), s) {
			t.Errorf("CLI config lacks %q:\n%s", s, cfg)
		}
	}
	if _, err := WriteMirror(filepath.Join(base, "m2"), "", Provider{Source: "kayo", Version: "1", Binary: bin}); err == nil {
		t.Error("a source without hostname and namespace was accepted")
	}
}

func TestParseState(t *testing.T) {
	res, err := ParseState(`{"format_version":"1.0","values":{"root_module":{
		"resources":[{"address":"a.b","mode":"managed","type":"a","name":"b","values":{"name":"x"}}],
		"child_modules":[{"resources":[{"address":"module.m.data.c.d","mode":"data","type":"c","name":"d"}]}]}}}`)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Values["name"] != "x" || res[1].Mode != "data" {
		t.Errorf("ParseState = %+v", res)
	}
	if res, err := ParseState(`{"format_version":"1.0"}`); err != nil || res != nil {
		t.Errorf("empty state: %v, %v", res, err)
	}
}

// TestNoopLifecycle drives the no-op provider of bench/noop through every
// CLI: the mirror, the CLI config and the runner work end to end.
func TestNoopLifecycle(t *testing.T) {
	for _, cli := range CLIs(t) {
		t.Run(cli.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			m := NewMirror(t, Provider{Source: "local/bench/noop", Version: "0.1.0", Binary: Build(t, "./bench/noop")})
			wd := NewWorkdir(cli, t.TempDir(), m)
			if err := wd.WriteFile("main.tf", `terraform {
  required_providers {
    noop = { source = "local/bench/noop" }
  }
}
resource "noop_thing" "a" {
  name  = "a"
  cores = 8
}
output "id" { value = noop_thing.a.id }
`); err != nil {
				t.Fatal(err)
			}
			Must(t, wd.Init(ctx))
			if changes, r := wd.Plan(ctx); r.Err != nil || !changes {
				t.Fatalf("first plan: changes=%v err=%v", changes, r.Err)
			}
			Must(t, wd.Apply(ctx))
			if out := Must(t, wd.OutputJSON(ctx, "id")).Stdout; strings.TrimSpace(out) != `"a"` {
				t.Errorf("output id = %s", out)
			}
			res, err := ParseState(Must(t, wd.ShowJSON(ctx)).Stdout)
			if err != nil || len(res) != 1 || res[0].Address != "noop_thing.a" {
				t.Errorf("state = %+v, %v", res, err)
			}
			if changes, r := wd.Plan(ctx); r.Err != nil || changes {
				t.Fatalf("second plan: changes=%v err=%v\n%s", changes, r.Err, r.Stdout)
			}
			Must(t, wd.Destroy(ctx))
			if r := wd.Run(ctx, "no-such-command"); r.Err == nil || r.ExitCode == 0 {
				t.Errorf("a failing command reported success: %+v", r)
			}
		})
	}
}
