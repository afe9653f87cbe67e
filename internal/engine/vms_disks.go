package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/vhd"
)

// A VM's disks beyond the blank boot VHD: a boot disk made from a
// template (a differencing child of it, or a full copy), data disks
// beside it (WEB01\WEB01-disk1.vhd, ...), a DVD drive holding an ISO
// put on the volume, and the boot order. The functions here make and
// open the disks; writeFiles and createFiles (vms_files.go) call them.

// checkDiskSpecs checks the disk attributes of s that need no database.
func checkDiskSpecs(s VMSpec) error {
	if s.VHD.Source != "" {
		if _, _, err := VolumeFilePath("vhd.source", s.VHD.Source); err != nil {
			return err
		}
	}
	switch s.VHD.Clone {
	case "", CloneDifferencing, CloneCopy:
	default:
		return invalid("vhd.clone", s.VHD.Clone, `"differencing" (a child of vhd.source recording only its own writes) or "copy" (a full copy)`)
	}
	if s.VHD.Source != "" && cloneOf(s.VHD) == CloneDifferencing && s.VHD.Type != VHDDynamic {
		return &InputError{Attribute: "vhd.type", Value: s.VHD.Type, Detail: `a differencing disk grows as it is written, like a dynamic ` +
			`one: give vhd.type = "dynamic", or vhd.clone = "copy" for a fixed copy of the template`}
	}
	if len(s.DataDisks) > MaxDataDisks {
		return invalid("data_disks", fmt.Sprint(len(s.DataDisks)), fmt.Sprintf("at most %d data disks", MaxDataDisks))
	}
	for i, d := range s.DataDisks {
		a := fmt.Sprintf("data_disks[%d]", i)
		if d.SizeGiB < 1 || d.SizeGiB > MaxVHDSizeGiB {
			return invalid(a+".size_gib", fmt.Sprint(d.SizeGiB), fmt.Sprintf("1 to %d (the VHD format's limit)", MaxVHDSizeGiB))
		}
		if d.Type != VHDDynamic && d.Type != VHDFixed {
			return invalid(a+".type", d.Type, `"dynamic" or "fixed"`)
		}
		if d.Source != "" || d.Clone != "" {
			return invalid(a+".source", d.Source, "no template: a data disk starts blank (only vhd, the boot disk, has a source)")
		}
	}
	if s.DVD != nil {
		if _, _, err := VolumeFilePath("dvd.path", s.DVD.Path); err != nil {
			return err
		}
	}
	for i, b := range s.BootOrder {
		a := fmt.Sprintf("boot_order[%d]", i)
		switch {
		case b != BootVHD && b != BootDVD:
			return invalid(a, b, `"vhd" (the boot disk) or "dvd" (the DVD drive)`)
		case slices.Index(s.BootOrder, b) != i:
			return &InputError{Attribute: a, Value: b, Detail: fmt.Sprintf("%q is listed twice; give each device once", b)}
		case b == BootDVD && s.DVD == nil:
			return &InputError{Attribute: a, Value: b, Detail: `the VM has no DVD drive: set dvd = { path = "..." } or leave "dvd" out`}
		}
	}
	return nil
}

// cloneOf is the clone mode of a disk with a source (default
// differencing).
func cloneOf(d VHDSpec) string {
	if d.Clone == "" {
		return CloneDifferencing
	}
	return d.Clone
}

// normalizeDisks writes paths Windows style and the default clone mode.
func normalizeDisks(s *VMSpec) {
	if s.VHD.Source != "" {
		if win, _, err := VolumeFilePath("vhd.source", s.VHD.Source); err == nil {
			s.VHD.Source = win
		}
	}
	s.DataDisks = slices.Clone(s.DataDisks)
	s.BootOrder = slices.Clone(s.BootOrder)
	if s.DVD != nil {
		d := *s.DVD
		if win, _, err := VolumeFilePath("dvd.path", d.Path); err == nil {
			d.Path = win
		}
		s.DVD = &d
	}
}

// diskRestartChanges names the disk attributes whose change needs the VM
// off (the QEMU driver attaches media at boot). Data disks added at the
// end are not among them: a running VM gets them hot-plugged
// (dataDisksAdded); growing or retyping one needs the VM off.
func diskRestartChanges(old, s VMSpec) []string {
	var out []string
	if !slices.Equal(old.DataDisks, s.DataDisks) && !dataDisksAdded(old, s) {
		out = append(out, "data_disks")
	}
	if (old.DVD == nil) != (s.DVD == nil) || old.DVD != nil && *old.DVD != *s.DVD {
		out = append(out, "dvd")
	}
	if !slices.Equal(old.BootOrder, s.BootOrder) {
		out = append(out, "boot_order")
	}
	return out
}

