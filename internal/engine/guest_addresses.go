package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// GuestAddresses are the addresses VM cluster/name's guest answers on,
// by adapter ("" not seen, or none assigned), as the agent of the node
// that owns it reported them (agent_qemu_net.go); a report from an
// earlier ownership does not count.
func (e *Engine) GuestAddresses(ctx context.Context, cluster, name string) ([]string, error) {
	vm, err := e.GetVM(ctx, cluster, name)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(vm.Adapters))
	var g GuestNet
	_, err = getJSON(ctx, e.st, qemuGuestNetKey(cluster, vm.Node, name), &g)
	if errors.Is(err, ErrNotFound) || err == nil && g.Token != vm.Token {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	copy(out, g.Addresses)
	return out, nil
}

// WaitGuestAddresses waits up to timeout until the guest of VM
// cluster/name answers on every address assigned to its adapters
// (AdapterAddresses), and returns them; past it, the error names the
// adapters and addresses not seen.
func (e *Engine) WaitGuestAddresses(ctx context.Context, cluster, name string, timeout time.Duration) ([]string, error) {
	deadline := time.Now().Add(timeout)
	for {
		vm, err := e.GetVM(ctx, cluster, name)
		if err != nil {
			return nil, err
		}
		got, err := e.GuestAddresses(ctx, cluster, name)
		if err != nil {
			return nil, err
		}
		var missing []string
		for i, want := range vm.AdapterAddresses {
			if want != "" && (i >= len(got) || got[i] != want) {
				missing = append(missing, fmt.Sprintf("network_adapters[%d] %s", i, want))
			}
		}
		if len(missing) == 0 {
			return got, nil
		}
		if time.Now().After(deadline) {
			return got, fmt.Errorf("VM %q on %s: its guest did not answer on %s within %v (is the guest up, and does it configure the address it is handed?)",
				name, vm.Node, strings.Join(missing, ", "), timeout)
		}
		select {
		case <-ctx.Done():
			return got, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}
