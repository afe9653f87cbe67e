package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/vhd"
)

// localTemplate writes a 64 MiB dynamic VHD whose sectors 0 and 4096
// hold known bytes, and returns its path.
func localTemplate(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "base.vhd")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := vhd.Create(vhd.OSFile(f), vhd.Options{Type: vhd.Dynamic, Size: 64 << 20, Time: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, 4096 * 512} {
		if _, err := d.WriteAt(bytes.Repeat([]byte("T"), 512), off); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func inputAttr(t *testing.T, err error, attr string, words ...string) {
	t.Helper()
	var ie *InputError
	if !errors.As(err, &ie) || ie.Attribute != attr {
		t.Fatalf("error %v, want an InputError naming %s", err, attr)
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
}

// volFileSum is the sha256 the volume's file at vp has, read back.
func volBytes(t *testing.T, e *Engine, vol Volume, vp string) []byte {
	t.Helper()
	var out []byte
	err := e.WithVolume(context.Background(), vol.ID, y21, func(fv *kayofs.Volume) error {
		f, err := fv.Open(vp)
		if err != nil {
			return err
		}
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		out = make([]byte, fi.Size)
		_, err = f.ReadAt(out, 0)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Two VMs made from one template are differencing children of it: they
// read the template's bytes, their writes land in their own files only,
// the template cannot be deleted while they exist (the error names
// them), and a full copy is a standalone disk that needs no template.
func TestVMsFromTemplate(t *testing.T) {
	ctx := context.Background()
	e, vol := vmEnv(t)
	src := localTemplate(t)
	f, err := e.PutVolumeFile(ctx, VolumeFileSpec{Volume: vol.ID, Path: `templates\base.vhd`, Source: src})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := fileSHA256(src)
	if f.Kind != FileVHD || f.SHA256 != want || f.VHDType != "dynamic" || f.VirtualSize < 64<<20 {
		t.Fatalf("volume file %+v", f)
	}
	before := volBytes(t, e, vol, "templates/base.vhd")
	local, _ := os.ReadFile(src)
	if !bytes.Equal(before, local) {
		t.Fatal("the template on the volume differs from the local file")
	}
	// The same put again keeps it.
	if _, err := e.PutVolumeFile(ctx, VolumeFileSpec{Volume: vol.ID, Path: "templates/base.vhd", Source: src}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"A", "B"} {
		s := vmSpec(vol, name, 512)
		s.VHD = VHDSpec{SizeGiB: 1, Type: VHDDynamic, Source: "templates/base.vhd"}
		if _, err := e.CreateVM(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	cs := vmSpec(vol, "C", 512)
	cs.VHD = VHDSpec{SizeGiB: 1, Type: VHDFixed, Source: `templates\base.vhd`, Clone: CloneCopy}
	if _, err := e.CreateVM(ctx, cs); err != nil {
		t.Fatal(err)
	}
	err = e.WithVolume(ctx, vol.ID, y21, func(fv *kayofs.Volume) error {
		for _, name := range []string{"A", "B", "C"} {
			vm, err := e.GetVM(ctx, "HVCLUSTER", name)
			if err != nil {
				return err
			}
			d, _, err := OpenVMDisk(fv, vm, name+"/"+name+".vhd")
			if err != nil {
				return err
			}
			if d.Size() < 1<<30 {
				t.Errorf("%s: disk of %d bytes, want the 1 GiB asked (grown past the template)", name, d.Size())
			}
			wantType, wantParent := vhd.Differencing, `..\templates\base.vhd`
			if name == "C" {
				wantType, wantParent = vhd.Fixed, ""
			}
			if d.Type() != wantType || d.ParentPath() != wantParent {
				t.Errorf("%s: type %v parent %q, want %v %q", name, d.Type(), d.ParentPath(), wantType, wantParent)
			}
			got := make([]byte, 512)
			if _, err := d.ReadAt(got, 4096*512); err != nil || !bytes.Equal(got, bytes.Repeat([]byte("T"), 512)) {
				t.Errorf("%s: sector 4096 reads %q (%v), want the template's", name, got[:8], err)
			}
			if _, err := d.WriteAt([]byte("written by "+name), 4096*512); err != nil {
				return err
			}
			if _, err := d.ReadAt(got, 4096*512); err != nil || !bytes.HasPrefix(got, []byte("written by "+name+"TTT")) {
				t.Errorf("%s: after its write, sector 4096 reads %q (%v)", name, got[:20], err)
			}
			if name != "C" {
				if n, err := d.OwnSectors(); err != nil || n != 1 {
					t.Errorf("%s: the child holds %d sectors (%v), want just the one it wrote", name, n, err)
				}
				f, _ := fv.Open(name + "/" + name + ".vhd")
				fi, _ := f.Stat()
				if p := vhd.CheckChain(vmFile{f}, fi.Size, volumeOpener(fv, name)); len(p) > 0 {
					t.Errorf("%s: CheckChain: %v", name, p)
				}
			}
			d.Close()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(volBytes(t, e, vol, "templates/base.vhd"), before) {
		t.Fatal("the template changed while its children were written")
	}
	err = e.DeleteVolumeFile(ctx, vol.ID, `templates\base.vhd`)
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "VM A, B (") {
		t.Fatalf("deleting the template of A and B: %v, want ErrInUse naming A and B", err)
	}
	if f, err := e.GetVolumeFile(ctx, vol.ID, "templates/base.vhd"); err != nil || f.Deleting {
		t.Fatalf("after the refused delete: %+v %v, want the record usable", f, err)
	}
	// A third child can still be made (the refused delete left it usable).
	if err := e.DeleteVM(ctx, "HVCLUSTER", "A"); err != nil {
		t.Fatal(err)
	}
	if err := e.DeleteVM(ctx, "HVCLUSTER", "B"); err != nil {
		t.Fatal(err)
	}
	// C is a copy: the template goes, C's disk still opens.
	if err := e.DeleteVolumeFile(ctx, vol.ID, `templates\base.vhd`); err != nil {
		t.Fatal(err)
	}
	if _, err := e.GetVolumeFile(ctx, vol.ID, `templates\base.vhd`); !errors.Is(err, ErrNotFound) {
		t.Fatalf("record after delete: %v", err)
	}
	err = e.WithVolume(ctx, vol.ID, y21, func(fv *kayofs.Volume) error {
		if _, err := fv.Stat("templates"); !errors.Is(err, kayofs.ErrNotExist) {
			t.Errorf("the directory the put made outlived its last file: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.UpdateVM(ctx, func() VMSpec { s := cs; s.State = VMOff; return s }()); err != nil {
		t.Fatal(err)
	}
}

// Bad inputs: a *.vhd that is no VHD is refused before anything is
// written; a VM naming a template not on the volume, one too small, or a
// file of another kind fails naming the attribute; a child whose parent
// vanished from the volume is a clear error naming vhd.source.
func TestVMTemplateBadInputs(t *testing.T) {
	ctx := context.Background()
	e, vol := vmEnv(t)
	junk := filepath.Join(t.TempDir(), "junk.vhd")
	if err := os.WriteFile(junk, bytes.Repeat([]byte("not a disk "), 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := e.PutVolumeFile(ctx, VolumeFileSpec{Volume: vol.ID, Path: `templates\junk.vhd`, Source: junk})
	inputAttr(t, err, "source", "not a valid VHD")
	if _, err := e.GetVolumeFile(ctx, vol.ID, `templates\junk.vhd`); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a refused put left a record: %v", err)
	}
	err = e.WithVolume(ctx, vol.ID, y21, func(fv *kayofs.Volume) error {
		if _, err := fv.Stat("templates"); !errors.Is(err, kayofs.ErrNotExist) {
			t.Errorf("a refused put created templates/: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.PutVolumeFile(ctx, VolumeFileSpec{Volume: vol.ID, Path: `..\x.vhd`, Source: junk})
	inputAttr(t, err, "path")
	iso := filepath.Join(t.TempDir(), "tools.iso")
	if err := os.WriteFile(iso, bytes.Repeat([]byte{0}, 40000), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = e.PutVolumeFile(ctx, VolumeFileSpec{Volume: vol.ID, Path: `isos\tools.iso`, Source: iso})
	inputAttr(t, err, "source", "ISO 9660")
	b, _ := os.ReadFile(iso)
	copy(b[0x8001:], "CD001")
	_ = os.WriteFile(iso, b, 0o644)
	if _, err := e.PutVolumeFile(ctx, VolumeFileSpec{Volume: vol.ID, Path: `isos\tools.iso`, Source: iso}); err != nil {
		t.Fatal(err)
	}

	s := vmSpec(vol, "WEB01", 512)
	s.VHD = VHDSpec{SizeGiB: 1, Type: VHDDynamic, Source: `templates\base.vhd`}
	_, err = e.PlanVM(ctx, s)
	if err != nil {
		t.Fatalf("planning a template that a kayo_volume_file of the same apply may put: %v, want a warning", err)
	}
	if p, _ := e.PlanVM(ctx, s); len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0], `templates\base.vhd`) {
		t.Errorf("plan warnings %q", p.Warnings)
	}
	_, err = e.CreateVM(ctx, s)
	inputAttr(t, err, "vhd.source", `templates\base.vhd`, "kayo_volume_file")
	s.VHD.Source = `isos\tools.iso`
	_, err = e.PlanVM(ctx, s)
	inputAttr(t, err, "vhd.source", "not a VHD")
	s.VHD = VHDSpec{SizeGiB: 1, Type: VHDFixed, Source: `templates\base.vhd`}
	_, err = e.PlanVM(ctx, s)
	inputAttr(t, err, "vhd.type", "differencing")
	s.VHD = VHDSpec{SizeGiB: 1, Type: VHDDynamic, Source: `templates\base.vhd`, Clone: "linked"}
	_, err = e.PlanVM(ctx, s)
	inputAttr(t, err, "vhd.clone", "linked", `"copy"`)
	s.VHD.Clone = ""
	s.DVD = &DVDSpec{Path: `templates\base.vhd`}
	s.BootOrder = []string{BootDVD, "network"}
	_, err = e.PlanVM(ctx, s)
	inputAttr(t, err, "boot_order[1]", "network")
	s.BootOrder = nil
	if _, err := e.PutVolumeFile(ctx, VolumeFileSpec{Volume: vol.ID, Path: `templates\base.vhd`, Source: localTemplate(t)}); err != nil {
		t.Fatal(err)
	}
	_, err = e.PlanVM(ctx, s)
	inputAttr(t, err, "dvd.path", "not an ISO")
	s.DVD = &DVDSpec{Path: `isos/tools.iso`}
	if vms, _ := e.ListVMs(ctx, "HVCLUSTER"); len(vms) != 0 {
		t.Fatalf("refused VMs left records: %v", vms)
	}

	// A child whose template vanished (removed behind the cluster's back).
	if _, err := e.CreateVM(ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := e.DeleteVolumeFile(ctx, vol.ID, `isos\tools.iso`); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "DVD drive of VM WEB01") {
		t.Fatalf("deleting the ISO in WEB01's DVD drive: %v", err)
	}
	err = e.WithVolume(ctx, vol.ID, y21, func(fv *kayofs.Volume) error { return fv.Remove("templates/base.vhd") })
	if err != nil {
		t.Fatal(err)
	}
	s.VHD.SizeGiB, s.AllowRestart = 2, true
	_, err = e.UpdateVM(ctx, s)
	inputAttr(t, err, "vhd.source", "differencing disk whose parent", `templates\base.vhd`)
}

// Data disks are made beside the boot disk, grow in place, are added at
// the end and never removed or retyped in place; the config file lists
// them and the DVD.
func TestVMDataDisks(t *testing.T) {
	ctx := context.Background()
	e, vol := vmEnv(t)
	s := vmSpec(vol, "DB01", 512)
	s.State = VMOff
	s.DataDisks = []VHDSpec{{SizeGiB: 2, Type: VHDDynamic}, {SizeGiB: 1, Type: VHDFixed}}
	vm, err := e.CreateVM(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if vm.DataDiskPath(1) != `O:\DB01\DB01-disk2.vhd` {
		t.Errorf("data disk path %s", vm.DataDiskPath(1))
	}
	size := func(vp string) int64 {
		var n int64
		err := e.WithVolume(ctx, vol.ID, y21, func(fv *kayofs.Volume) error {
			d, _, err := OpenVMDisk(fv, vm, vp)
			if err == nil {
				n = d.Size()
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if a, b := size("DB01/DB01-disk1.vhd"), size("DB01/DB01-disk2.vhd"); a < 2<<30 || b < 1<<30 {
		t.Fatalf("data disks of %d and %d bytes", a, b)
	}
	s.DataDisks = []VHDSpec{{SizeGiB: 3, Type: VHDDynamic}, {SizeGiB: 1, Type: VHDFixed}, {SizeGiB: 1, Type: VHDDynamic}}
	if _, err := e.UpdateVM(ctx, s); err != nil {
		t.Fatal(err)
	}
	if a, c := size("DB01/DB01-disk1.vhd"), size("DB01/DB01-disk3.vhd"); a < 3<<30 || c < 1<<30 {
		t.Fatalf("after growth and addition: %d and %d bytes", a, c)
	}
	bad := s
	bad.DataDisks = s.DataDisks[:1]
	_, err = e.UpdateVM(ctx, bad)
	inputAttr(t, err, "data_disks", "delete its data")
	bad.DataDisks = []VHDSpec{{SizeGiB: 3, Type: VHDFixed}, {SizeGiB: 1, Type: VHDFixed}, {SizeGiB: 1, Type: VHDDynamic}}
	_, err = e.UpdateVM(ctx, bad)
	inputAttr(t, err, "data_disks[0].type")
	bad.DataDisks = []VHDSpec{{SizeGiB: 3, Type: VHDDynamic}, {SizeGiB: 1, Type: VHDFixed}, {SizeGiB: 0, Type: VHDDynamic}}
	_, err = e.PlanVM(ctx, bad)
	inputAttr(t, err, "data_disks[2].size_gib")
	got, err := e.GetVM(ctx, "HVCLUSTER", "DB01")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(got.ConfigXML()), `O:\DB01\DB01-disk3.vhd`) {
		t.Errorf("config file does not list disk 3:\n%s", got.ConfigXML())
	}
	if err := e.DeleteVM(ctx, "HVCLUSTER", "DB01"); err != nil {
		t.Fatal(err)
	}
	err = e.WithVolume(ctx, vol.ID, y21, func(fv *kayofs.Volume) error {
		if _, err := fv.Stat("DB01"); !errors.Is(err, kayofs.ErrNotExist) {
			t.Errorf("DB01's directory after delete: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestVMDataDisksAddedRunning: a data disk added to a running VM is
// taken in place (no allow_restart, no restart: the same boot runs on,
// the disk is written); growing one still needs the VM off; adding disks
// while the VM moves to another node is refused, nothing changed.
func TestVMDataDisksAddedRunning(t *testing.T) {
	ctx := context.Background()
	e, vol := vmEnv(t)
	s := vmSpec(vol, "DB01", 512)
	s.OwnerNode = y21
	if _, err := e.CreateVM(ctx, s); err != nil {
		t.Fatal(err)
	}
	boots := func() int {
		st, err := e.Simulator("HVCLUSTER").Status(ctx, y21, "DB01")
		if err != nil {
			t.Fatal(err)
		}
		return st.Boots
	}
	before := boots()
	s.DataDisks = []VHDSpec{{SizeGiB: 1, Type: VHDDynamic}}
	vm, err := e.UpdateVM(ctx, s)
	if err != nil {
		t.Fatalf("adding a data disk to the running VM: %v", err)
	}
	if vm.Status != VMRunning || vm.Node != y21 || boots() != before {
		t.Fatalf("after the addition: %s on %s, %d boots (was %d): want the same run", vm.Status, vm.Node, boots(), before)
	}
	err = e.WithVolume(ctx, vol.ID, y21, func(fv *kayofs.Volume) error {
		d, _, err := OpenVMDisk(fv, vm, "DB01/DB01-disk1.vhd")
		if err == nil && d.Size() < 1<<30 {
			err = fmt.Errorf("%d bytes", d.Size())
		}
		return err
	})
	if err != nil {
		t.Fatalf("the added data disk: %v", err)
	}
	// An addition whose process died after its intent (the record names
	// disk 2, pending): the next call finishes it, the VM still running.
	prior := vm.VMSpec
	vm.DataDisks = append(slices.Clone(prior.DataDisks), VHDSpec{SizeGiB: 1, Type: VHDDynamic})
	vm.Pending = &Pending{ID: randomHex(8), Op: opConverge, Phase: PhasePrepare, Prior: &prior, Files: true, Holder: e.newHolder(), StartedAt: e.now().UTC()}
	if _, err := e.st.Commit(ctx, nil, []store.Op{putJSON(vmKey(vm.Cluster, vm.Name), vm)}); err != nil {
		t.Fatal(err)
	}
	if vm, err = e.RefreshVM(ctx, "HVCLUSTER", "DB01"); err != nil || vm.Pending != nil || vm.Status != VMRunning || boots() != before {
		t.Fatalf("recovering the abandoned addition: %v, pending %+v, %s, %d boots (was %d)", err, vm.Pending, vm.Status, boots(), before)
	}
	err = e.WithVolume(ctx, vol.ID, y21, func(fv *kayofs.Volume) error {
		_, _, err := OpenVMDisk(fv, vm, "DB01/DB01-disk2.vhd")
		return err
	})
	if err != nil {
		t.Fatalf("the data disk of the recovered addition: %v", err)
	}
	s = vm.VMSpec
	grow := s
	grow.DataDisks = []VHDSpec{{SizeGiB: 2, Type: VHDDynamic}, {SizeGiB: 1, Type: VHDDynamic}}
	_, err = e.UpdateVM(ctx, grow)
	inputAttr(t, err, "data_disks", "needs it off")
	move := s
	move.OwnerNode = y22
	move.DataDisks = append(slices.Clone(s.DataDisks), VHDSpec{SizeGiB: 1, Type: VHDDynamic})
	_, err = e.UpdateVM(ctx, move)
	inputAttr(t, err, "data_disks", "two applies")
	got, err := e.GetVM(ctx, "HVCLUSTER", "DB01")
	if err != nil {
		t.Fatal(err)
	}
	if got.Node != y21 || len(got.DataDisks) != 2 || got.Pending != nil {
		t.Fatalf("after the refused changes: on %s with %d data disks, pending %+v", got.Node, len(got.DataDisks), got.Pending)
	}
}

// TestVMDisksQemuImg has qemu-img read the VHDs the engine writes beside
// a VM's blank boot disk (TestVHDOnVolumeQemuImg covers those): data
// disks of both types, one grown in place, one added, and a full copy of a
// template of both types. Each is copied off the volume; `qemu-img info`
// gives its virtual size, `qemu-img check` passes (qemu's vpc driver has
// no check: exit 63 "does not support checks" is accepted), and
// `qemu-img convert` to raw reads the bytes the engine's reader does.
// A differencing child cannot be read by qemu: CheckVMDisk checks it.
func TestVMDisksQemuImg(t *testing.T) {
	qemuImg, err := exec.LookPath("qemu-img")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("qemu-img not found: install Debian's qemu-utils")
		}
		t.Skip("qemu-img not found: install Debian's qemu-utils to run this test")
	}
	ctx := context.Background()
	e, vol := vmEnv(t)
	if _, err := e.PutVolumeFile(ctx, VolumeFileSpec{Volume: vol.ID, Path: `templates\base.vhd`, Source: localTemplate(t)}); err != nil {
		t.Fatal(err)
	}
	type disk struct{ vm, vp string }
	var disks []disk
	for _, typ := range []string{VHDDynamic, VHDFixed} {
		s := vmSpec(vol, "COPY-"+typ, 512)
		s.State = VMOff
		s.VHD = VHDSpec{SizeGiB: 1, Type: typ, Source: `templates\base.vhd`, Clone: CloneCopy}
		if _, err := e.CreateVM(ctx, s); err != nil {
			t.Fatal(err)
		}
		disks = append(disks, disk{s.Name, s.Name + "/" + s.Name + ".vhd"})
	}
	s := vmSpec(vol, "DATA", 512)
	s.State = VMOff
	s.DataDisks = []VHDSpec{{SizeGiB: 1, Type: VHDDynamic}, {SizeGiB: 1, Type: VHDFixed}}
	if _, err := e.CreateVM(ctx, s); err != nil {
		t.Fatal(err)
	}
	s.DataDisks = []VHDSpec{{SizeGiB: 2, Type: VHDDynamic}, {SizeGiB: 1, Type: VHDFixed}, {SizeGiB: 1, Type: VHDDynamic}}
	if _, err := e.UpdateVM(ctx, s); err != nil {
		t.Fatal(err)
	}
	for i := range s.DataDisks {
		disks = append(disks, disk{"DATA", fmt.Sprintf("DATA/DATA-disk%d.vhd", i+1)})
	}
	child := vmSpec(vol, "CHILD", 512)
	child.State = VMOff
	child.VHD = VHDSpec{SizeGiB: 1, Type: VHDDynamic, Source: `templates\base.vhd`}
	if _, err := e.CreateVM(ctx, child); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	err = e.WithVolume(ctx, vol.ID, y21, func(fv *kayofs.Volume) error {
		cvm, err := e.GetVM(ctx, "HVCLUSTER", "CHILD")
		if err != nil {
			return err
		}
		if probs, err := CheckVMDisk(fv, cvm, "CHILD/CHILD.vhd"); err != nil || len(probs) > 0 {
			t.Errorf("CheckVMDisk of the child: %v %v", probs, err)
		}
		for _, dk := range disks {
			vm, err := e.GetVM(ctx, "HVCLUSTER", dk.vm)
			if err != nil {
				return err
			}
			d, f, err := OpenVMDisk(fv, vm, dk.vp)
			if err != nil {
				return err
			}
			if probs, err := CheckVMDisk(fv, vm, dk.vp); err != nil || len(probs) > 0 {
				t.Errorf("%s: CheckVMDisk: %v %v", dk.vp, probs, err)
			}
			fi, err := f.Stat()
			if err != nil {
				return err
			}
			out := filepath.Join(dir, strings.ReplaceAll(dk.vp, "/", "_"))
			o, err := os.Create(out)
			if err != nil {
				return err
			}
			buf := make([]byte, 1<<20)
			for off := int64(0); off < fi.Size; off += int64(len(buf)) {
				n := min(int64(len(buf)), fi.Size-off)
				if _, err := f.ReadAt(buf[:n], off); err != nil {
					return err
				}
				if !isZero(buf[:n]) {
					if _, err := o.WriteAt(buf[:n], off); err != nil {
						return err
					}
				}
			}
			if err := o.Truncate(fi.Size); err != nil {
				return err
			}
			_ = o.Close()
			info, err := exec.Command(qemuImg, "info", "-f", "vpc", "--output=json", out).CombinedOutput()
			if err != nil || !strings.Contains(string(info), fmt.Sprintf(`"virtual-size": %d`, d.Size())) {
				t.Errorf("%s: qemu-img info: %v, want virtual size %d\n%s", dk.vp, err, d.Size(), info)
			}
			chk, err := exec.Command(qemuImg, "check", "-f", "vpc", out).CombinedOutput()
			var ee *exec.ExitError
			if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 63 && strings.Contains(string(chk), "does not support checks")) {
				t.Errorf("%s: qemu-img check: %v\n%s", dk.vp, err, chk)
			}
			raw := out + ".raw"
			if msg, err := exec.Command(qemuImg, "convert", "-f", "vpc", "-O", "raw", out, raw).CombinedOutput(); err != nil {
				t.Errorf("%s: qemu-img convert: %v\n%s", dk.vp, err, msg)
				continue
			}
			rf, err := os.Open(raw)
			if err != nil {
				return err
			}
			got, want := make([]byte, 1<<20), make([]byte, 1<<20)
			for off := int64(0); off < d.Size(); off += int64(len(got)) {
				n := min(int64(len(got)), d.Size()-off)
				if _, err := rf.ReadAt(got[:n], off); err != nil {
					t.Errorf("%s: qemu's raw image at %d: %v", dk.vp, off, err)
					break
				}
				if _, err := d.ReadAt(want[:n], off); err != nil {
					return err
				}
				if !bytes.Equal(got[:n], want[:n]) {
					t.Errorf("%s: qemu reads other bytes than the engine in the MiB at %d", dk.vp, off)
					break
				}
			}
			sec := make([]byte, 512)
			if _, err := rf.ReadAt(sec, 4096*512); err == nil && strings.HasPrefix(dk.vm, "COPY-") && !bytes.Equal(sec, bytes.Repeat([]byte("T"), 512)) {
				t.Errorf("%s: qemu reads no template sector 4096 in the full copy", dk.vp)
			}
			_ = rf.Close()
			_ = os.Remove(raw)
			_ = os.Remove(out)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
