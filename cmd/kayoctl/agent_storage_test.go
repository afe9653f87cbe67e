//go:build unix

package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/validate"
	"github.com/kayo-labs/terraform-provider-kayo/internal/hostfacts"
	"github.com/kayo-labs/terraform-provider-kayo/internal/nodeagent/workexec"
	"github.com/kayo-labs/terraform-provider-kayo/internal/testcli"
)

// Three agents, as processes on this machine, share a file-backed LUN that
// each reaches by a path of its own (device_paths). Their storage probes
// make the Storage validation pass (each leased the LUN, wrote its block
// and read the other two); an agent reports the LUN with its Kayo FS UUID.
// Then one host loses its path: the Storage test fails naming it.
func TestAgentsStorageProbes(t *testing.T) {
	bin := testcli.Build(t, "./cmd/kayoctl")
	dir := newDataDir(t, 2)
	ctx := context.Background()
	lunDir := t.TempDir()
	img := sparseLUN(t)
	paths := map[string]string{}
	for _, n := range threeNodes {
		paths[n] = filepath.Join(lunDir, n, "lun")
		if err := os.MkdirAll(filepath.Dir(paths[n]), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(img, paths[n]); err != nil {
			t.Fatal(err)
		}
	}
	e, err := engine.Open(engine.Config{LocalExecutor: workexec.Local, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	v, err := e.CreateVolume(ctx, engine.VolumeSpec{Cluster: "HVCLUSTER", DevicePaths: paths, SizeGiB: 1, DriveLetter: "O",
		BlockSize: 4096, NodeSlots: 4, FileBacked: true})
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.GetCluster(ctx, "HVCLUSTER")
	if err != nil {
		t.Fatal(err)
	}
	spec := c.ClusterSpec
	_ = e.Close()

	var agents []*agentProc
	for _, n := range threeNodes {
		agents = append(agents, startAgentCmd(t, n, exec.Command(bin, "--data-dir", dir, "agent", "--node", n, "--interval", agentInterval.String(),
			"--probe-port=0", "--storage-probe-interval=300ms")))
	}
	logs := func() string { return agentLogs(agents) }
	storage := func() (list, access validate.Test) {
		e, err := engine.Open(engine.Config{LocalExecutor: workexec.Local, DataDir: dir})
		if err != nil {
			return
		}
		defer e.Close()
		pc, err := e.ValidateCluster(ctx, spec, false)
		if err != nil {
			return
		}
		for _, x := range pc.Report.Tests {
			switch x.Name {
			case validate.TestSharedStorage:
				list = x
			case validate.TestDiskAccess:
				access = x
			}
		}
		return
	}
	waitFor := func(what string, ok func(list, access validate.Test) bool) {
		t.Helper()
		var list, access validate.Test
		for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
			if list, access = storage(); ok(list, access) {
				return
			}
		}
		t.Fatalf("%s: never; last:\n%+v\n%+v\nagent logs:\n%s", what, list, access, logs())
	}
	waitFor("storage validation passes from the probes", func(list, access validate.Test) bool {
		return list.Result == validate.Passed && list.Source == validate.SourceProbed && access.Result == validate.Passed
	})
	// The agent's report lists the file-backed LUN with the volume's UUID.
	var luns []hostfacts.LUN
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		e, err := engine.Open(engine.Config{LocalExecutor: workexec.Local, DataDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		r, _, err := e.HostReport(ctx, threeNodes[1])
		_ = e.Close()
		luns = r.LUNs
		if err == nil && slices.ContainsFunc(luns, func(l hostfacts.LUN) bool {
			return l.Path == paths[threeNodes[1]] && l.KayofsUUID == v.ID && l.SizeBytes == 1<<30
		}) {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("report of %s: %+v, %v; want LUN %s with Kayo FS %s\nagent logs:\n%s", threeNodes[1], luns, err, paths[threeNodes[1]], v.ID, logs())
		}
	}
	// Y-23 no longer sees the LUN.
	if err := os.Remove(paths[threeNodes[2]]); err != nil {
		t.Fatal(err)
	}
	waitFor("the Storage test fails naming the host", func(list, access validate.Test) bool {
		return list.Result == validate.Failed && strings.Contains(list.Message, `node "Y-23-2k8x64" does not see the LUN of volume O:`) &&
			!strings.Contains(list.Message, `"Y-21-2k8x64"`) && access.Result == validate.Failed
	})
}
