package hostfacts

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
)

// LUN is a block device (or LUN image) the host sees, in the JSON names of
// kayo_host.reported.luns.
type LUN struct {
	Path      string `json:"path"`
	SizeBytes int64  `json:"size_bytes"`
	// Identity is the name a volume's device_id gives it: its preferred
	// /dev/disk/by-id link (a WWN first), the same on every host that
	// sees the LUN; "san:NAME" for an embedded SAN image; "" when the
	// host knows no identity for it (a file-backed image).
	Identity string `json:"identity"`
	// IDs are all its /dev/disk/by-id names (a device_id may name any).
	IDs         []string `json:"ids,omitempty"`
	KayofsUUID  string   `json:"kayofs_uuid,omitempty"`
	KayofsLabel string   `json:"kayofs_label,omitempty"`
	// Error says why its superblock could not be read (e.g. permission);
	// the UUID and label are then unknown, not absent.
	Error string `json:"error,omitempty"`
}

// SANIdentity is the identity of the embedded SAN's LUN name.
func SANIdentity(name string) string { return "san:" + name }

// LUNOptions say where ScanLUNs looks; the zero value reads this machine's
// block devices only.
type LUNOptions struct {
	SysBlock string // default /sys/block
	ByID     string // default /dev/disk/by-id
	Dev      string // where a sysfs device's node is; default /dev
	// SANDir is the embedded SAN's directory (<data_dir>/san): each
	// <name>.img in it is a LUN. "" for none.
	SANDir string
	// Paths are more LUNs to report, by path: file-backed LUN images, or
	// devices named by path (kayoctl agent --lun).
	Paths []string
}

// preferredID orders by-id names: WWNs, then NAA/EUI-style SCSI and NVMe
// names (stable across hosts), then the rest by name.
func preferredID(a, b string) int {
	rank := func(s string) int {
		switch {
		case strings.HasPrefix(s, "wwn-"):
			return 0
		case strings.HasPrefix(s, "scsi-3"), strings.HasPrefix(s, "nvme-eui."):
			return 1
		}
		return 2
	}
	if c := rank(a) - rank(b); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

// byIDNames maps a device's kernel name (sdb, nvme0n1) to its by-id link
// names; partitions are left out.
func byIDNames(dir string) (map[string][]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return map[string][]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, e := range ents {
		if strings.Contains(e.Name(), "-part") {
			continue
		}
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // not a link: udev makes only links here
		}
		dev := filepath.Base(target)
		out[dev] = append(out[dev], e.Name())
	}
	for _, ids := range out {
		slices.SortFunc(ids, preferredID)
	}
	return out, nil
}

// skipDevice: devices that are never a shared LUN.
func skipDevice(name string) bool {
	for _, p := range []string{"ram", "zram", "sr", "fd"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// ScanLUNs lists the block devices of /sys/block (size from sysfs,
// identity from /dev/disk/by-id), the embedded SAN's images and the given
// paths, each with the Kayo FS UUID and label when it holds one. A device
// whose superblock cannot be read is listed with the error.
func ScanLUNs(o LUNOptions) ([]LUN, error) {
	if o.SysBlock == "" {
		o.SysBlock = "/sys/block"
	}
	if o.ByID == "" {
		o.ByID = "/dev/disk/by-id"
	}
	if o.Dev == "" {
		o.Dev = "/dev"
	}
	ids, err := byIDNames(o.ByID)
	if err != nil {
		return nil, fmt.Errorf("hostfacts: %s: %w", o.ByID, err)
	}
	ents, err := os.ReadDir(o.SysBlock)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("hostfacts: %w", err)
	}
	out := []LUN{}
	seen := map[string]bool{}
	for _, e := range ents {
		name := e.Name()
		if skipDevice(name) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(o.SysBlock, name, "size"))
		if err != nil {
			continue // not a block device entry
		}
		sectors, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || sectors == 0 {
			continue // no medium, or an empty loop device
		}
		// sysfs writes a '/' of the device name as '!' (cciss!c0d0).
		path := filepath.Join(o.Dev, strings.ReplaceAll(name, "!", "/"))
		l := LUN{Path: path, SizeBytes: sectors * 512, IDs: ids[name]}
		if len(l.IDs) > 0 {
			l.Identity = l.IDs[0]
		}
		withKayoFS(&l)
		out = append(out, l)
		seen[path] = true
	}
	if o.SANDir != "" {
		imgs, _ := filepath.Glob(filepath.Join(o.SANDir, "*.img"))
		slices.Sort(imgs)
		for _, p := range imgs {
			l := LUN{Path: p, Identity: SANIdentity(strings.TrimSuffix(filepath.Base(p), ".img"))}
			if withKayoFS(&l) {
				out = append(out, l)
				seen[p] = true
			}
		}
	}
	for _, p := range o.Paths {
		if seen[p] {
			continue
		}
		l := LUN{Path: p}
		if real, err := filepath.EvalSymlinks(p); err == nil {
			if n := ids[filepath.Base(real)]; len(n) > 0 {
				l.IDs, l.Identity = n, n[0]
			}
		}
		if withKayoFS(&l) {
			out = append(out, l)
			seen[p] = true
		}
	}
	return out, nil
}

// withKayoFS fills l's Kayo FS UUID and label (and its size when sysfs
// gave none); false when l is not there at all.
func withKayoFS(l *LUN) bool {
	sb, size, err := kayofs.SuperblockOf(l.Path)
	if errors.Is(err, os.ErrNotExist) {
		return false
	}
	if l.SizeBytes == 0 {
		l.SizeBytes = size
	}
	switch {
	case err == nil:
		l.KayofsUUID, l.KayofsLabel = sb.UUIDString(), sb.Label
	case errors.Is(err, kayofs.ErrNotFormatted):
	default:
		l.Error = strings.TrimPrefix(err.Error(), "kayofs: ")
	}
	return true
}
