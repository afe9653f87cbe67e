package guestimage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor/qemu"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/vhd"
	"github.com/kayo-labs/terraform-provider-kayo/internal/qemutest"
)

// prepare builds the template and finds QEMU, skipping (failing under
// CI=true, where .ci/run installs everything) when either is missing.
func prepare(t testing.TB) (bin, template string) {
	t.Helper()
	fail := func(err error) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf("the template boot tests cannot run under CI=true: %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
	if runtime.GOOS != "linux" {
		fail(fmt.Errorf("QEMU guests need Linux"))
	}
	bin, err := qemu.Binary()
	if err != nil {
		fail(err)
	}
	b := &Builder{Root: qemutest.RepoRoot()}
	template, err = b.Build(context.Background())
	if err != nil {
		fail(err)
	}
	return bin, template
}

func openVHD(t testing.TB, path string, open vhd.ParentOpener, write bool) (*os.File, *vhd.Disk) {
	t.Helper()
	flag := os.O_RDONLY
	if write {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	d, err := vhd.OpenChain(f, st.Size(), open)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return f, d
}

// boot runs QEMU (TCG, no -kernel: SeaBIOS boots the disk's MBR) on
// drive until the serial console has printed every line matching want,
// and returns the console log.
func boot(t testing.TB, bin, drive string, want ...*regexp.Regexp) string {
	t.Helper()
	dir := t.TempDir()
	logPath := filepath.Join(dir, "serial.log")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-machine", "accel=tcg", "-m", "256", "-display", "none",
		"-no-reboot", "-monitor", "none", "-serial", "file:"+logPath, "-drive", drive)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		log, _ := os.ReadFile(logPath)
		missing := 0
		for _, re := range want {
			if !re.Match(log) {
				missing++
			}
		}
		if missing == 0 {
			return string(log)
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("QEMU exited (%v) before the guest printed %v; stderr: %s\nconsole:\n%s", err, want, stderr.String(), log)
		case <-ctx.Done():
			t.Fatalf("the guest did not print %v in time; console:\n%s", want, log)
		case <-tick.C:
		}
	}
}

// The template boots under plain QEMU from its own disk: the console
// names the FAT volume id this build wrote into the image.
func TestTemplateBootsFromItsDisk(t *testing.T) {
	bin, template := prepare(t)
	f, d := openVHD(t, template, nil, false)
	if p := vhd.Check(f, d.FileSize()); len(p) > 0 {
		t.Fatalf("template.vhd: %s", strings.Join(p, "; "))
	}
	vol, err := ReadVolume(d)
	if err != nil {
		t.Fatal(err)
	}
	if vol.Label != "KAYOTMPL" || len(vol.ID) != 8 {
		t.Fatalf("template volume %+v", vol)
	}
	before := sum(t, template)
	boot(t, bin, "file="+template+",format=vpc,if=virtio,snapshot=on",
		regexp.MustCompile(regexp.QuoteMeta(vol.BootLine())+"\r?\n"),
		regexp.MustCompile(`kayo-guest: disk marker \[\]`),
		regexp.MustCompile(`kayo-guest: wrote sector 2 id=`))
	if sum(t, template) != before {
		t.Fatal("booting with snapshot=on changed the template")
	}
}

