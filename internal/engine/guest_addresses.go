package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor/qemu"
)

// GuestAddresses are the addresses VM cluster/name's guest is seen
// using, by adapter (CIDR; "" none seen, or no subnet on its switch): as
// the agent of the node that runs it reported them (internal/nodeagent/qemurun/net.go: a
// lease its DHCP server acknowledged, or an ARP answer). A VM that is
// not running has none. Right after a migration that kept the guest
// running, until the new node reports, the previous node's report
// stands: the guest kept its addresses. The simulator's guests take the
// reserved addresses at once.
func (e *Engine) GuestAddresses(ctx context.Context, cluster, name string) ([]string, error) {
	vm, err := e.GetVM(ctx, cluster, name)
	if err != nil {
		return nil, err
	}
	return e.guestAddresses(ctx, vm)
}

// HasReservedAddress reports whether an adapter of v has an address
// reserved (its switch has a subnet): without one, GuestAddresses has
// nothing to report (every adapter "") and nothing to wait for.
func (v VM) HasReservedAddress() bool {
	return slices.ContainsFunc(v.AdapterAddresses, func(a string) bool { return a != "" })
}

func (e *Engine) guestAddresses(ctx context.Context, vm VM) ([]string, error) {
	out := make([]string, len(vm.Adapters))
	if vm.Status != VMRunning && vm.Status != StatusMigrating || !vm.HasReservedAddress() {
		return out, nil
	}
	// Its hypervisor only: the head, decoded once per record.
	c, err := e.clusterHead(ctx, vm.Cluster)
	if err != nil {
		return nil, err
	}
	if c.Hypervisor != HypervisorQEMU {
		copy(out, vm.AdapterAddresses)
		return out, nil
	}
	var g GuestNet
	_, err = getJSON(ctx, e.st, qemu.GuestNetKey(vm.Cluster, vm.Node, vm.Name), &g)
	if errors.Is(err, ErrNotFound) || err == nil && g.Token != vm.Token {
		m := vm.LastMigration
		if m == nil || m.Token != vm.Token || m.To != vm.Node || m.ColdBoot != "" || m.From == "" {
			return out, nil
		}
		g = GuestNet{}
		if _, err = getJSON(ctx, e.st, qemu.GuestNetKey(vm.Cluster, m.From, vm.Name), &g); errors.Is(err, ErrNotFound) {
			return out, nil
		}
	}
	if err != nil {
		return nil, err
	}
	for i := range out {
		// Only while the adapter keeps the address the report is about.
		if i < len(g.Addresses) && i < len(vm.AdapterAddresses) && g.Addresses[i] == vm.AdapterAddresses[i] {
			out[i] = g.Addresses[i]
		}
	}
	return out, nil
}

// GuestNetTimeoutError: a VM's guest did not take the addresses of its
// adapters within the wait (wait_for_ip).
type GuestNetTimeoutError struct {
	VM      string
	Node    string
	Missing []string // "network_adapters[0] (switch \"Lab\", reserved 10.77.0.2/24)"
	Timeout time.Duration
}

func (e *GuestNetTimeoutError) Error() string {
	return fmt.Sprintf("VM %q on %s: no address seen on %s within %v (wait_for_ip): is the guest up, and does it ask for "+
		"its address by DHCP (or configure the reserved one)?", e.VM, e.Node, strings.Join(e.Missing, ", "), e.Timeout)
}

func (e *GuestNetTimeoutError) Unwrap() error { return ErrGuestNetTimeout }

// WaitGuestAddresses waits up to timeout until the guest of VM
// cluster/name is seen using an address on every adapter whose switch
// has a subnet (GuestAddresses), and returns them. progress (may be
// nil) is told what is still missing, at most every few seconds. A VM
// that is not running has nothing to wait for. Past timeout the error
// is a *GuestNetTimeoutError naming the adapters.
func (e *Engine) WaitGuestAddresses(ctx context.Context, cluster, name string, timeout time.Duration,
	progress func(missing []string, waited time.Duration)) ([]string, error) {
	start := time.Now()
	var told time.Time
	for {
		vm, err := e.GetVM(ctx, cluster, name)
		if err != nil {
			return nil, err
		}
		got, err := e.guestAddresses(ctx, vm)
		if err != nil {
			return nil, err
		}
		var missing []string
		if vm.Status == VMRunning || vm.Status == StatusMigrating {
			for i, want := range vm.AdapterAddresses {
				if want != "" && i < len(got) && got[i] == "" {
					sw := ""
					if i < len(vm.Adapters) {
						sw = vm.Adapters[i].Switch
					}
					missing = append(missing, fmt.Sprintf("network_adapters[%d] (switch %q, reserved %s)", i, sw, want))
				}
			}
		}
		if len(missing) == 0 {
			return got, nil
		}
		waited := time.Since(start)
		if waited >= timeout {
			return got, &GuestNetTimeoutError{VM: name, Node: vm.Node, Missing: missing, Timeout: timeout}
		}
		if progress != nil && time.Since(told) >= 5*time.Second {
			told = time.Now()
			progress(missing, waited)
		}
		select {
		case <-ctx.Done():
			return got, fmt.Errorf("VM %q: waiting for its guest's addresses: %w", name, ctx.Err())
		case <-time.After(min(250*time.Millisecond, timeout-waited)):
		}
	}
}
