package qemu

import (
	"fmt"
	"strings"
)

// NIC is a VM network adapter: the tap the node agent made on the
// switch's bridge (internal/hostnet), the adapter's static MAC, and the
// address reserved for it (CIDR; "" none), which the guest gets by DHCP
// from its node's agent (internal/dhcpserve).
type NIC struct {
	Tap     string
	MAC     string
	Address string
}

// netArgs are the -netdev/-device arguments of c's adapters: virtio-net on
// a tap QEMU opens by name (no helper scripts: the agent made the tap),
// no option ROM (no network boot). After an incoming migration QEMU
// announces each MAC (its default self-announce), so the switches learn
// where the guest runs now.
func (c Config) netArgs() []string {
	var a []string
	for i, n := range c.NICs {
		a = append(a, "-netdev", fmt.Sprintf("tap,id=net%d,ifname=%s,script=no,downscript=no", i, optEscape(n.Tap)),
			"-device", fmt.Sprintf("virtio-net-pci,netdev=net%d,mac=%s,romfile=", i, QEMUMAC(n.MAC)))
	}
	return a
}

// QEMUMAC writes a MAC as QEMU wants it (00:15:5d:..), from Hyper-V's
// 00-15-5D-.. form.
func QEMUMAC(mac string) string { return strings.ToLower(strings.ReplaceAll(mac, "-", ":")) }