// dataDisksAdded: s adds data disks at the end of old's, the others
// unchanged (the change a running VM takes in place: the new disks are
// written, then hot-plugged by converge).
func dataDisksAdded(old, s VMSpec) bool {
	return len(s.DataDisks) > len(old.DataDisks) && slices.Equal(old.DataDisks, s.DataDisks[:len(old.DataDisks)])
}

// checkDiskChange judges a change of vm's disks: the boot disk keeps its
// template, data disks are added or grown, never removed, shrunk or
// retyped in place.
func checkDiskChange(vm VM, s VMSpec) error {
	if s.VHD.Source != vm.VHD.Source {
		return &InputError{Attribute: "vhd.source", Value: s.VHD.Source, Detail: fmt.Sprintf("VM %q's disk was made from %q; "+
			"another template is another disk: create a new VM (the provider replaces it)", vm.Name, vm.VHD.Source)}
	}
	if vm.VHD.Source != "" && cloneOf(s.VHD) != cloneOf(vm.VHD) {
		return &InputError{Attribute: "vhd.clone", Value: s.VHD.Clone, Detail: fmt.Sprintf("VM %q's disk is a %s of %s; "+
			"it cannot change in place: create a new VM", vm.Name, cloneOf(vm.VHD), vm.VHD.Source)}
	}
	if len(s.DataDisks) < len(vm.DataDisks) {
		return &InputError{Attribute: "data_disks", Value: fmt.Sprint(len(s.DataDisks)), Detail: fmt.Sprintf("VM %q has %d data disks; "+
			"removing one would delete its data: keep them (add new ones at the end), or create a new VM", vm.Name, len(vm.DataDisks))}
	}
	for i, d := range vm.DataDisks {
		n := s.DataDisks[i]
		a := fmt.Sprintf("data_disks[%d]", i)
		if n.Type != d.Type {
			return &InputError{Attribute: a + ".type", Value: n.Type, Detail: fmt.Sprintf("data disk %d of VM %q is %s; a VHD's type cannot change", i+1, vm.Name, d.Type)}
		}
		if n.SizeGiB < d.SizeGiB {
			return &InputError{Attribute: a + ".size_gib", Value: fmt.Sprint(n.SizeGiB),
				Detail: fmt.Sprintf("data disk %d of VM %q is %d GiB; a VHD grows, never shrinks: give at least %d", i+1, vm.Name, d.SizeGiB, d.SizeGiB)}
		}
	}
	return nil
}

// checkVMFiles checks the volume files s names (vhd.source, dvd.path)
// against their records on vol: present, complete, of the right kind and
// size. It returns comparisons on the records, for the commit that
// starts using them (a delete marks a record first: volume_files.go).
func (e *Engine) checkVMFiles(ctx context.Context, s VMSpec, vol Volume, old *VMSpec) ([]store.Cmp, error) {
	cmps, _, err := e.checkVMFilesAt(ctx, s, vol, old, false)
	return cmps, err
}

