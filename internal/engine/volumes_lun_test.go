package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// needTool skips (outside CI) or fails (CI=true) when a Debian tool a test
// needs is missing or does not work here.
func needTool(t *testing.T, err error, pkg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%v (.ci/run installs %s)", err, pkg)
	}
	t.Skipf("skipping: %v (apt-get install %s)", err, pkg)
}

func sha(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// loopDevice attaches img to a loop device for the test (root and the
// loop driver: skip or fail as needTool).
func loopDevice(t *testing.T, img string) string {
	t.Helper()
	out, err := exec.Command("losetup", "-f", "--show", img).CombinedOutput()
	if err != nil {
		needTool(t, errors.New("losetup: "+strings.TrimSpace(string(out))+" (needs root and loop devices)"), "mount")
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", dev).Run() })
	return dev
}

// signatureImages are made by each format's own Debian tool; {} is the
// image path. want is the name the refusal must give.
var signatureImages = []struct {
	want, pkg string
	size      int64
	cmd       []string
}{
	{"gpt", "gdisk", 64 << 20, []string{"sgdisk", "-o", "-n", "1:2048:+8M", "{}"}},
	{"gpt", "parted", 64 << 20, []string{"parted", "-s", "{}", "mklabel", "gpt"}},
	{"mbr", "parted", 64 << 20, []string{"parted", "-s", "{}", "mklabel", "msdos", "mkpart", "primary", "1MiB", "32MiB"}},
	{"luks", "cryptsetup-bin", 64 << 20, []string{"cryptsetup", "luksFormat", "--batch-mode", "--type", "luks2", "--pbkdf", "pbkdf2",
		"--pbkdf-force-iterations", "1000", "{}", "{key}"}},
	{"luks", "cryptsetup-bin", 64 << 20, []string{"cryptsetup", "luksFormat", "--batch-mode", "--type", "luks1", "--pbkdf-force-iterations", "1000", "{}", "{key}"}},
	{"swap", "util-linux", 64 << 20, []string{"mkswap", "{}"}},
	{"qcow2", "qemu-utils", 0, []string{"qemu-img", "create", "-q", "-f", "qcow2", "{}", "1G"}},
	{"vhd", "qemu-utils", 0, []string{"qemu-img", "create", "-q", "-f", "vpc", "{}", "1G"}},
	{"vhd", "qemu-utils", 0, []string{"qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=fixed", "{}", "64M"}},
	{"vhdx", "qemu-utils", 0, []string{"qemu-img", "create", "-q", "-f", "vhdx", "{}", "1G"}},
	{"vmdk", "qemu-utils", 0, []string{"qemu-img", "create", "-q", "-f", "vmdk", "{}", "1G"}},
	{"ext2", "e2fsprogs", 64 << 20, []string{"mkfs.ext2", "-F", "-q", "{}"}},
	{"ext3", "e2fsprogs", 64 << 20, []string{"mkfs.ext3", "-F", "-q", "{}"}},
	{"ext4", "e2fsprogs", 64 << 20, []string{"mkfs.ext4", "-F", "-q", "{}"}},
	{"xfs", "xfsprogs", 320 << 20, []string{"mkfs.xfs", "-q", "{}"}},
	{"btrfs", "btrfs-progs", 128 << 20, []string{"mkfs.btrfs", "-q", "{}"}},
	{"ntfs", "ntfs-3g", 64 << 20, []string{"mkfs.ntfs", "-F", "-Q", "-q", "{}"}},
	{"fat", "dosfstools", 64 << 20, []string{"mkfs.vfat", "{}"}},
	{"ocfs2", "ocfs2-tools", 64 << 20, []string{"mkfs.ocfs2", "-q", "-F", "-M", "local", "{}"}},
	{"gfs2", "gfs2-utils", 64 << 20, []string{"mkfs.gfs2", "-O", "-q", "-p", "lock_nolock", "{}"}},
}

// makeImage runs a signatureImages entry's tool on a new image in dir.
func makeImage(t *testing.T, dir string, i int) string {
	t.Helper()
	si := signatureImages[i]
	img := filepath.Join(dir, si.want+".img")
	if si.size > 0 {
		if err := os.WriteFile(img, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(img, si.size); err != nil {
			t.Fatal(err)
		}
	}
	key := filepath.Join(dir, "key")
	if err := os.WriteFile(key, []byte("not a secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := make([]string, len(si.cmd))
	for j, a := range si.cmd {
		args[j] = strings.NewReplacer("{}", img, "{key}", key).Replace(a)
	}
	if _, err := exec.LookPath(args[0]); err != nil {
		needTool(t, err, si.pkg)
	}
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return img
}

// Every signature, in an image its own tool made, is refused at plan and
// at apply — with force_format too — by an error naming it and the
// attribute to set; the image is not changed by a byte. Naming exactly
// that signature in force_format_over lets the plan through.
func TestFormatRefusesToolMadeSignatures(t *testing.T) {
	ctx := context.Background()
	e := newDisk(t)
	for i, si := range signatureImages {
		t.Run(si.want+"/"+si.cmd[0], func(t *testing.T) {
			img := makeImage(t, t.TempDir(), i)
			before := sha(t, img)
			s := VolumeSpec{Cluster: "HVCLUSTER", LUN: img, SizeGiB: 1, DriveLetter: "X", BlockSize: 4096, NodeSlots: 4, FileBacked: true}
			for _, force := range []bool{false, true} {
				s.ForceFormat = force
				for what, err := range map[string]error{"plan": e.CheckVolumePlan(ctx, "", s), "apply": errOnly(e.CreateVolume(ctx, s))} {
					var ie *InputError
					if !errors.As(err, &ie) || ie.Attribute != "force_format_over" ||
						!strings.Contains(err.Error(), `force_format_over = "`+si.want+`"`) || !strings.Contains(err.Error(), `"`+si.want+`" (`) {
						t.Fatalf("%s (force_format %v): %v; want a force_format_over error naming %q", what, force, err, si.want)
					}
				}
			}
			if after := sha(t, img); after != before {
				t.Fatalf("the refused image changed: sha256 %s -> %s", before, after)
			}
			if _, err := getJSON(ctx, e.st, volumeIntentKey("HVCLUSTER", "X"), &volumeIntent{}); !errors.Is(err, ErrNotFound) {
				t.Fatalf("a refused creation left an intent: %v", err)
			}
			s.ForceFormatOver = si.want
			if err := e.CheckVolumePlan(ctx, "", s); err != nil && !strings.Contains(err.Error(), "size_gib") {
				t.Fatalf("force_format_over = %q: %v", si.want, err)
			}
			s.ForceFormatOver = "luks"
			if si.want == "luks" {
				s.ForceFormatOver = "gpt"
			}
			if err := e.CheckVolumePlan(ctx, "", s); err == nil || !strings.Contains(err.Error(), `it says "`+s.ForceFormatOver+`"`) {
				t.Fatalf("force_format_over naming another signature: %v", err)
			}
		})
	}
}

func errOnly[T any](_ T, err error) error { return err }

// LVM2 and MD RAID need their kernel drivers to be written by their tools:
// LVM2 through a loop device; MD where an array can be assembled here.
func TestFormatRefusesLVM2AndMD(t *testing.T) {
	ctx := context.Background()
	e := newDisk(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "pv.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 64<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("pvcreate"); err != nil {
		needTool(t, err, "lvm2")
	}
	dev := loopDevice(t, img)
	if out, err := exec.Command("pvcreate", "-q", "-f", dev).CombinedOutput(); err != nil {
		needTool(t, errors.New("pvcreate: "+strings.TrimSpace(string(out))), "lvm2")
	}
	before := sha(t, img)
	s := VolumeSpec{Cluster: "HVCLUSTER", LUN: dev, SizeGiB: 1, DriveLetter: "X", BlockSize: 4096, NodeSlots: 4, ForceFormat: true}
	if err := e.CheckVolumePlan(ctx, "", s); err == nil || !strings.Contains(err.Error(), `force_format_over = "lvm2"`) {
		t.Fatalf("plan over an LVM2 PV: %v", err)
	}
	if _, err := e.CreateVolume(ctx, s); err == nil || !strings.Contains(err.Error(), `force_format_over = "lvm2"`) {
		t.Fatalf("apply over an LVM2 PV: %v", err)
	}
	if sha(t, img) != before {
		t.Fatal("the refused PV changed")
	}

	md := filepath.Join(dir, "md.img")
	if err := os.WriteFile(md, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(md, 64<<20); err != nil {
		t.Fatal(err)
	}
	mdDev := loopDevice(t, md)
	out, err := exec.Command("mdadm", "--create", "/dev/md/kayotest", "--run", "--level=1", "--raid-devices=2",
		"--metadata=1.2", mdDev, "missing").CombinedOutput()
	if err != nil {
		t.Skipf("LVM2 checked; mdadm cannot assemble an array here (%s): MD RAID is covered by lunprobe's table test", strings.TrimSpace(string(out)))
	}
	_ = exec.Command("mdadm", "--stop", "/dev/md/kayotest").Run()
	s.LUN = mdDev
	if err := e.CheckVolumePlan(ctx, "", s); err == nil || !strings.Contains(err.Error(), `force_format_over = "md"`) {
		t.Fatalf("plan over an MD member: %v", err)
	}
}

// Data no signature is known for needs force_format; a regular file given
// as a path needs file_backed; a character device is never a LUN.
func TestFormatRefusesUnknownDataAndFiles(t *testing.T) {
	ctx := context.Background()
	e := newDisk(t)
	img := filepath.Join(t.TempDir(), "data.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 64<<20); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("precious"), (64<<20)-4096); err != nil {
		t.Fatal(err)
	}
	f.Close()
	before := sha(t, img)
	s := VolumeSpec{Cluster: "HVCLUSTER", LUN: img, SizeGiB: 1, DriveLetter: "X", BlockSize: 4096, NodeSlots: 4}
	for what, err := range map[string]error{"plan": e.CheckVolumePlan(ctx, "", s), "apply": errOnly(e.CreateVolume(ctx, s))} {
		if !isAttr(err, "file_backed") || !strings.Contains(err.Error(), "is a regular file, not a block device") {
			t.Fatalf("%s: a regular file without file_backed: %v", what, err)
		}
	}
	s.FileBacked = true
	for what, err := range map[string]error{"plan": e.CheckVolumePlan(ctx, "", s), "apply": errOnly(e.CreateVolume(ctx, s))} {
		if !isAttr(err, "force_format") || !strings.Contains(err.Error(), "does not recognise (a non-zero byte at offset 67104768)") {
			t.Fatalf("%s: unknown data: %v", what, err)
		}
	}
	if sha(t, img) != before {
		t.Fatal("the refused image changed")
	}
	// Grown to 1 GiB with the data moved into its last MiB: still refused
	// without force_format, formatted with it.
	if err := os.Truncate(img, 1<<30); err != nil {
		t.Fatal(err)
	}
	if f, err = os.OpenFile(img, os.O_RDWR, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("precious"), (1<<30)-4096); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := e.CreateVolume(ctx, s); !isAttr(err, "force_format") {
		t.Fatalf("unknown data in the last MiB: %v", err)
	}
	s.ForceFormat = true
	if _, err := e.CreateVolume(ctx, s); err != nil {
		t.Fatalf("force_format over unknown data: %v", err)
	}
	c := VolumeSpec{Cluster: "HVCLUSTER", LUN: "/dev/null", SizeGiB: 1, DriveLetter: "Y", BlockSize: 4096, NodeSlots: 4, FileBacked: true}
	if err := e.CheckVolumePlan(ctx, "", c); !isAttr(err, "lun") || !strings.Contains(err.Error(), "not a block device") {
		t.Fatalf("a character device: %v", err)
	}
	if err := CheckVolumeSpec(VolumeSpec{Cluster: "c", LUN: "l", SizeGiB: 1, DriveLetter: "O", BlockSize: 4096, NodeSlots: 2,
		ForceFormatOver: "gpt,bogus"}); !isAttr(err, "force_format_over") {
		t.Fatalf("an unknown force_format_over name: %v", err)
	}
}

// A block device is probed and formatted through an O_EXCL open: while
// something else holds it exclusively (a mount, device mapper, MD, or
// here the test), the volume is refused and nothing is written.
func TestFormatOpensBlockDevicesExclusively(t *testing.T) {
	ctx := context.Background()
	e := newDisk(t)
	img := filepath.Join(t.TempDir(), "blk.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 1<<30); err != nil {
		t.Fatal(err)
	}
	dev := loopDevice(t, img)
	holder, err := os.OpenFile(dev, os.O_RDONLY|syscall.O_EXCL, 0)
	if err != nil {
		t.Fatalf("holding %s: %v", dev, err)
	}
	s := VolumeSpec{Cluster: "HVCLUSTER", LUN: dev, SizeGiB: 1, DriveLetter: "X", BlockSize: 4096, NodeSlots: 4}
	if _, err := e.CreateVolume(ctx, s); !isAttr(err, "lun") || !strings.Contains(err.Error(), "is busy: something holds it exclusively") {
		t.Fatalf("a block device held exclusively elsewhere: %v", err)
	}
	holder.Close()
	v, err := e.CreateVolume(ctx, s)
	if err != nil {
		t.Fatalf("once released: %v", err)
	}
	if v.Device != dev {
		t.Fatalf("device %q, want %q", v.Device, dev)
	}
	if err := e.DeleteVolume(ctx, v.ID, false); err != nil {
		t.Fatal(err)
	}
}

// A LUN smaller than size_gib is refused at plan and at apply before any
// intent is recorded (issue: the intent blocked the drive letter for
// good); the letter then works on another LUN.
func TestVolumeTooSmallLeavesNoIntent(t *testing.T) {
	ctx := context.Background()
	e := newDisk(t)
	small := e.LUNPath("small")
	if err := os.MkdirAll(filepath.Dir(small), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(small, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(small, 512<<20); err != nil {
		t.Fatal(err)
	}
	s := VolumeSpec{Cluster: "HVCLUSTER", LUN: "small", SizeGiB: 1, DriveLetter: "S", BlockSize: 4096, NodeSlots: 4}
	if err := e.CheckVolumePlan(ctx, "", s); !isAttr(err, "size_gib") || !strings.Contains(err.Error(), "is larger than LUN \"small\"") {
		t.Fatalf("plan: %v", err)
	}
	if _, err := e.CreateVolume(ctx, s); !isAttr(err, "size_gib") {
		t.Fatalf("apply: %v", err)
	}
	if _, err := getJSON(ctx, e.st, volumeIntentKey("HVCLUSTER", "S"), &volumeIntent{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the refused creation left an intent: %v", err)
	}
	s.LUN = "big"
	if _, err := e.CreateVolume(ctx, s); err != nil {
		t.Fatalf("switching lun: %v", err)
	}
}

// An intent that wrote nothing (left by a crash, or by a version that
// recorded it before checking the size) gives way to a creation on
// another LUN, and the empty image it created goes; one that had begun
// formatting is resumed only, with a message that says how.
func TestStaleVolumeIntent(t *testing.T) {
	ctx := context.Background()
	e := newDisk(t)
	key := volumeIntentKey("HVCLUSTER", "S")
	stale := volumeIntent{Spec: VolumeSpec{Cluster: "HVCLUSTER", LUN: "small", SizeGiB: 1, DriveLetter: "S", BlockSize: 4096, NodeSlots: 4},
		Device: "/elsewhere/san/small.img", Created: true, StartedAt: fixedNow}
	if err := os.MkdirAll(filepath.Dir(e.LUNPath("small")), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := kayofs.CreateImage(e.LUNPath("small"), 1<<30); err != nil {
		t.Fatal(err)
	}
	stale.Writing = true
	if _, err := e.st.Commit(ctx, nil, []store.Op{putJSON(key, stale)}); err != nil {
		t.Fatal(err)
	}
	s := stale.Spec
	s.LUN = "other"
	if _, err := e.CreateVolume(ctx, s); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), `apply it again with lun = "small"`) {
		t.Fatalf("an intent that began writing: %v", err)
	}
	stale.Writing = false
	if _, err := e.st.Commit(ctx, nil, []store.Op{putJSON(key, stale)}); err != nil {
		t.Fatal(err)
	}
	v, err := e.CreateVolume(ctx, s)
	if err != nil {
		t.Fatalf("an intent that wrote nothing must give way: %v", err)
	}
	if _, err := os.Stat(e.LUNPath("small")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the empty image the dropped intent created is still there: %v", err)
	}
	if v.LUN != "other" {
		t.Fatalf("volume on %q", v.LUN)
	}
	// The other remedy: the LUN of an intent that wrote nothing was
	// removed; applying again with the same lun creates it afresh.
	gone := volumeIntent{Spec: VolumeSpec{Cluster: "HVCLUSTER", LUN: "gone", SizeGiB: 1, DriveLetter: "T", BlockSize: 4096, NodeSlots: 4},
		StartedAt: fixedNow}
	if _, err := e.st.Commit(ctx, nil, []store.Op{putJSON(volumeIntentKey("HVCLUSTER", "T"), gone)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateVolume(ctx, gone.Spec); err != nil {
		t.Fatalf("resuming an intent whose embedded LUN was removed: %v", err)
	}
}
