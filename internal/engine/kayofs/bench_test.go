package kayofs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// countDevice counts what the VM benchmark cares about: device syncs and
// reads/writes (syscalls), beside the lock calls lockMgr counts.
type countDevice struct {
	*FileDevice
	syncs, reads, writes atomic.Int64
}

func (d *countDevice) Sync() error {
	d.syncs.Add(1)
	return d.FileDevice.Sync()
}

func (d *countDevice) ReadAt(p []byte, off int64) (int, error) {
	d.reads.Add(1)
	return d.FileDevice.ReadAt(p, off)
}

func (d *countDevice) WriteAt(p []byte, off int64) (int, error) {
	d.writes.Add(1)
	return d.FileDevice.WriteAt(p, off)
}

// benchDir is KAYOFS_BENCH_DIR (e.g. a directory on a real disk, where
// fsync costs what it costs) or tmpfs.
func benchDir(b *testing.B) string {
	if d := os.Getenv("KAYOFS_BENCH_DIR"); d != "" {
		dir, err := os.MkdirTemp(d, "kayofs-bench-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	return tmpDir(b)
}

// vhdBytes is what vhd.Create writes for a dynamic 10 GiB disk: footer
// copy, dynamic header, BAT (5120 entries), footer.
const (
	vhdBytes = 512 + 1024 + 5120*4 + 512
	xmlBytes = 2048
)

// vmCreate does what the engine's writeFilesOn does for a fresh VM.
func vmCreate(v *Volume, name string, vhdBuf, xml []byte) error {
	if err := v.Mkdir(name); err != nil && !errors.Is(err, ErrExist) {
		return err
	}
	f, err := v.Create(name + "/" + name + ".vhd")
	if err != nil {
		return err
	}
	cf, err := v.Create(name + "/" + name + ".xml")
	if err != nil {
		return err
	}
	if _, err := f.Stat(); err != nil {
		return err
	}
	if err := f.Truncate(0); err != nil { // vhd.Create starts with it
		return err
	}
	if _, err := f.WriteAt(vhdBuf, 0); err != nil {
		return err
	}
	if _, err := cf.Stat(); err != nil {
		return err
	}
	_, err = cf.WriteAt(xml, 0)
	return err
}

// vmDestroy does what the engine's removeFiles does.
func vmDestroy(v *Volume, name string) error {
	ents, err := v.ReadDir(name)
	if err != nil {
		return err
	}
	if len(ents) != 2 {
		return fmt.Errorf("%s: %d entries", name, len(ents))
	}
	for _, p := range []string{name + "/" + name + ".xml", name + "/" + name + ".vhd", name} {
		if err := v.Remove(p); err != nil {
			return err
		}
	}
	return nil
}

// vmCreateBatch is vmCreate through CreateFiles (one transaction).
func vmCreateBatch(v *Volume, name string, vhdBuf, xml []byte) error {
	_, err := v.CreateFiles(name, []NewFile{{Name: name + ".vhd", Data: vhdBuf}, {Name: name + ".xml", Data: xml}})
	return err
}

// vmDestroyBatch is vmDestroy through RemoveDir (one transaction).
func vmDestroyBatch(v *Volume, name string) error { return v.RemoveDir(name) }

// BenchmarkVMLifecycle is the Kayo FS share of the provider's VM benchmark
// (issue #4): 200 VMs get their directory, dynamic VHD and configuration,
// then are destroyed. "2mounts": two nodes of one volume (separate lock
// descriptors and caches, as two processes), each VM created on one and,
// as after a live migration, destroyed from the other. "batch-": the same
// through CreateFiles and RemoveDir. "16mounts": every slot has a live
// owner. Metrics are per VM.
func BenchmarkVMLifecycle(b *testing.B) {
	const vms = 200
	for _, c := range []struct {
		prefix  string
		create  func(*Volume, string, []byte, []byte) error
		destroy func(*Volume, string) error
		mounts  int
		views   bool // the mounts share one namespace view (views.go)
	}{
		{"", vmCreate, vmDestroy, 1, false},
		{"", vmCreate, vmDestroy, 2, false},
		{"batch-", vmCreateBatch, vmDestroyBatch, 1, false},
		{"batch-", vmCreateBatch, vmDestroyBatch, 2, false},
		{"", vmCreate, vmDestroy, 16, false}, // every slot live, as the 16-host benchmark
		{"batch-", vmCreateBatch, vmDestroyBatch, 16, false},
		{"batch-", vmCreateBatch, vmDestroyBatch, 16, true}, // one process's mounts, as the provider's embedded agents
	} {
		mounts := c.mounts
		name := fmt.Sprintf("%s%dmounts", c.prefix, mounts)
		var views *Views
		if c.views {
			name, views = name+"-views", NewViews()
		}
		b.Run(name, func(b *testing.B) {
			fd, err := CreateImage(filepath.Join(benchDir(b), "lun.img"), 64<<30)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { fd.Close() })
			dev := &countDevice{FileDevice: fd}
			if _, err := Format(dev, FormatOptions{Slots: 16}); err != nil {
				b.Fatal(err)
			}
			var vs []*Volume
			for i := 0; i < mounts; i++ {
				v, err := Mount(dev, fmt.Sprintf("node%d", i), MountOptions{Views: views})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = v.Unmount() })
				vs = append(vs, v)
			}
			vhdBuf, xml := make([]byte, vhdBytes), make([]byte, xmlBytes)
			for i := range vhdBuf {
				vhdBuf[i] = 0xFF
			}
			copy(xml, "<vm/>")
			syncs, reads, writes, locks := dev.syncs.Load(), dev.reads.Load(), dev.writes.Load(), lockCalls.Load()
			b.ResetTimer()
			for n := 0; n < b.N; n++ {
				for i := 0; i < vms; i++ {
					if err := c.create(vs[i%mounts], fmt.Sprintf("VM%03d", i), vhdBuf, xml); err != nil {
						b.Fatal(err)
					}
				}
				for i := 0; i < vms; i++ {
					if err := c.destroy(vs[(i+1)%mounts], fmt.Sprintf("VM%03d", i)); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.StopTimer()
			per := float64(b.N * vms)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/per, "ns/vm")
			b.ReportMetric(float64(dev.syncs.Load()-syncs)/per, "fsyncs/vm")
			b.ReportMetric(float64(dev.reads.Load()-reads)/per, "reads/vm")
			b.ReportMetric(float64(dev.writes.Load()-writes)/per, "writes/vm")
			b.ReportMetric(float64(lockCalls.Load()-locks)/per, "lockcalls/vm")
			for _, v := range vs {
				if err := v.Unmount(); err != nil {
					b.Fatal(err)
				}
			}
			mustCheck(b, dev)
		})
	}
}
