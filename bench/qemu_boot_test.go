package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/vhd"
	"github.com/kayo-labs/terraform-provider-kayo/internal/guestimage"
	"github.com/kayo-labs/terraform-provider-kayo/internal/qemutest"
)

// BenchmarkQEMUTemplateBoot boots the template disk (guest/template.sh)
// to its ready line ("kayo-guest: booted from disk ...": SeaBIOS,
// syslinux loading the kernel and initramfs off the disk, the kernel,
// init finding its disk), two ways, interleaved round by round:
//
//	floor  plain QEMU on the template converted to a raw file
//	       (snapshot=on), the same memory, processors and accelerator,
//	       no NBD, no agent: QEMU start to the line.
//	kayo   VM A, a differencing child of the template on Kayo FS, started
//	       by the engine's UpdateVM (state off -> running, what terraform
//	       apply calls) and booted by a `kayoctl agent` over its NBD
//	       server: the call to the line on A's console. Stopped untimed.
//
//	go test -run '^$' -bench QEMUTemplateBoot -benchtime=5x ./bench/
func BenchmarkQEMUTemplateBoot(b *testing.B) {
	bin, g, err := qemutest.Prepare(qemutest.RepoRoot())
	if err != nil {
		qemutest.SkipOrFail(b, err)
	}
	template, err := (&guestimage.Builder{Root: qemutest.RepoRoot()}).Build(context.Background())
	if err != nil {
		qemutest.SkipOrFail(b, err)
	}
	tf, err := os.Open(template)
	if err != nil {
		b.Fatal(err)
	}
	st, _ := tf.Stat()
	td, err := vhd.Open(vhd.OSFile(tf), st.Size())
	if err != nil {
		b.Fatal(err)
	}
	gvol, err := guestimage.ReadVolume(td)
	_ = tf.Close()
	if err != nil {
		b.Fatal(err)
	}
	line := []byte(gvol.BootLine())
	dir := b.TempDir()
	raw := filepath.Join(dir, "template.raw")
	if out, err := exec.Command("qemu-img", "convert", "-f", "vpc", "-O", "raw", template, raw).CombinedOutput(); err != nil {
		b.Fatalf("qemu-img convert: %v: %s", err, out)
	}
	const mem = 192
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()

	// The kayo side: two nodes' agents, the template on O:, A made from it.
	k := newQEMUKayoBoot(b, filepath.Dir(g.Kernel), template, mem)
	var floorMs, kayoMs []float64
	floorBoot := func() {
		log := filepath.Join(dir, "floor.serial.log")
		_ = os.Remove(log)
		t0 := time.Now()
		cmd := exec.CommandContext(ctx, bin, "-accel", "tcg", "-m", fmt.Sprint(mem), "-smp", "1", "-nodefaults", "-no-user-config",
			"-display", "none", "-vga", "none", "-no-reboot", "-serial", "file:"+log,
			"-drive", "file="+raw+",format=raw,if=none,id=vhd0,snapshot=on,cache=none,aio=threads", "-device", "virtio-blk-pci,drive=vhd0,bootindex=1")
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		err := waitLine(ctx, log, line)
		floorMs = append(floorMs, float64(time.Since(t0).Milliseconds()))
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if err != nil {
			b.Fatal(err)
		}
	}
	kayoBoot := func() {
		serial := qemutest.SerialPath(k.dir, k.spec.OwnerNode, k.spec.Name)
		_ = os.Remove(serial)
		k.spec.State = engine.VMRunning
		t0 := time.Now()
		if _, err := k.e.UpdateVM(ctx, k.spec); err != nil {
			b.Fatal(err)
		}
		err := waitLine(ctx, serial, line)
		kayoMs = append(kayoMs, float64(time.Since(t0).Milliseconds()))
		if err != nil {
			b.Fatal(err)
		}
		k.spec.State = engine.VMOff
		if _, err := k.e.UpdateVM(ctx, k.spec); err != nil {
			b.Fatal(err)
		}
	}
	// One untimed boot each: the page cache holds the images after it.
	floorBoot()
	kayoBoot()
	floorMs, kayoMs = nil, nil
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			floorBoot()
			kayoBoot()
		} else {
			kayoBoot()
			floorBoot()
		}
	}
	b.StopTimer()
	b.ReportMetric(qmean(floorMs), "floor-boot-ms")
	b.ReportMetric(qmean(kayoMs), "kayo-boot-ms")
	lo, hi := ratioInterval(kayoMs, floorMs)
	msg := fmt.Sprintf("\ntemplate boot to its ready line, ms: mean (median), %d rounds\n"+
		"  floor (plain QEMU, raw file)      %.0f (%.0f)\n"+
		"  kayo (UpdateVM, agent, NBD, VHD)  %.0f (%.0f)\n"+
		"  kayo/floor, means %.2fx (95%% interval %.2f-%.2f), medians %.2fx\n",
		len(floorMs), qmean(floorMs), qmedian(floorMs), qmean(kayoMs), qmedian(kayoMs),
		qmean(kayoMs)/max(qmean(floorMs), 1), lo, hi, qmedian(kayoMs)/max(qmedian(floorMs), 1))
	b.Log(msg)
	_, _ = fmt.Fprint(os.Stdout, msg)
}

// waitLine waits until the file at path holds line.
func waitLine(ctx context.Context, path string, line []byte) error {
	for {
		if b, _ := os.ReadFile(path); strings.Contains(string(b), string(line)) {
			return nil
		}
		select {
		case <-ctx.Done():
			b, _ := os.ReadFile(path)
			return fmt.Errorf("%s never showed %q: %w\n%s", path, line, ctx.Err(), b)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// newQEMUKayoBoot is the lab (newQEMULab) with the template put on O:
// and VM A, a differencing child of it, created off.
func newQEMUKayoBoot(b *testing.B, guestDir, template string, mem int64) *qemuKayo {
	b.Helper()
	ctx := context.Background()
	k := newQEMULab(b, guestDir, 4, nil)
	if _, err := k.e.PutVolumeFile(ctx, engine.VolumeFileSpec{Volume: k.vol, Path: `templates\base.vhd`, Source: template}); err != nil {
		b.Fatal(err)
	}
	k.spec = engine.VMSpec{Cluster: "HVCLUSTER", Volume: k.vol, Name: "A", MemoryMB: mem, ProcessorCount: 1,
		VHD: engine.VHDSpec{SizeGiB: 1, Type: engine.VHDDynamic, Source: `templates\base.vhd`}, OwnerNode: k.nodes[0],
		AntiAffinityMode: "preferred", Migration: engine.MigrationLive, State: engine.VMOff,
		Failback: engine.FailbackSpec{Mode: engine.FailbackPrevent}, MaxFailures: 1, FailurePeriodHours: 6}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	k.createVM(cctx, b)
	return k
}
