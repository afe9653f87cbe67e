package provider

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/objectplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/validate"
	"github.com/kayo-labs/terraform-provider-kayo/internal/hostfacts"
)

// kayo_host.reported: what the host's node agent reports of its machine
// (internal/hostfacts), null while no agent has reported.

var reportedAdapterAttrTypes = map[string]attr.Type{
	"name": types.StringType, "mac": types.StringType, "addresses": types.ListType{ElemType: types.StringType},
	"networks": types.ListType{ElemType: types.StringType}, "up": types.BoolType,
}

var reportedHypervisorAttrTypes = map[string]attr.Type{
	"name": types.StringType, "version": types.StringType, "accel": types.StringType,
}

var reportedAttrTypes = map[string]attr.Type{
	"processor_vendor": types.StringType,
	"processor_model":  types.StringType,
	"processor_cores":  types.Int64Type,
	"cpu_flags":        types.ListType{ElemType: types.StringType},
	"memory_mb":        types.Int64Type,
	"network_adapters": types.ListType{ElemType: types.ObjectType{AttrTypes: reportedAdapterAttrTypes}},
	"hypervisor":       types.ObjectType{AttrTypes: reportedHypervisorAttrTypes},
	"reported_at":      types.StringType,
	"stale":            types.BoolType,
	"clock_offset_ms":  types.Int64Type,
	"luns":             reportedLUNsType,
}

func reportedSchema() schema.SingleNestedAttribute {
	str := func(d string) schema.StringAttribute {
		return schema.StringAttribute{Computed: true, MarkdownDescription: d}
	}
	return schema.SingleNestedAttribute{
		Computed: true,
		MarkdownDescription: "What the host's node agent (`kayoctl agent --node NAME`) reports of its machine; null until " +
			"an agent has reported (the embedded lab's hosts are fictional and run no reporting agent). Cluster " +
			"validation compares the declared facts with it: a declared fact it contradicts fails validation.",
		PlanModifiers: []planmodifier.Object{objectplanmodifier.UseStateForUnknown()},
		Attributes: map[string]schema.Attribute{
			"processor_vendor": str("`intel` or `amd` (from cpuinfo's vendor_id)."),
			"processor_model":  str("The processor's model name."),
			"processor_cores":  schema.Int64Attribute{Computed: true, MarkdownDescription: "Physical cores."},
			"cpu_flags":        schema.ListAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "CPU feature flags (cpuinfo)."},
			"memory_mb":        schema.Int64Attribute{Computed: true, MarkdownDescription: "Memory the kernel sees (MemTotal), MB."},
			"network_adapters": schema.ListNestedAttribute{Computed: true, MarkdownDescription: "Network interfaces (loopback left out).",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"name":      str("Interface name."),
					"mac":       str("MAC address."),
					"addresses": schema.ListAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "Addresses in CIDR notation."},
					"networks": schema.ListAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "The networks (subnets, " +
						"CIDR) of its usable addresses (not loopback, link-local or multicast): the cluster networks it can be an adapter in."},
					"up": schema.BoolAttribute{Computed: true, MarkdownDescription: "Whether the link is up."},
				}}},
			"hypervisor": schema.SingleNestedAttribute{Computed: true, MarkdownDescription: "The hypervisor it can run; null without QEMU.",
				Attributes: map[string]schema.Attribute{
					"name":    str("`qemu`."),
					"version": str("QEMU's version."),
					"accel":   str("`kvm` when /dev/kvm is usable, else `tcg`."),
				}},
			"reported_at": str("When the agent reported (RFC 3339, UTC); it re-reports every minute."),
			"stale": schema.BoolAttribute{Computed: true, MarkdownDescription: "The report is older than 10 minutes (its agent " +
				"stopped): validation no longer uses it."},
			"clock_offset_ms": clockOffsetSchema(),
			"luns":            reportedLUNsSchema(),
		},
	}
}

// reportedValue reads node's report for the state; null when none.
func reportedValue(ctx context.Context, e *engine.Engine, node string) (types.Object, error) {
	r, stale, err := e.HostReport(ctx, node)
	if errors.Is(err, engine.ErrNotFound) || errors.Is(err, engine.ErrBadReport) {
		return types.ObjectNull(reportedAttrTypes), nil
	}
	if err != nil {
		return types.ObjectNull(reportedAttrTypes), err
	}
	return withClockOffset(ctx, e, node, reportedObject(r, stale))
}

func reportedObject(r hostfacts.Report, stale bool) types.Object {
	strs := func(xs []string) types.List {
		vs := make([]attr.Value, len(xs))
		for i, x := range xs {
			vs[i] = types.StringValue(x)
		}
		return types.ListValueMust(types.StringType, vs)
	}
	adapters := make([]attr.Value, len(r.Adapters))
	for i, a := range r.Adapters {
		adapters[i] = types.ObjectValueMust(reportedAdapterAttrTypes, map[string]attr.Value{
			"name": types.StringValue(a.Name), "mac": types.StringValue(a.MAC), "addresses": strs(a.Addresses),
			"networks": strs(adapterNetworks(a)), "up": types.BoolValue(a.Up),
		})
	}
	hv := types.ObjectNull(reportedHypervisorAttrTypes)
	if r.Hypervisor != nil {
		hv = types.ObjectValueMust(reportedHypervisorAttrTypes, map[string]attr.Value{
			"name": types.StringValue(r.Hypervisor.Name), "version": types.StringValue(r.Hypervisor.Version), "accel": types.StringValue(r.Hypervisor.Accel),
		})
	}
	return types.ObjectValueMust(reportedAttrTypes, map[string]attr.Value{
		"processor_vendor": types.StringValue(r.ProcessorVendor),
		"processor_model":  types.StringValue(r.ProcessorModel),
		"processor_cores":  types.Int64Value(int64(r.ProcessorCores)),
		"cpu_flags":        strs(r.CPUFlags),
		"memory_mb":        types.Int64Value(r.MemoryMB),
		"network_adapters": types.ListValueMust(types.ObjectType{AttrTypes: reportedAdapterAttrTypes}, adapters),
		"hypervisor":       hv,
		"reported_at":      types.StringValue(r.ReportedAt.UTC().Format(time.RFC3339)),
		"stale":            types.BoolValue(stale),
		"clock_offset_ms":  types.Int64Null(),
		"luns":             reportedLUNsValue(r.LUNs),
	})
}

// adapterNetworks are the subnets of a's usable addresses, each once.
func adapterNetworks(a hostfacts.Adapter) []string {
	out := []string{}
	for _, s := range a.Addresses {
		p, err := netip.ParsePrefix(s)
		if err != nil || !validate.UsableAddress(p.Addr()) {
			continue
		}
		if n := p.Masked().String(); !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}
