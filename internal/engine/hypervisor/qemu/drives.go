package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

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
			"-device", "virtio-blk-pci,drive="+id+",id="+dataDevice(i)+",addr="+dataSlot(i))
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

// Data disk i sits in PCI slot 0x10+i, with device id vdata<i>, on the
// command line and when hot-plugged alike: a live migration's target
// (whose command line lists every disk) then has each device where the
// source has it, whichever way the source got it.
func dataSlot(i int) string   { return fmt.Sprintf("0x%x", 0x10+i) }
func dataDevice(i int) string { return "vdata" + strconv.Itoa(i) }

// MaxDataSlots bounds the data disks a machine takes (slots 0x10-0x1f).
const MaxDataSlots = 16

// HotplugData attaches data disk i, served as n, to the running machine
// (QMP blockdev-add, then device_add of a virtio-blk-pci in its slot):
// the guest sees a new disk. A disk already attached is left alone, so
// a re-run after a failure half way converges.
func (m *Machine) HotplugData(ctx context.Context, i int, n NBDDisk) error {
	if i < 0 || i >= MaxDataSlots {
		return fmt.Errorf("qemu %s: data disk %d: at most %d data disks", m.Name, i+1, MaxDataSlots)
	}
	dev := dataDevice(i)
	if _, err := m.QMP.Execute(ctx, "qom-get", map[string]any{"path": "/machine/peripheral/" + dev, "property": "type"}); err == nil {
		return nil // attached: on the command line or by an earlier hot-plug
	} else if !isQMPError(err) {
		return err
	}
	node := "hdata" + strconv.Itoa(i)
	raw, err := m.QMP.Execute(ctx, "query-named-block-nodes", map[string]any{"flat": true})
	if err != nil {
		return fmt.Errorf("qemu %s: query-named-block-nodes: %w", m.Name, err)
	}
	var nodes []struct {
		NodeName string `json:"node-name"`
	}
	if err := json.Unmarshal(raw, &nodes); err != nil {
		return fmt.Errorf("qemu %s: query-named-block-nodes: %w", m.Name, err)
	}
	have := false
	for _, x := range nodes {
		have = have || x.NodeName == node
	}
	if !have {
		_, err := m.QMP.Execute(ctx, "blockdev-add", map[string]any{
			"driver": "raw", "node-name": node, "cache": map[string]any{"direct": true},
			"file": map[string]any{"driver": "nbd", "server": map[string]any{"type": "unix", "path": n.Socket}, "export": n.Export,
				"node-name": node + "-nbd"},
		})
		if err != nil {
			return fmt.Errorf("qemu %s: attaching data disk %d (blockdev-add of export %s): %w", m.Name, i+1, n.Export, err)
		}
	}
	if _, err := m.QMP.Execute(ctx, "device_add", map[string]any{"driver": "virtio-blk-pci", "drive": node, "id": dev, "addr": dataSlot(i)}); err != nil {
		return fmt.Errorf("qemu %s: attaching data disk %d (device_add in slot %s): %w", m.Name, i+1, dataSlot(i), err)
	}
	return nil
}

func isQMPError(err error) bool {
	var qe *QMPError
	return errors.As(err, &qe)
}