// checkVMFilesAt is checkVMFiles; planning, a file not on the volume yet
// is a warning (a kayo_volume_file of the same configuration may put it
// there in this apply: apply judges), every other fault an error.
func (e *Engine) checkVMFilesAt(ctx context.Context, s VMSpec, vol Volume, old *VMSpec, planning bool) ([]store.Cmp, []string, error) {
	var cmps []store.Cmp
	var warns []string
	errMissing := errors.New("missing")
	get := func(attr, p, kind string) (VolumeFile, error) {
		win, vp, err := VolumeFilePath(attr, p)
		if err != nil {
			return VolumeFile{}, err
		}
		var f VolumeFile
		rev, err := getJSON(ctx, e.st, volumeFileKey(vol.ID, vp), &f)
		if errors.Is(err, ErrNotFound) && planning {
			warns = append(warns, fmt.Sprintf("%s: volume %s holds no file %s yet; apply fails unless a kayo_volume_file of this "+
				"configuration puts the %s there first", attr, vol.DriveLetter, win, kind))
			return f, errMissing
		}
		if errors.Is(err, ErrNotFound) {
			return f, &InputError{Attribute: attr, Value: p, Detail: fmt.Sprintf("volume %s holds no file %s put by a kayo_volume_file "+
				"or `kayoctl volume cp`; put the %s there first (a kayo_volume_file with this path)", vol.DriveLetter, win, kind)}
		}
		if err != nil {
			return f, err
		}
		switch {
		case f.Writing:
			return f, &InputError{Attribute: attr, Value: p, Detail: fmt.Sprintf("%s:\\%s is still being written (or its put crashed: put it again)", vol.DriveLetter, win)}
		case f.Deleting:
			return f, &InputError{Attribute: attr, Value: p, Detail: fmt.Sprintf("%s:\\%s is being deleted", vol.DriveLetter, win)}
		case f.Kind != kind:
			return f, &InputError{Attribute: attr, Value: p, Detail: fmt.Sprintf("%s:\\%s is a %s file, not a%s %s", vol.DriveLetter, win, f.Kind,
				map[bool]string{true: "n", false: ""}[kind == FileISO], strings.ToUpper(kind))}
		}
		cmps = append(cmps, store.At(volumeFileKey(vol.ID, vp), rev))
		return f, nil
	}
	if s.VHD.Source != "" && (old == nil || old.VHD.Source != s.VHD.Source) {
		f, err := get("vhd.source", s.VHD.Source, FileVHD)
		if err != nil && err != errMissing {
			return nil, nil, err
		}
		if err == nil && s.VHD.SizeGiB<<30 < f.VirtualSize {
			need := (f.VirtualSize + 1<<30 - 1) >> 30
			return nil, nil, &InputError{Attribute: "vhd.size_gib", Value: fmt.Sprint(s.VHD.SizeGiB), Detail: fmt.Sprintf("the template %s is %d bytes; "+
				"a disk made from it is at least that large: give at least %d", f.Path, f.VirtualSize, need)}
		}
	}
	if s.DVD != nil && (old == nil || old.DVD == nil || *old.DVD != *s.DVD) {
		if _, err := get("dvd.path", s.DVD.Path, FileISO); err != nil && err != errMissing {
			return nil, nil, err
		}
	}
	return cmps, warns, nil
}

// DataDiskPath is the Windows path of the VM's i-th data disk (from 0):
// O:\WEB01\WEB01-disk1.vhd.
func (v VM) DataDiskPath(i int) string {
	return fmt.Sprintf(`%s:\%s\%s`, v.DriveLetter, v.Name, dataDiskName(v.Name, i))
}

func dataDiskName(vm string, i int) string { return fmt.Sprintf("%s-disk%d.vhd", vm, i+1) }

// DataDiskVolPath is the i-th data disk's path on the volume.
func (p VMPaths) DataDiskVolPath(i int) string { return p.Dir + "/" + dataDiskName(p.Dir, i) }

