package guestimage

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor/qemu"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/vhd"
)

// BenchmarkTemplateBoot: QEMU start to the guest's boot line (BIOS,
// syslinux loading the kernel and initramfs off the disk, the kernel,
// init finding its disk) for the template as a raw file (the floor),
// as a VHD read by QEMU's vpc driver, and as a fresh differencing child
// served by the qemu driver's NBD server (what a cloned VM boots from).
func BenchmarkTemplateBoot(b *testing.B) {
	bin, template := prepare(b)
	dir := b.TempDir()
	raw := filepath.Join(dir, "template.raw")
	if out, err := exec.Command("qemu-img", "convert", "-f", "vpc", "-O", "raw", template, raw).CombinedOutput(); err != nil {
		b.Fatalf("qemu-img convert: %v: %s", err, out)
	}
	_, d := openVHD(b, template, nil, false)
	vol, err := ReadVolume(d)
	if err != nil {
		b.Fatal(err)
	}
	line := regexp.MustCompile(regexp.QuoteMeta(vol.BootLine()))
	b.Run("raw-file", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			boot(b, bin, "file="+raw+",format=raw,if=virtio,snapshot=on", line)
		}
	})
	b.Run("vpc-file", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			boot(b, bin, "file="+template+",format=vpc,if=virtio,snapshot=on", line)
		}
	})
	b.Run("child-nbd", func(b *testing.B) {
		if err := os.Symlink(template, filepath.Join(dir, "base.vhd")); err != nil {
			b.Fatal(err)
		}
		srv, err := qemu.ListenNBD(filepath.Join(dir, "nbd", "sock"))
		if err != nil {
			b.Fatal(err)
		}
		defer srv.Close()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			f, err := os.Create(filepath.Join(dir, "child.vhd"))
			if err != nil {
				b.Fatal(err)
			}
			c, err := vhd.CreateChild(vhd.OSFile(f), vhd.DirOpener(dir), vhd.ChildOptions{ParentPath: "base.vhd"})
			if err != nil {
				b.Fatal(err)
			}
			srv.Add("c", nbdDisk{c})
			b.StartTimer()
			boot(b, bin, "file="+srv.URL("c")+",format=raw,if=virtio", line)
			b.StopTimer()
			srv.Remove("c")
			c.Close()
			f.Close()
			b.StartTimer()
		}
	})
}
