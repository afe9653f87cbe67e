package qemu

import (
	"slices"
	"strings"
	"testing"
)

func TestNetArgs(t *testing.T) {
	c := Config{Name: "WEB01", Dir: "/tmp/x", NICs: []NIC{
		{Tap: "kt1a2b00000001", MAC: "00-15-5D-0A-0B-0C", Address: "10.77.0.2/24"},
		{Tap: "kt1a2b00000002", MAC: "00-15-5D-0A-0B-0D"},
	}}
	a := strings.Join(c.Args(), " ")
	for _, want := range []string{
		"-netdev tap,id=net0,ifname=kt1a2b00000001,script=no,downscript=no -device virtio-net-pci,netdev=net0,mac=00:15:5d:0a:0b:0c,romfile=",
		"-netdev tap,id=net1,ifname=kt1a2b00000002,script=no,downscript=no -device virtio-net-pci,netdev=net1,mac=00:15:5d:0a:0b:0d,romfile=",
	} {
		if !strings.Contains(a, want) {
			t.Errorf("args lack %q:\n%s", want, a)
		}
	}
	if strings.Contains(a, "fw_cfg") {
		t.Errorf("addresses go by DHCP (internal/dhcpserve), not fw_cfg: %s", a)
	}
	if slices.Contains(Config{Name: "X", Dir: "/tmp/x"}.Args(), "-netdev") {
		t.Error("a VM without adapters has a netdev")
	}
}
