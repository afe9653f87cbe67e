package engine

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/vhd"
)

// A VM's files on the Kayo FS volume: its directory, VHD and configuration file.

// onVolume runs fn on the volume mounted as node: a mount this process
// caches and shares between operations (volume_mounts.go); a mount
// another process holds is waited for, up to the lock timeout.
func (e *Engine) onVolume(ctx context.Context, volumeID, node string, fn func(*kayofs.Volume) error) error {
	return e.WithVolume(ctx, volumeID, node, fn)
}

// vmFile adapts a kayofs file to vhd.File with unwritten-extent
// allocation, so fixed disks are never zero-filled.
type vmFile struct{ *kayofs.File }

func (f vmFile) Allocate(off, n int64) error { return f.File.Allocate(off + n) }

func openOrCreate(fv *kayofs.Volume, p string) (*kayofs.File, error) {
	f, err := fv.Open(p)
	if errors.Is(err, kayofs.ErrNotExist) {
		return fv.Create(p)
	}
	return f, err
}

// createOrOpen is openOrCreate for a file that is most likely new: one
// namespace change instead of a lookup and a change.
func createOrOpen(fv *kayofs.Volume, p string) (*kayofs.File, error) {
	f, err := fv.Create(p)
	if errors.Is(err, kayofs.ErrExist) {
		return fv.Open(p)
	}
	return f, err
}

// writeFiles has the VM's owner node write its files (writeFilesHere)
// through the node-work protocol (nodework.go): the node's agent, or
// this engine's in-process executor of the node.
// A creation asks for them in its intent's commit instead (CreateVM).
func (e *Engine) writeFiles(ctx context.Context, vm VM, fresh bool) error {
	_, err := e.vmWork(ctx, vm.Node, workVMFiles, vm, vmFilesArgs{VM: vm, Fresh: fresh})
	return err
}

// filesResult is the outcome of a request of vm's files (err: the
// request's) with start, a simulator call the node's executor makes once
// the files are written (nil: none), riding on it (sim_driver.go).
func filesResult(ctx context.Context, vm VM, start *simCallArgs, res workResult, err error) error {
	if start != nil {
		if _, oerr := simOutcome(ctx, res.Outcome, nil); oerr != nil && err == nil {
			err = fmt.Errorf("starting VM %q on %s: its result: %w", vm.Name, vm.Node, oerr)
		}
	}
	return err
}

// writeFilesHere (run by the node's executor) creates (fresh) or checks
// and grows the VM's VHD, and writes its configuration file beside it, as
// the owner node. A stale owner (the token moved on) is refused before it
// writes. A changed configuration replaces the old one atomically (by
// rename); a fresh VM's is written in place, since nothing reads it
// before the creation commits (a creation that fails or crashes removes
// the files). Run again after a crash it finds the files and overwrites
// them.
func (e *Engine) writeFilesHere(ctx context.Context, vm VM, fresh bool) error {
	p, err := PathsFor(vm.DriveLetter, vm.Name)
	if err != nil {
		return err
	}
	return e.onVolume(ctx, vm.Volume, vm.Node, func(fv *kayofs.Volume) error {
		if err := e.fenceCheck(ctx, vm); err != nil {
			return err
		}
		return e.writeFilesOn(ctx, fv, vm, p, fresh)
	})
}

