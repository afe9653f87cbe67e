package qemu

import "strconv"

// Drives are a VM's disks beyond Config.Disk and how it boots
// (docs/ARCHITECTURE.md, "What is simulated").
type Drives struct {
	// Data are further disks, attached after the boot disk (the guest's
	// vdb, vdc, ...).
	Data []NBDDisk
	// DVD is the DVD drive's medium, attached read-only to an IDE CD
	// drive (zero: no DVD drive).
	DVD NBDDisk
	// Firmware: the VM boots its firmware (SeaBIOS), which boots the
	// devices of BootOrder, with no kernel from the host; otherwise it
	// boots Config.Guest, the lab's test kernel.
	Firmware bool
	// BootOrder lists "vhd" (the boot disk) and "dvd"; empty: the disk,
	// then the DVD.
	BootOrder []string
}

// bootIndex is the firmware boot position of device dev ("vhd", "dvd"),
// 0 when it is not in the order.
func (d Drives) bootIndex(dev string) int {
	order := d.BootOrder
	if len(order) == 0 {
		order = []string{"vhd", "dvd"}
	}
	for i, o := range order {
		if o == dev {
			return i + 1
		}
	}
	return 0
}

func nbdFile(n NBDDisk) string {
	return "file.driver=nbd,file.server.type=unix,file.server.path=" + optEscape(n.Socket) + ",file.export=" + optEscape(n.Export)
}

// bootArgs are the kernel arguments of a VM that boots the test guest,
// none for one that boots its firmware.
func (c Config) bootArgs() []string {
	if c.Drives.Firmware {
		return nil
	}
	return []string{"-kernel", c.Guest.Kernel, "-initrd", c.Guest.Initrd, "-append", c.Guest.Cmdline}
}

// driveArgs attach the boot disk, the data disks and the DVD drive, with
// firmware boot positions when the VM boots its firmware.
func (c Config) driveArgs() []string {
	var a []string
	boot := func(dev string) string {
		if i := c.Drives.bootIndex(dev); c.Drives.Firmware && i > 0 {
			return ",bootindex=" + strconv.Itoa(i)
		}
		return ""
	}
	if c.Disk.Socket != "" {
		a = append(a, "-drive", "if=none,id=vhd0,format=raw,"+nbdFile(c.Disk)+",cache=none,aio=threads",
			"-device", "virtio-blk-pci,drive=vhd0"+boot("vhd"))
	}
	for i, d := range c.Drives.Data {
		id := "data" + strconv.Itoa(i)
		a = append(a, "-drive", "if=none,id="+id+",format=raw,"+nbdFile(d)+",cache=none,aio=threads",
			"-device", "virtio-blk-pci,drive="+id)
	}
	if c.Drives.DVD.Socket != "" {
		a = append(a, "-drive", "if=none,id=dvd0,media=cdrom,readonly=on,format=raw,"+nbdFile(c.Drives.DVD),
			"-device", "ide-cd,drive=dvd0,bus=ide.1"+boot("dvd"))
	}
	return a
}

// accel is the accelerator argument: kvm when the node has a usable
// /dev/kvm (the agent decides), else tcg.
func (c Config) accel() string {
	if c.Accel == "kvm" {
		return "kvm"
	}
	return "tcg"
}