// volumeOpener opens the parents of a differencing disk in directory dir
// of fv: paths relative to dir, or absolute (O:\templates\base.vhd, whose
// drive letter is the volume's own).
func volumeOpener(fv *kayofs.Volume, dir string) vhd.ParentOpener {
	return func(p string) (vhd.File, int64, error) {
		if len(p) > 2 && p[1] == ':' {
			p = strings.TrimLeft(p[2:], `\`)
		} else {
			p = vhd.ResolveParentPath(dir+`\x`, p)
		}
		vp := strings.ReplaceAll(p, `\`, "/")
		if strings.HasPrefix(vp, "../") || vp == ".." {
			return nil, 0, fmt.Errorf("%s leaves the volume", p)
		}
		f, err := fv.Open(vp)
		if err != nil {
			return nil, 0, err
		}
		fi, err := f.Stat()
		if err != nil {
			return nil, 0, err
		}
		return vmFile{f}, fi.Size, nil
	}
}

// createBootDisk writes the new VM's boot disk into f: blank, a
// differencing child of vhd.source, or a full copy of it; then grown to
// vhd.size_gib when that is larger than the template.
func (e *Engine) createBootDisk(ctx context.Context, fv *kayofs.Volume, f *kayofs.File, vm VM, p VMPaths) error {
	size := vm.VHD.SizeGiB << 30
	if vm.VHD.Source == "" {
		if _, err := vhd.Create(vmFile{f}, vhd.Options{Type: vhdType(vm.VHD.Type), Size: size, Time: e.now()}); err != nil {
			return fmt.Errorf("creating %s: %w", vm.VHDPath, err)
		}
		return nil
	}
	open := volumeOpener(fv, p.Dir)
	rel := `..\` + vm.VHD.Source
	var d *vhd.Disk
	var err error
	if cloneOf(vm.VHD) == CloneDifferencing {
		d, err = vhd.CreateChild(vmFile{f}, open, vhd.ChildOptions{ParentPath: rel,
			ParentAbsPath: vm.DriveLetter + `:\` + vm.VHD.Source, Time: e.now()})
	} else {
		var src *vhd.Disk
		src, err = e.openSource(fv, open, rel)
		if err == nil {
			d, err = vhd.Copy(ctx, vmFile{f}, src, vhd.Options{Type: vhdType(vm.VHD.Type), Time: e.now()})
		}
	}
	if err != nil {
		return templateError(vm, err)
	}
	defer func() { _ = d.Close() }()
	if want, err := vhd.RoundSize(size); err == nil && want > d.Size() {
		if err := d.Grow(size); err != nil {
			return fmt.Errorf("growing %s to %d GiB: %w", vm.VHDPath, vm.VHD.SizeGiB, err)
		}
	}
	return nil
}

func (e *Engine) openSource(_ *kayofs.Volume, open vhd.ParentOpener, rel string) (*vhd.Disk, error) {
	f, n, err := open(rel)
	if err != nil {
		return nil, &vhd.ParentError{Path: rel, Err: err}
	}
	return vhd.OpenChain(f, n, open)
}

// templateError says a VM's template cannot be used, naming vhd.source.
func templateError(vm VM, err error) error {
	return &InputError{Attribute: "vhd.source", Value: vm.VHD.Source, Detail: fmt.Sprintf("the template %s:\\%s of VM %q cannot be used: %v",
		vm.DriveLetter, vm.VHD.Source, vm.Name, err)}
}

// OpenVMDisk opens the VHD at vp (a VM's boot or data disk) on fv with its
// parents: a differencing disk whose parent is missing or replaced is an
// InputError naming vhd.source. Reads of the returned disk merge the
// chain; writes go to the VM's own file.
func OpenVMDisk(fv *kayofs.Volume, vm VM, vp string) (*vhd.Disk, *kayofs.File, error) {
	f, err := fv.Open(vp)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", vp, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	dir := vp
	if i := strings.LastIndex(vp, "/"); i >= 0 {
		dir = vp[:i]
	}
	d, err := vhd.OpenChain(vmFile{f}, fi.Size, volumeOpener(fv, strings.ReplaceAll(dir, "/", `\`)))
	var pe *vhd.ParentError
	if errors.As(err, &pe) {
		return nil, nil, &InputError{Attribute: "vhd.source", Value: vm.VHD.Source, Detail: fmt.Sprintf("VM %q's disk %s:\\%s is a "+
			"differencing disk whose parent %s cannot be used (%v); a template must stay on the volume, unchanged, while children "+
			"exist: put it back, or delete the VM", vm.Name, vm.DriveLetter, strings.ReplaceAll(vp, "/", `\`), pe.Path, pe.Err)}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s:\\%s: %w", vm.DriveLetter, strings.ReplaceAll(vp, "/", `\`), err)
	}
	return d, f, nil
}

// CheckVMDisk checks vm's VHD at vp on fv with vhd.CheckChain: its own
// structures and, for a differencing disk, its parents on the volume
// (qemu-img cannot check a child: its vpc driver does not read
// differencing disks). It returns the problems found, none when sound.
func CheckVMDisk(fv *kayofs.Volume, vm VM, vp string) ([]string, error) {
	f, err := fv.Open(vp)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", vp, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	dir := vp
	if i := strings.LastIndex(vp, "/"); i >= 0 {
		dir = vp[:i]
	}
	return vhd.CheckChain(vmFile{f}, fi.Size, volumeOpener(fv, strings.ReplaceAll(dir, "/", `\`))), nil
}

// writeDataDisks creates the VM's data disks that do not exist yet (or
// are empty: a creation that crashed) and grows the others to their size.
func (e *Engine) writeDataDisks(fv *kayofs.Volume, vm VM, p VMPaths) error {
	for i, spec := range vm.DataDisks {
		vp, win := p.DataDiskVolPath(i), vm.DataDiskPath(i)
		var f *kayofs.File
		err := e.serialVolume(vm.Volume, func() error {
			var err error
			f, err = openOrCreate(fv, vp)
			return err
		})
		if err != nil {
			return fmt.Errorf("%s: %w", win, err)
		}
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		size := spec.SizeGiB << 30
		if fi.Size == 0 {
			if _, err := vhd.Create(vmFile{f}, vhd.Options{Type: vhdType(spec.Type), Size: size, Time: e.now()}); err != nil {
				return fmt.Errorf("creating %s: %w", win, err)
			}
			continue
		}
		d, err := vhd.Open(vmFile{f}, fi.Size)
		if err != nil {
			return fmt.Errorf("%s: %w", win, err)
		}
		if want, err := vhd.RoundSize(size); err == nil && d.Size() < want {
			if err := d.Grow(size); err != nil {
				return fmt.Errorf("growing %s to %d GiB: %w", win, spec.SizeGiB, err)
			}
		}
	}
	return nil
}