// writeFilesOn does writeFiles' work on the mount fv. Namespace changes
// run serialVolume (they take the volume's namespace lock anyway); the
// data written into the new files does not, so the writes of concurrent
// creations overlap.
func (e *Engine) writeFilesOn(ctx context.Context, fv *kayofs.Volume, vm VM, p VMPaths, fresh bool) error {
	serial := func(fn func() error) error { return e.serialVolume(vm.Volume, fn) }
	// A fixed disk's reservation takes transactions of its own: it runs
	// outside serialVolume below, beside other VMs' changes.
	if fresh && vm.VHD.Type != VHDFixed && vm.VHD.Source == "" {
		err := e.createFiles(fv, vm, p)
		if err == nil {
			return e.writeDataDisks(fv, vm, p) // vms_disks.go
		}
		if !errors.Is(err, kayofs.ErrExist) {
			return err
		}
		// Left by a creation that crashed: overwrite, file by file.
	}
	var f, cf *kayofs.File
	cfgPath := p.VolConfig
	if !fresh {
		cfgPath += ".tmp"
	}
	err := serial(func() error {
		open := openOrCreate
		if fresh {
			open = createOrOpen
			if err := fv.Mkdir(p.Dir); err != nil && !errors.Is(err, kayofs.ErrExist) {
				return fmt.Errorf("creating %s:\\%s: %w", vm.DriveLetter, p.Dir, err)
			}
		} else if err := fv.MkdirAll(p.Dir); err != nil {
			return fmt.Errorf("creating %s:\\%s: %w", vm.DriveLetter, p.Dir, err)
		}
		var err error
		if f, err = open(fv, p.VolVHD); err != nil {
			return fmt.Errorf("%s: %w", vm.VHDPath, err)
		}
		if cf, err = open(fv, cfgPath); err != nil {
			return fmt.Errorf("%s: %w", vm.ConfigPath, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	size := vm.VHD.SizeGiB << 30
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%s: %w", vm.VHDPath, err)
	}
	if fresh || fi.Size == 0 {
		if err := e.createBootDisk(ctx, fv, f, vm, p); err != nil { // vms_disks.go
			return err
		}
	} else {
		d, _, err := OpenVMDisk(fv, vm, p.VolVHD) // a differencing disk with its template
		if err != nil {
			return err
		}
		defer func() { _ = d.Close() }()
		want, err := vhd.RoundSize(size)
		if err != nil {
			return err
		}
		if d.Size() < want {
			if err := d.Grow(size); err != nil {
				return fmt.Errorf("growing %s to %d GiB: %w", vm.VHDPath, vm.VHD.SizeGiB, err)
			}
		}
	}
	if fi, err := cf.Stat(); err != nil || fi.Size > 0 {
		if err := cf.Truncate(0); err != nil {
			return err
		}
	}
	if _, err := cf.WriteAt(vm.ConfigXML(), 0); err != nil {
		return fmt.Errorf("%s: %w", vm.ConfigPath, err)
	}
	if err := e.writeDataDisks(fv, vm, p); err != nil {
		return err
	}
	if fresh {
		return nil
	}
	return serial(func() error { return fv.Rename(cfgPath, p.VolConfig) })
}

// createFiles creates a new VM's directory, VHD and configuration file
// with their contents in one Kayo FS change (kayofs.CreateFiles): the
// VHD's structures are built in memory first. It fails with an error
// wrapping kayofs.ErrExist, changing nothing, when the directory exists.
func (e *Engine) createFiles(fv *kayofs.Volume, vm VM, p VMPaths) error {
	var img kayofs.Recorder
	if _, err := vhd.Create(&img, vhd.Options{Type: vhdType(vm.VHD.Type), Size: vm.VHD.SizeGiB << 30, Time: e.now()}); err != nil {
		return fmt.Errorf("creating %s: %w", vm.VHDPath, err)
	}
	disk, err := img.NewFile(path.Base(p.VolVHD))
	if err != nil {
		return err
	}
	files := []kayofs.NewFile{disk, {Name: path.Base(p.VolConfig), Data: vm.ConfigXML()}}
	return e.serialVolume(vm.Volume, func() error {
		_, err := fv.CreateFiles(p.Dir, files)
		if err != nil && !errors.Is(err, kayofs.ErrExist) {
			return fmt.Errorf("creating %s:\\%s: %w", vm.DriveLetter, p.Dir, err)
		}
		return err
	})
}

// removeFiles has the VM's node delete its files and directory
// (removeFilesHere; missing ones are fine) through the node-work protocol,
// after the simulator's discard of the VM there (discard: nil none).
func (e *Engine) removeFiles(ctx context.Context, vm VM, discard *simCallArgs) error {
	res, err := e.vmWork(ctx, vm.Node, workVMRemoveFiles, vm, vmRemoveArgs{VM: vm, Discard: discard})
	if discard != nil {
		// The discard's writes, also when the files' removal failed after
		// it.
		if _, oerr := simOutcome(ctx, res.Outcome, nil); oerr != nil && err == nil {
			err = fmt.Errorf("discarding VM %q on %s: its result: %w", vm.Name, vm.Node, oerr)
		}
	}
	var lost *LUNLostError
	if errors.As(err, &lost) {
		note(ctx, fmt.Sprintf("VM %s: its files were not removed: its volume's LUN no longer holds the volume", vm.Name),
			lost.Found()+"; the VM is forgotten without touching that LUN.")
		return nil
	}
	if errors.Is(err, ErrNotFound) {
		if _, gerr := e.GetVolume(ctx, vm.Volume); errors.Is(gerr, ErrNotFound) {
			return nil // the volume went first (force_destroy): nothing left to remove
		}
	}
	return err
}

// removeFilesHere (run by the node's executor) deletes the VM's files
// and directory; missing ones are fine, so a re-run is harmless.
func (e *Engine) removeFilesHere(ctx context.Context, vm VM) error {
	p, err := PathsFor(vm.DriveLetter, vm.Name)
	if err != nil {
		return err
	}
	return e.onVolume(ctx, vm.Volume, vm.Node, func(fv *kayofs.Volume) error {
		ours := []string{p.VolState, p.VolConfig + ".tmp", p.VolConfig, p.VolVHD}
		for i := range vm.DataDisks {
			ours = append(ours, p.DataDiskVolPath(i))
		}
		// Only the VM's own files (the usual case): all of them and the
		// directory in one change, the check inside it. Not under
		// serialVolume: removals this process's other mounts of the
		// volume are asked for meanwhile go in one change with it
		// (kayofs' group commit, removedirs.go).
		names := make([]string, len(ours))
		for i, f := range ours {
			names[i] = path.Base(f)
		}
		err := fv.RemoveDirOnly(p.Dir, names)
		if err == nil || errors.Is(err, kayofs.ErrNotExist) {
			return nil
		}
		if !errors.Is(err, kayofs.ErrNotEmpty) {
			return fmt.Errorf("removing %s:\\%s: %w", vm.DriveLetter, p.Dir, err)
		}
		return e.serialVolume(vm.Volume, func() error {
			ents, err := fv.ReadDir(p.Dir)
			if errors.Is(err, kayofs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("reading %s:\\%s: %w", vm.DriveLetter, p.Dir, err)
			}
			have := map[string]bool{}
			for _, fi := range ents {
				have[path.Base(fi.Name)] = true
			}
			// Something else is in the directory: remove ours and let the
			// directory's removal fail, naming it, rather than delete it.
			for _, f := range append(ours, p.Dir) {
				if f != p.Dir && !have[path.Base(f)] {
					continue
				}
				if err := fv.Remove(f); err != nil && !errors.Is(err, kayofs.ErrNotExist) {
					return fmt.Errorf("removing %s:\\%s: %w", vm.DriveLetter, strings.ReplaceAll(f, "/", `\`), err)
				}
			}
			return nil
		})
	})
}

// fenceCheck refuses to act for vm when the database has moved its
// ownership on (a newer token): the caller is a stale owner.
func (e *Engine) fenceCheck(ctx context.Context, vm VM) error {
	cur, err := e.vmOnly(ctx, vm.Cluster, vm.Name) // owner and token only
	if err != nil {
		return err
	}
	if cur.Token != vm.Token || cur.Node != vm.Node {
		return fmt.Errorf("VM %q: this process acts for owner %s (token %d) but %s owns it now (token %d): %w",
			vm.Name, vm.Node, vm.Token, cur.Node, cur.Token, hypervisor.ErrFenced)
	}
	return nil
}
