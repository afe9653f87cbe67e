package qemutest

import (
	"context"
	"fmt"
	"os/exec"
	"strings"

	"github.com/kayo-labs/terraform-provider-kayo/internal/hostnet"
)

// FloorSwitch makes in network namespace ns what a node agent makes there
// for an external switch, with the agents' own code (internal/hostnet):
// bridge br taking over the uplink that holds address (the address and
// its routes move to the bridge), and tap on br, up. The floor's sides
// (FloorNet) sit on it, so their guest's packets take the hops a VM's do.
func FloorSwitch(ctx context.Context, ns, address, br, tap string) error {
	n := &hostnet.Net{IP: func(ctx context.Context, args ...string) ([]byte, error) {
		out, err := exec.CommandContext(ctx, "ip", append([]string{"-n", ns}, args...)...).CombinedOutput()
		if err != nil {
			return out, fmt.Errorf("ip -n %s %s: %v: %s", ns, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return out, nil
	}}
	links, err := n.Links(ctx)
	if err != nil {
		return err
	}
	uplink, err := hostnet.ResolveAdapter(links, "", address, br)
	if err != nil {
		return err
	}
	if err := n.EnsureBridge(ctx, br, uplink); err != nil {
		return err
	}
	return n.EnsureTap(ctx, tap, br)
}
