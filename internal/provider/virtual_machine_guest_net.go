package provider

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
)

// A VM's guest addresses: `ip_addresses` are what the guest is seen
// using (engine.GuestAddresses), and `timeouts.wait_for_ip` is how long
// create and update wait for them.

// defaultWaitForIP is wait_for_ip when not set (vSphere's
// wait_for_guest_net_timeout default). The simulator's guests report their
// reserved addresses at once, so it costs them nothing.
const defaultWaitForIP = 5 * time.Minute

const waitForIPAllowed = `a duration such as "5m" or "90s" (units "s", "m", "h"), or "0" not to wait`

// vmTimeoutsAttribute is the `timeouts` attribute: create, update, delete
// and wait_for_ip.
func vmTimeoutsAttribute(ctx context.Context) schema.Attribute {
	a := timeouts.Attributes(ctx, timeouts.Opts{Create: true, Update: true, Delete: true}).(schema.SingleNestedAttribute)
	attrs := make(map[string]schema.Attribute, len(a.Attributes)+1)
	for k, v := range a.Attributes {
		attrs[k] = v
	}
	attrs["wait_for_ip"] = schema.StringAttribute{Optional: true, Validators: []validator.String{waitForIPValidator{}},
		MarkdownDescription: "How long create and update wait, once the VM runs, until its guest is seen using an address on " +
			"every adapter whose switch has a `subnet` (the address its node's DHCP server acknowledged, or an ARP answer " +
			"from the switch), so `ip_addresses` are known after apply; past it apply fails naming the VM and the adapters. " +
			"Default `5m`; `0` does not wait. Simulator VMs report their reserved addresses at once."}
	attrTypes := make(map[string]attr.Type, len(attrs))
	for k := range attrs {
		attrTypes[k] = types.StringType
	}
	a.Attributes = attrs
	a.CustomType = timeouts.Type{ObjectType: types.ObjectType{AttrTypes: attrTypes}}
	a.MarkdownDescription = "Operation timeouts (`create`, `update`, `delete`; default 20m each) and `wait_for_ip`."
	return a
}

// waitForIP is the plan's or state's wait_for_ip (defaultWaitForIP when
// unset; validated at plan time).
func waitForIP(m vmModel) time.Duration {
	if m.Timeouts.IsNull() || m.Timeouts.IsUnknown() {
		return defaultWaitForIP
	}
	v, ok := m.Timeouts.Attributes()["wait_for_ip"].(types.String)
	if !ok || v.IsNull() || v.IsUnknown() {
		return defaultWaitForIP
	}
	d, err := parseWaitForIP(v.ValueString())
	if err != nil {
		return defaultWaitForIP
	}
	return d
}

func parseWaitForIP(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("timeouts.wait_for_ip: %q is not allowed; use %s", s, waitForIPAllowed)
	}
	return d, nil
}

// waitForIPValidator refuses what parseWaitForIP cannot read, at plan
// time.
type waitForIPValidator struct{}

func (waitForIPValidator) Description(context.Context) string         { return waitForIPAllowed }
func (waitForIPValidator) MarkdownDescription(context.Context) string { return waitForIPAllowed }
func (waitForIPValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if _, err := parseWaitForIP(req.ConfigValue.ValueString()); err != nil {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid wait_for_ip", err.Error())
	}
}

// withGuestNet fills m's ip_addresses with what vm's guest is seen using
// now.
func withGuestNet(ctx context.Context, e *engine.Engine, vm engine.VM, m vmModel, diags *diag.Diagnostics) vmModel {
	if m.NetworkAdapters.IsNull() || len(vm.Adapters) == 0 {
		return m
	}
	if !vm.HasReservedAddress() { // no subnet: none to read
		return setGuestIPs(vm, m, nil)
	}
	addrs, err := e.GuestAddresses(ctx, vm.Cluster, vm.Name)
	if err != nil {
		diags.AddError("Cannot read the guest addresses of VM "+vm.Name, err.Error())
		return m
	}
	return setGuestIPs(vm, m, addrs)
}

func setGuestIPs(vm engine.VM, m vmModel, addrs []string) vmModel {
	switches := make([]string, len(vm.Adapters))
	for i, a := range vm.Adapters {
		switches[i] = a.Switch
	}
	m.NetworkAdapters = adaptersValue(vm.Cluster, vm.Name, switches, adapterIPs(vm, addrs), false)
	return m
}

// waitGuestNet waits (wait_for_ip of plan) until vm's guest is seen on an
// address of every adapter with one, logging progress, and returns the
// model with them.
func waitGuestNet(ctx context.Context, e *engine.Engine, vm engine.VM, m, plan vmModel, diags *diag.Diagnostics) vmModel {
	wait := waitForIP(plan)
	if wait <= 0 || len(vm.Adapters) == 0 || m.NetworkAdapters.IsNull() || !vm.HasReservedAddress() {
		return withGuestNet(ctx, e, vm, m, diags)
	}
	start := time.Now()
	addrs, err := e.WaitGuestAddresses(ctx, vm.Cluster, vm.Name, wait, func(missing []string, waited time.Duration) {
		tflog.Info(ctx, fmt.Sprintf("VM %s: waiting for its guest's addresses on %s (%v of wait_for_ip %v)", vm.Name,
			strings.Join(missing, ", "), waited.Round(time.Second), wait), map[string]any{"vm": vm.Name, "node": vm.Node})
	})
	var te *engine.GuestNetTimeoutError
	if errors.As(err, &te) {
		// The VM exists: its state is kept (tainted by the error), with
		// the addresses seen so far.
		diags.AddAttributeError(path.Root("timeouts").AtName("wait_for_ip"), "VM "+vm.Name+": no guest address in time", err.Error())
		return withGuestNet(ctx, e, vm, m, diags)
	}
	if err != nil {
		diags.AddError("Cannot read the guest addresses of VM "+vm.Name, err.Error())
		return m
	}
	tflog.Info(ctx, fmt.Sprintf("VM %s: guest addresses %v after %v", vm.Name, addrs, time.Since(start).Round(time.Millisecond)))
	return setGuestIPs(vm, m, addrs)
}
