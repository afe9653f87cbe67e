package qemu

import (
	"slices"
	"strings"
	"testing"
)

// A VM that boots its firmware gets no host kernel and boot positions in
// its boot order; one on the test guest gets the kernel and none; the
// DVD is a read-only IDE CD; a data disk has the device id and PCI slot
// a hot-plug gives it (so a migration target matches its source); the
// accelerator is the one asked for.
func TestDriveArgs(t *testing.T) {
	c := Config{Name: "WEB01", Guest: Guest{Kernel: "/k", Initrd: "/i", Cmdline: "x"}, Dir: "/d",
		Disk: NBDDisk{Socket: "/s", Export: "WEB01"},
		Drives: Drives{Data: []NBDDisk{{Socket: "/s", Export: "WEB01-disk1"}}, DVD: NBDDisk{Socket: "/s", Export: "WEB01-dvd"},
			Firmware: true, BootOrder: []string{"dvd", "vhd"}}}
	a := strings.Join(c.Args(), " ")
	for _, want := range []string{"-accel tcg", "virtio-blk-pci,drive=vhd0,bootindex=2", "virtio-blk-pci,drive=data0,id=vdata0,addr=0x10 ",
		"media=cdrom,readonly=on", "file.export=WEB01-dvd", "ide-cd,drive=dvd0,bus=ide.1,bootindex=1"} {
		if !strings.Contains(a+" ", want) {
			t.Errorf("args lack %q: %s", want, a)
		}
	}
	if slices.Contains(c.Args(), "-kernel") {
		t.Errorf("a firmware boot has a host kernel: %s", a)
	}
	c.Drives = Drives{}
	c.Accel = "kvm"
	a = strings.Join(c.Args(), " ")
	if !strings.Contains(a, "-kernel /k -initrd /i") || strings.Contains(a, "bootindex") || strings.Contains(a, "dvd0") ||
		!strings.Contains(a, "-accel kvm") {
		t.Errorf("test-guest boot args: %s", a)
	}
}
