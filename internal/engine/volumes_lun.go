package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/lunprobe"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// What a LUN holds before it is formatted, and which volume it holds after.

// checkFormatOver checks force_format_over names known signatures.
func checkFormatOver(v string) error {
	if v == "" {
		return nil
	}
	known := lunprobe.Names()
	for _, n := range strings.Split(v, ",") {
		if !slices.Contains(known, n) {
			return invalid("force_format_over", v, "the signature(s) a refused format named, comma-separated: "+strings.Join(known, ", "))
		}
	}
	return nil
}

// checkLUNKind refuses, for a lun given as a path, what is not a block
// device: a regular file unless file_backed says file-backed LUNs are
// intended (a typo in a device path must not format a file), anything
// else always. An embedded SAN LUN is a file by design.
func (e *Engine) checkLUNKind(s VolumeSpec, dev string) error {
	if s.Embedded() {
		return nil
	}
	attr, val, ref := lunRef(s, dev)
	fi, err := os.Stat(dev)
	if err != nil {
		return &InputError{Attribute: attr, Value: val, Detail: fmt.Sprintf("%s: %v", ref, pathCause(err))}
	}
	switch m := fi.Mode(); {
	case m.IsRegular():
		if !s.FileBacked && !e.isEmbeddedSANPath(dev) {
			return &InputError{Attribute: "file_backed", Value: "false",
				Detail: fmt.Sprintf("%s %s is a regular file, not a block device; formatting it would destroy what it holds. "+
					"If a file-backed LUN is intended, set file_backed = true (or give an embedded SAN LUN name)", attr, ref)}
		}
	case m&os.ModeDevice != 0 && m&os.ModeCharDevice == 0:
	default:
		return &InputError{Attribute: attr, Value: val,
			Detail: fmt.Sprintf("%s is a %s, not a block device or an image file", ref, fi.Mode().Type())}
	}
	return nil
}

// checkLUNSize refuses a LUN smaller than size_gib.
func checkLUNSize(s VolumeSpec, dev string, size int64) error {
	if size >= s.SizeGiB<<30 {
		return nil
	}
	fix := fmt.Sprintf("give a size_gib of at most %d, or a larger LUN", size>>30)
	if size>>30 < MinVolumeGiB {
		fix = fmt.Sprintf("the smallest volume is %d GiB: give a larger LUN", MinVolumeGiB)
	}
	return &InputError{Attribute: "size_gib", Value: fmt.Sprint(s.SizeGiB),
		Detail: fmt.Sprintf("%d GiB (%d bytes) is larger than LUN %q (%s, %d bytes); %s", s.SizeGiB, s.SizeGiB<<30, s.LUN, dev, size, fix)}
}

// judgeLUN says what fd holds and whether s may format it: "" (all zero
// in its first and last MiB), "kayofs" (needs force_format), the known
// signatures lunprobe finds (force_format_over must name exactly them:
// force_format alone does not do), or "data" for anything else non-zero
// (needs force_format).
func judgeLUN(fd *kayofs.FileDevice, s VolumeSpec) (string, error) {
	dev := fd.Path()
	if found, err := kayofs.Probe(fd); err != nil {
		return "", fmt.Errorf("lun %q: %w", s.LUN, err)
	} else if found == "kayofs" {
		if !s.ForceFormat {
			return found, existingFS(s, dev, found)
		}
		return found, nil
	}
	ends, err := lunprobe.Read(fd, fd.Size())
	if err != nil {
		return "", fmt.Errorf("lun %q (%s): %w", s.LUN, dev, err)
	}
	if sigs := lunprobe.Probe(ends); len(sigs) > 0 {
		names := lunprobe.JoinNames(sigs)
		if s.ForceFormatOver != names {
			what := make([]string, len(sigs))
			for i, sg := range sigs {
				what[i] = fmt.Sprintf("%q (%s at byte %d)", sg.Name, sg.What, sg.Offset)
			}
			got := "it is not set"
			if s.ForceFormatOver != "" {
				got = fmt.Sprintf("it says %q", s.ForceFormatOver)
			}
			return names, &InputError{Attribute: "force_format_over", Value: s.ForceFormatOver,
				Detail: fmt.Sprintf("LUN %q (%s) holds %s; formatting would destroy it, and force_format does not override "+
					"a recognised signature (%s). If what it holds is not needed, set force_format_over = %q",
					s.LUN, dev, strings.Join(what, " and "), got, names)}
		}
		return names, nil
	}
	if off := ends.FirstNonZero(); off >= 0 && !s.ForceFormat {
		return "data", &InputError{Attribute: "force_format", Value: "false",
			Detail: fmt.Sprintf("LUN %q (%s) holds data Kayo FS does not recognise (a non-zero byte at offset %d); formatting "+
				"would destroy it. If it is not needed, set force_format = true", s.LUN, dev, off)}
	} else if off >= 0 {
		return "data", nil
	}
	return "", nil
}

// openDevice opens a volume's LUN after checking it still holds the
// volume: before any write (a mount, VM files, growth, the QEMU agent's
// disks), since a LUN zeroed or swapped outside Kayo, or a data_dir
// copied from another installation, must never be written through this
// record. A LUN that does not hold it is a LUNLostError.
func openDevice(v Volume) (*kayofs.FileDevice, error) {
	if v.Device == "" {
		return nil, fmt.Errorf("volume %s: (%s): lun %q is an embedded SAN LUN, but this engine has no data_dir", v.DriveLetter, v.ID, v.LUN)
	}
	fd, err := kayofs.OpenDevice(v.Device)
	if errors.Is(err, os.ErrNotExist) {
		return nil, &LUNLostError{Volume: v.ID, Letter: v.DriveLetter, LUN: v.LUN, Device: v.Device, Reason: "it does not exist", Err: err}
	}
	if err != nil {
		return nil, fmt.Errorf("volume %s: (%s): lun %q: %w", v.DriveLetter, v.ID, v.LUN, tidy(err))
	}
	if err := checkIdentity(fd, v); err != nil {
		_ = fd.Close()
		return nil, err
	}
	return fd, nil
}