// A differencing child of the template, served to QEMU by the qemu
// driver's NBD server (child and parent merged by vhd.Disk), boots the
// template's OS, reads the child's own marker, and its write lands in
// the child only: the template's file is unchanged.
func TestTemplateChildBootsOverNBD(t *testing.T) {
	bin, template := prepare(t)
	dir := t.TempDir()
	for _, d := range []string{"templates", "vms"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	base := filepath.Join(dir, "templates", "base.vhd")
	if err := copyFile(template, base); err != nil {
		t.Fatal(err)
	}
	before := sum(t, base)
	cpath := filepath.Join(dir, "vms", "a.vhd")
	cf, err := os.OpenFile(cpath, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer cf.Close()
	open := vhd.DirOpener(filepath.Join(dir, "vms"))
	child, err := vhd.CreateChild(vhd.OSFile(cf), open, vhd.ChildOptions{ParentPath: `..\templates\base.vhd`})
	if err != nil {
		t.Fatal(err)
	}
	defer child.Close()
	vol, err := ReadVolume(child)
	if err != nil {
		t.Fatal(err)
	}
	marker := "kayo-marker child-a"
	if _, err := child.WriteAt([]byte(marker), MarkerSector*512); err != nil {
		t.Fatal(err)
	}

	srv, err := qemu.ListenNBD(filepath.Join(dir, "nbd", "sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.Add("a", nbdDisk{child})
	log := boot(t, bin, "file="+srv.URL("a")+",format=raw,if=virtio",
		regexp.MustCompile(regexp.QuoteMeta(vol.BootLine())+"\r?\n"),
		regexp.MustCompile(regexp.QuoteMeta("kayo-guest: disk marker ["+marker+"]")),
		regexp.MustCompile(`kayo-guest: wrote sector 2 id=[0-9a-f]+`))
	srv.Close()
	id := regexp.MustCompile(`kayo-guest: wrote sector 2 id=([0-9a-f]+)`).FindStringSubmatch(log)[1]

	// The guest's write is in the child, which holds only its writes.
	got := make([]byte, 512)
	if _, err := child.ReadAt(got, WriteSector*512); err != nil {
		t.Fatal(err)
	}
	if want := "kayo-guest-write id=" + id; !bytes.HasPrefix(got, []byte(want+"\x00")) {
		t.Fatalf("child sector 2 = %q, want %q", bytes.TrimRight(got, "\x00"), want)
	}
	if n, err := child.OwnSectors(); err != nil || n < 2 || n > 64 {
		t.Errorf("child holds %d sectors (%v); the guest wrote one and the test one", n, err)
	}
	if sum(t, base) != before {
		t.Fatal("the template's file changed while a child of it was booted")
	}
	st, err := cf.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if p := vhd.CheckChain(cf, st.Size(), open); len(p) > 0 {
		t.Fatalf("CheckChain of the child: %s", strings.Join(p, "; "))
	}
	// The template still reads as before: its sector 2 is empty.
	_, pd := openVHD(t, base, nil, false)
	if _, err := pd.ReadAt(got, WriteSector*512); err != nil || !bytes.Equal(got, make([]byte, 512)) {
		t.Fatalf("template sector 2 = %q (%v)", bytes.TrimRight(got, "\x00"), err)
	}
}

// nbdDisk is a vhd.Disk as the NBD server's Disk.
type nbdDisk struct{ *vhd.Disk }

func (nbdDisk) Flush() error { return nil }

func sum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func TestReadVolumeRefusesOtherDisks(t *testing.T) {
	disk := make([]byte, 4096)
	if _, err := ReadVolume(bytes.NewReader(disk)); !errors.Is(err, ErrNotTemplate) {
		t.Errorf("blank disk: %v", err)
	}
	disk[510], disk[511] = 0x55, 0xAA
	disk[446+8] = 2 // partition at sector 2, whose boot sector is not FAT16
	copy(disk[1024+54:], "FAT32   ")
	if _, err := ReadVolume(bytes.NewReader(disk)); !errors.Is(err, ErrNotTemplate) {
		t.Errorf("FAT32 partition: %v", err)
	}
	copy(disk[1024+54:], "FAT16   ")
	copy(disk[1024+39:], []byte{0xD2, 0x6C, 0x67, 0x0D})
	copy(disk[1024+43:], "KAYOTMPL   ")
	v, err := ReadVolume(bytes.NewReader(disk))
	if err != nil || v.Label != "KAYOTMPL" || v.ID != "D26C670D" || v.BootLine() != "kayo-guest: booted from disk /dev/vda1 label=KAYOTMPL volid=D26C670D" {
		t.Errorf("volume %+v %v, line %q", v, err, v.BootLine())
	}
}
