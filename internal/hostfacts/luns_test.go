package hostfacts

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
)

// formatted makes a Kayo FS image at path and returns its UUID.
func formatted(t *testing.T, path, label string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	d, err := kayofs.CreateImage(path, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	sb, err := kayofs.Format(d, kayofs.FormatOptions{Slots: 2, Label: label, InodeCount: 256})
	if err != nil {
		t.Fatal(err)
	}
	return sb.UUIDString()
}

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func link(t *testing.T, target, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
}

// A fake sysfs and /dev: sdb holds a Kayo FS and has a WWN and a SCSI
// name (and a partition link, left out), sdc is blank with an ATA name,
// ram0 and an empty loop device are not LUNs; the embedded SAN's image
// and a file-backed LUN given by path are listed with their UUIDs.
func TestScanLUNsFakeTree(t *testing.T) {
	root := t.TempDir()
	sys, dev, byID := filepath.Join(root, "sys/block"), filepath.Join(root, "dev"), filepath.Join(root, "dev/disk/by-id")
	write(t, filepath.Join(sys, "sdb/size"), "131072\n")
	write(t, filepath.Join(sys, "sdc/size"), "2048\n")
	write(t, filepath.Join(sys, "ram0/size"), "8192\n")
	write(t, filepath.Join(sys, "loop0/size"), "0\n")
	uuidB := formatted(t, filepath.Join(dev, "sdb"), "CSV1")
	write(t, filepath.Join(dev, "sdc"), "")
	if err := os.Truncate(filepath.Join(dev, "sdc"), 1<<20); err != nil { // all zero: no file system
		t.Fatal(err)
	}
	link(t, "../../sdb", filepath.Join(byID, "wwn-0x5000c500a1b2c3d4"))
	link(t, "../../sdb", filepath.Join(byID, "scsi-SATA_DISK_B"))
	link(t, "../../sdb1", filepath.Join(byID, "wwn-0x5000c500a1b2c3d4-part1"))
	link(t, "../../sdc", filepath.Join(byID, "ata-DISK_C"))
	san := filepath.Join(root, "data/san")
	uuidSAN := formatted(t, filepath.Join(san, "lun0.img"), "O")
	fileLUN := filepath.Join(root, "luns/shared.img")
	uuidFile := formatted(t, fileLUN, "")

	got, err := ScanLUNs(LUNOptions{SysBlock: sys, ByID: byID, Dev: dev, SANDir: san,
		Paths: []string{fileLUN, filepath.Join(root, "luns/absent.img")}})
	if err != nil {
		t.Fatal(err)
	}
	want := []LUN{
		{Path: filepath.Join(dev, "sdb"), SizeBytes: 131072 * 512, Identity: "wwn-0x5000c500a1b2c3d4",
			IDs: []string{"wwn-0x5000c500a1b2c3d4", "scsi-SATA_DISK_B"}, KayofsUUID: uuidB, KayofsLabel: "CSV1"},
		{Path: filepath.Join(dev, "sdc"), SizeBytes: 2048 * 512, Identity: "ata-DISK_C", IDs: []string{"ata-DISK_C"}},
		{Path: filepath.Join(san, "lun0.img"), SizeBytes: 64 << 20, Identity: "san:lun0", KayofsUUID: uuidSAN, KayofsLabel: "O"},
		{Path: fileLUN, SizeBytes: 64 << 20, KayofsUUID: uuidFile},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ScanLUNs:\n got %+v\nwant %+v", got, want)
	}
}

// No sysfs, no by-id (a container): an empty list, not nil, so a report
// says "sees no LUN" rather than "does not list LUNs".
func TestScanLUNsNothing(t *testing.T) {
	root := t.TempDir()
	got, err := ScanLUNs(LUNOptions{SysBlock: filepath.Join(root, "none"), ByID: filepath.Join(root, "none2")})
	if err != nil || got == nil || len(got) != 0 {
		t.Fatalf("ScanLUNs of nothing: %#v, %v; want an empty list", got, err)
	}
}