// checkIdentity compares the Kayo FS UUID on fd with v's.
func checkIdentity(fd *kayofs.FileDevice, v Volume) error {
	lost := &LUNLostError{Volume: v.ID, Letter: v.DriveLetter, LUN: v.LUN, Device: fd.Path()}
	sb, err := kayofs.ReadSuperblock(fd)
	if err == nil {
		if sb.UUIDString() == v.ID {
			return nil
		}
		lost.Holds = sb.UUIDString()
		return lost
	}
	found, perr := kayofs.Probe(fd)
	switch {
	case perr != nil:
		lost.Reason, lost.Err = "it cannot be read", perr
	case found == "kayofs":
		lost.Reason, lost.Err = "its Kayo FS superblocks are damaged", err
	case found != "":
		lost.Reason = "it holds no Kayo FS but " + found
	default:
		if ends, rerr := lunprobe.Read(fd, fd.Size()); rerr == nil && ends.FirstNonZero() < 0 {
			lost.Reason = "its first and last MiB are all zero"
		} else {
			lost.Reason = "it holds no Kayo FS superblock"
		}
	}
	return lost
}

// VolumeLost says why volume id's LUN no longer holds it, or "" when it
// does (or the volume does not exist), as the nodes' reports say: no
// device is opened (volume_reports.go).
func (e *Engine) VolumeLost(ctx context.Context, id string) (string, error) {
	// The reports first: one read per VM of a plan when none says lost.
	reps, err := e.VolumeReports(ctx, id)
	if err != nil {
		return "", err
	}
	if j := judged(reps); j == nil || j.Lost == "" {
		return "", nil
	}
	v, err := e.GetVolume(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if st := volumeState(v, reps, e.now()); st.Lost != nil {
		return st.Lost.Error(), nil
	}
	return "", nil
}

// resolveDevice sets v.Device from the LUN as this process finds it
// (localLUN): an embedded LUN by its name in this engine's data dir,
// whatever path an older record holds (a copied or moved data_dir uses
// its own SAN).
func (e *Engine) resolveDevice(v *Volume) {
	v.Device, _ = e.localLUN(v.VolumeSpec)
}

// isEmbeddedSANPath reports whether path is an image of this engine's
// embedded SAN.
func (e *Engine) isEmbeddedSANPath(path string) bool {
	return e.dataDir != "" && filepath.Dir(filepath.Clean(path)) == filepath.Join(e.dataDir, SANDir)
}

// pathCause is the cause of an os error without the path it repeats (the
// message around it names the path already).
func pathCause(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// forgetVolume removes the records of a volume whose LUN no longer holds
// it, leaving the LUN as found (it may hold another volume now).
func (e *Engine) forgetVolume(ctx context.Context, v Volume, lost *LUNLostError) error {
	ops := []store.Op{store.Del(volumeKey(v.ID)), store.Del(volumeLetterKey(v.Cluster, v.DriveLetter)),
		e.eventOp(Event{Kind: EventVolumeDestroyed, Cluster: v.Cluster, Subject: v.ID,
			Detail: map[string]string{"drive_letter": v.DriveLetter, "lun": v.LUN, "lun_lost": lost.Found()}})}
	dels, err := e.deleteReportOps(ctx, v.ID)
	if err != nil {
		return err
	}
	if _, err := e.st.Commit(ctx, []store.Cmp{store.At(volumeKey(v.ID), v.Revision)}, append(ops, dels...)); err != nil {
		return err
	}
	note(ctx, fmt.Sprintf("Volume %s: was only forgotten: its LUN no longer holds it", v.DriveLetter),
		lost.Found()+". Its records are removed (event "+EventVolumeDestroyed+" says lun_lost); the LUN is left as it is, untouched.")
	return nil
}

// ReportedVM is vm as a read reports it: failed, with the reason, when a
// node reported its volume's LUN no longer holding the volume (VolumeLost:
// from the database alone; nothing is written; RefreshVM records it).
func (e *Engine) ReportedVM(ctx context.Context, vm VM) VM {
	if vm.Pending != nil || vm.Volume == "" || vm.Status == StatusFailed || vm.Status == VMOff {
		return vm
	}
	if reason, err := e.VolumeLost(ctx, vm.Volume); err == nil && reason != "" {
		vm.Status, vm.StatusReason = StatusFailed, "its volume is gone: "+reason
	}
	return vm
}

// failIfVolumeLost records vm failed when ReportedVM finds its volume's
// LUN gone: a VM cannot run without its disk, whatever its process (or
// the simulator) says.
func (e *Engine) failIfVolumeLost(ctx context.Context, vm VM) (VM, error) {
	r := e.ReportedVM(ctx, vm)
	if r.Status != StatusFailed || vm.Status == StatusFailed {
		return vm, nil
	}
	return e.vmCommit(ctx, vm.Cluster, vm.Name, func(t *vmTxn) error {
		if !t.exists || t.vm.Pending != nil || t.vm.Status == StatusFailed || t.vm.Status == VMOff {
			return errNoCommit
		}
		t.vm.Status, t.vm.StatusReason = StatusFailed, r.StatusReason
		t.event(EventVMFailed, map[string]string{"node": t.vm.Node, "reason": t.vm.StatusReason, "token": fmt.Sprint(t.vm.Token)})
		return nil
	})
}
