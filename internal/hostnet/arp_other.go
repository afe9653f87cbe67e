//go:build !linux

package hostnet

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"time"
)

// ProbeARP needs Linux packet sockets.
func ProbeARP(context.Context, string, netip.Addr, net.HardwareAddr, time.Duration) (bool, error) {
	return false, errors.New("ARP probes need Linux")
}
