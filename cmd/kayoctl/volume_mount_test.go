package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/kayofuse"
	"github.com/kayo-labs/terraform-provider-kayo/internal/nodeagent/workexec"
	"github.com/kayo-labs/terraform-provider-kayo/internal/testcli"
)

// needFUSE skips a test that cannot mount FUSE here, except under CI=true
// (as qemutest.SkipOrFail does for QEMU).
func needFUSE(t *testing.T) {
	t.Helper()
	err := kayofuse.Available()
	if err == nil {
		_, err = exec.LookPath("qemu-img")
	}
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("FUSE mount tests cannot run under CI=true: %v (CI runs as root with /dev/fuse; .ci/run installs qemu-utils)", err)
	}
	t.Skipf("FUSE mounts are not available, skipping: %v", err)
}

// lockedBuffer is a bytes.Buffer the command writes while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The volume the engine made, with the VHD of a VM the engine created,
// mounted by `kayoctl volume mount` and read by qemu-img; a file copied in
// is read by another node's engine mount after SIGTERM unmounted it, and
// the volume checks clean.
func TestVolumeMount(t *testing.T) {
	needFUSE(t)
	dir := newDataDir(t, 10)
	ctx := context.Background()
	e, err := engine.Open(engine.Config{LocalExecutor: workexec.Local, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	vol, err := e.CreateVolume(ctx, engine.VolumeSpec{Cluster: "HVCLUSTER", LUN: "lun0", SizeGiB: 4, Label: "VMSTORE",
		DriveLetter: "O", BlockSize: 4096, NodeSlots: 16})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateVM(ctx, engine.VMSpec{Cluster: "HVCLUSTER", Volume: vol.ID, Name: "WEB01", MemoryMB: 1024, ProcessorCount: 1,
		VHD: engine.VHDSpec{SizeGiB: 3, Type: "dynamic"}, OwnerNode: "Y-21-2k8x64", AntiAffinityMode: "preferred",
		Migration: "live", State: "running", Failback: engine.FailbackSpec{Mode: "prevent"}, MaxFailures: 2, FailurePeriodHours: 6}); err != nil {
		t.Fatal(err)
	}
	e.ReleaseMounts()
	_ = e.Close()

	mnt := filepath.Join(t.TempDir(), "O")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	sig := make(chan os.Signal, 2)
	var stdout, stderr lockedBuffer
	c := &cli{stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }, signals: sig}
	exited := make(chan int, 1)
	go func() {
		exited <- c.run([]string{"--data-dir", dir, "volume", "mount", "HVCLUSTER/O", mnt, "--node", "Y-21-2k8x64"})
	}()
	unmounted := false
	t.Cleanup(func() {
		if !unmounted { // a failed test must not leave the mount behind
			sig <- syscall.SIGTERM
			<-exited
		}
	})
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(stdout.String(), "Mounted volume O:"); {
		select {
		case code := <-exited:
			unmounted = true
			t.Fatalf("volume mount exited %d before mounting:\n%s%s", code, stdout.String(), stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("not mounted after 30s:\n%s%s", stdout.String(), stderr.String())
		}
	}
	if !strings.Contains(stdout.String(), "as Y-21-2k8x64 (slot ") {
		t.Errorf("the mount does not say which node and slot:\n%s", stdout.String())
	}

	tool := func(name string, args ...string) string {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if ls := tool("ls", filepath.Join(mnt, "WEB01")); !strings.Contains(ls, "WEB01.vhd") {
		t.Errorf("ls WEB01: %q", ls)
	}
	info := tool("qemu-img", "info", "--output=json", filepath.Join(mnt, "WEB01", "WEB01.vhd"))
	var img struct {
		Format      string `json:"format"`
		VirtualSize int64  `json:"virtual-size"`
	}
	// qemu rounds a VHD's size to its CHS geometry: a little over 3 GiB
	if err := json.Unmarshal([]byte(info), &img); err != nil || img.Format != "vpc" || img.VirtualSize < 3<<30 || img.VirtualSize > 3<<30+1<<20 {
		t.Errorf("qemu-img info of the engine's VHD through the mount (%v):\n%s", err, info)
	}
	payload := bytes.Repeat([]byte("an ISO\n"), 100_000)
	src := filepath.Join(t.TempDir(), "a.iso")
	if err := os.WriteFile(src, payload, 0o644); err != nil {
		t.Fatal(err)
	}
	tool("mkdir", filepath.Join(mnt, "ISO"))
	tool("cp", src, filepath.Join(mnt, "ISO", "a.iso"))

	sig <- syscall.SIGTERM
	select {
	case code := <-exited:
		unmounted = true
		if code != 0 || !strings.Contains(stdout.String(), "Unmounted "+mnt) {
			t.Fatalf("after SIGTERM: exit %d\n%s%s", code, stdout.String(), stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("volume mount did not exit within 30s of SIGTERM")
	}
	if ents, err := os.ReadDir(mnt); err != nil || len(ents) != 0 {
		t.Errorf("after the unmount %s holds %v (%v)", mnt, ents, err)
	}

	e, err = engine.Open(engine.Config{LocalExecutor: workexec.Local, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	err = e.WithVolume(ctx, vol.ID, "Y-22-2k8x64", func(fv *kayofs.Volume) error {
		f, err := fv.Open("ISO/a.iso")
		if err != nil {
			return err
		}
		got := make([]byte, len(payload)+1)
		n, _ := f.ReadAt(got, 0)
		if !bytes.Equal(got[:n], payload) {
			t.Errorf("Y-22 reads %d bytes of the file copied in through Y-21's mount, not %d", n, len(payload))
		}
		return nil
	})
	e.ReleaseMounts()
	_ = e.Close()
	if err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := kayoctl(t, nil, "--data-dir", dir, "volume", "check", "HVCLUSTER/O"); code != 0 || !strings.Contains(out, "Check: no problems") {
		t.Errorf("volume check after the mount: exit %d\n%s%s", code, out, errOut)
	}
}

func TestVolumeMountRefuses(t *testing.T) {
	needFUSE(t)
	dir := newDataDir(t, 10)
	e, err := engine.Open(engine.Config{LocalExecutor: workexec.Local, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateVolume(context.Background(), engine.VolumeSpec{Cluster: "HVCLUSTER", LUN: "lun0", SizeGiB: 1,
		DriveLetter: "O", BlockSize: 4096, NodeSlots: 4}); err != nil {
		t.Fatal(err)
	}
	e.ReleaseMounts()
	_ = e.Close()
	empty := t.TempDir()
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "keep.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"HVCLUSTER/Q", empty, "--node", "Y-21-2k8x64"}, 1, `cluster "HVCLUSTER" has no volume Q`},
		{[]string{"HVCLUSTER/O", empty, "--node", "Y-24-2k8x64"}, 1, `--node: "Y-24-2k8x64" is not a node of cluster HVCLUSTER`},
		{[]string{"HVCLUSTER/O", empty, "--node", "NOPE"}, 1, `"NOPE" is not a node of cluster HVCLUSTER`},
		{[]string{"HVCLUSTER/O", filepath.Join(empty, "missing"), "--node", "Y-21-2k8x64"}, 1, "missing does not exist (create an empty directory first)"},
		{[]string{"HVCLUSTER/O", full, "--node", "Y-21-2k8x64"}, 1, `is not empty (it holds "keep.txt")`},
		{[]string{"HVCLUSTER/O", empty}, 2, "volume mount: want"},
		{[]string{"HVCLUSTER/O", "--node", "Y-21-2k8x64"}, 2, "volume mount: want"},
	} {
		code, _, errOut := kayoctl(t, nil, append([]string{"--data-dir", dir, "volume", "mount"}, c.args...)...)
		if code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("volume mount %s: exit %d, %q; want exit %d saying %q", strings.Join(c.args, " "), code, errOut, c.code, c.want)
		}
	}
	if ents, _ := os.ReadDir(empty); len(ents) != 0 {
		t.Errorf("a refused mount left %v in the directory", ents)
	}
}

// Without root the mount is refused, saying why (as root, the test runs
// kayoctl as nobody).
func TestVolumeMountNeedsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("runs kayoctl as another user: needs root")
	}
	bin := testcli.Build(t, "./cmd/kayoctl")
	dir, err := os.MkdirTemp("", "kayoctl-nobody")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "kayoctl")
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "volume", "mount", "HVCLUSTER/O", dir, "--node", "Y-21-2k8x64")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "needs root (running as uid 65534)") {
		t.Errorf("volume mount as nobody: %v\n%s", err, out)
	}
}
