package qemurun

import (
	"context"
	"fmt"
	"os"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor/qemu"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/hostfacts"
)

// The QEMU executor's view of a VM's drives (internal/engine/vms_disks.go): the boot disk
// served with its template merged in (vhd.OpenChain), each data disk as
// an export of its own, the DVD's ISO read-only, and whether the VM
// boots its firmware or the lab's test kernel.

// exportName is the NBD export of a VM's drive: the boot disk is the VM's
// name, data disk i "<name>-disk<i+1>", the DVD "<name>-dvd".
func dataExport(vm string, i int) string { return fmt.Sprintf("%s-disk%d", vm, i+1) }
func dvdExport(vm string) string         { return vm + "-dvd" }

// publishDrives opens vm's disks and ISO on fv and serves each as an
// export of v (reusing an export that is not fenced, so a reopen after a
// migration keeps QEMU's connections).
func (q *Runner) publishDrives(fv *kayofs.Volume, vm engine.VM, v *qemuVMRun) error {
	paths, err := engine.PathsFor(vm.DriveLetter, vm.Name)
	if err != nil {
		return err
	}
	d, f, err := engine.OpenVMDisk(fv, vm, paths.VolVHD)
	if err != nil {
		return err
	}
	v.export = q.publish(v.export, v.name, qemuVMDisk{d: d, f: f})
	if v.drives == nil {
		v.drives = map[string]*qemu.Export{}
	}
	want := map[string]bool{}
	for i := range vm.DataDisks {
		dd, df, err := engine.OpenVMDisk(fv, vm, paths.DataDiskVolPath(i))
		if err != nil {
			return err
		}
		name := dataExport(v.name, i)
		want[name] = true
		v.drives[name] = q.publish(v.drives[name], name, qemuVMDisk{d: dd, f: df})
	}
	if vm.DVD != nil {
		_, vp, err := engine.VolumeFilePath("dvd.path", vm.DVD.Path)
		if err != nil {
			return err
		}
		iso, err := fv.Open(vp)
		if err != nil {
			return &engine.InputError{Attribute: "dvd.path", Value: vm.DVD.Path, Detail: fmt.Sprintf("VM %q's DVD: %s:\\%s: %v", vm.Name, vm.DriveLetter, vm.DVD.Path, err)}
		}
		fi, err := iso.Stat()
		if err != nil {
			return err
		}
		name := dvdExport(v.name)
		want[name] = true
		v.drives[name] = q.publish(v.drives[name], name, readOnlyDisk{f: iso, size: fi.Size})
	}
	for name := range v.drives {
		if !want[name] {
			q.nbd.Remove(name)
			delete(v.drives, name)
		}
	}
	return nil
}

// hotplugDataDisks attaches to v's running QEMU the data disks its VM's
// record names beyond those it has: each new VHD opened and served as an
// export, then hot-plugged (qemu.Machine.HotplugData), so the guest sees
// it without a reboot. The disks it has are left as they are (growing
// one needs the VM off: internal/engine/vms_disks.go). A re-run after a failure finds
// what is already attached and goes on.
func (q *Runner) hotplugDataDisks(ctx context.Context, cluster string, v *qemuVMRun) error {
	vm, err := q.e.GetVM(ctx, cluster, v.name)
	if err != nil {
		return err
	}
	if len(vm.DataDisks) <= len(v.machine.Data) {
		return nil
	}
	if v.volume == "" {
		return fmt.Errorf("VM %q on %s serves no volume: %w", vm.Name, q.node, hypervisor.ErrState)
	}
	fv, err := q.mount(ctx, v.volume)
	if err != nil {
		return err
	}
	defer q.unmount(v.volume) // the VM holds its own reference
	paths, err := engine.PathsFor(vm.DriveLetter, vm.Name)
	if err != nil {
		return err
	}
	if v.drives == nil {
		v.drives = map[string]*qemu.Export{}
	}
	for i := len(v.machine.Data); i < len(vm.DataDisks); i++ {
		name := dataExport(v.name, i)
		if v.drives[name] == nil {
			d, f, err := engine.OpenVMDisk(fv, vm, paths.DataDiskVolPath(i))
			if err != nil {
				return err
			}
			v.drives[name] = q.publish(nil, name, qemuVMDisk{d: d, f: f})
		}
		if err := v.m.HotplugData(ctx, i, q.nbd.Disk(name)); err != nil {
			return err
		}
		v.machine.Data = append(v.machine.Data, q.nbd.Disk(name))
		q.cfg.Logf("qemu: %s: data disk %d (%s) attached to the running VM", vm.Name, i+1, vm.DataDiskPath(i))
	}
	return nil
}

func (q *Runner) publish(x *qemu.Export, name string, d qemu.Disk) *qemu.Export {
	if x == nil || x.Fenced() {
		return q.nbd.Add(name, d)
	}
	x.SetDisk(d)
	return x
}

// fenceExports refuses every later write of v's exports.
func (v *qemuVMRun) fenceExports() {
	if v.export != nil {
		v.export.Fence()
	}
	for _, x := range v.drives {
		x.Fence()
	}
}

// dropDrives removes v's data disk and DVD exports.
func (q *Runner) dropDrives(v *qemuVMRun) {
	for name := range v.drives {
		q.nbd.Remove(name)
	}
	v.drives = nil
}

// machineDrives is what QEMU attaches for vm beyond its boot disk, and how
// it boots: its firmware when its disk is made from a template, it has a
// DVD drive or a boot order, or the agent has no test guest; else the
// lab's test kernel (tests of VMs with a blank disk). The rule reads only
// the spec, so a migration's source and target agree on the devices.
func (q *Runner) machineDrives(vm engine.VM) qemu.Drives {
	var d qemu.Drives
	for i := range vm.DataDisks {
		d.Data = append(d.Data, q.nbd.Disk(dataExport(vm.Name, i)))
	}
	if vm.DVD != nil {
		d.DVD = q.nbd.Disk(dvdExport(vm.Name))
	}
	d.BootOrder = vm.BootOrder
	d.Firmware = vm.VHD.Source != "" || vm.DVD != nil || len(vm.BootOrder) > 0 || q.cfg.Guest.Kernel == ""
	return d
}

// qemuAccel is the accelerator of this node's VMs: $KAYO_QEMU_ACCEL
// ("kvm" or "tcg") when set, else kvm when /dev/kvm opens read-write.
func qemuAccel() string {
	switch a := os.Getenv("KAYO_QEMU_ACCEL"); a {
	case "kvm", "tcg":
		return a
	}
	return hostfacts.Accel("/dev/kvm")
}

// readOnlyDisk serves an ISO: writes fail.
type readOnlyDisk struct {
	f    *kayofs.File
	size int64
}

func (r readOnlyDisk) ReadAt(p []byte, off int64) (int, error) { return r.f.ReadAt(p, off) }
func (r readOnlyDisk) WriteAt([]byte, int64) (int, error) {
	return 0, fmt.Errorf("the DVD is read-only")
}
func (r readOnlyDisk) Size() int64  { return r.size }
func (r readOnlyDisk) Flush() error { return nil }
