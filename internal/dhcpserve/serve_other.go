//go:build !linux

package dhcpserve

import (
	"context"
	"errors"
	"net/netip"
)

// Serve needs Linux's packet sockets.
func Serve(ctx context.Context, ifname string, s *Server, id func() netip.Addr) error {
	return errors.New("DHCP on a switch needs Linux")
}
