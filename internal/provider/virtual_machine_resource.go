package provider

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/objectdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor"
	"github.com/kayo-labs/terraform-provider-kayo/internal/orphans"
)

var (
	_ resource.ResourceWithConfigure   = (*vmResource)(nil)
	_ resource.ResourceWithImportState = (*vmResource)(nil)
	_ resource.ResourceWithModifyPlan  = (*vmResource)(nil)
)

// NewVirtualMachineResource is the kayo_virtual_machine resource.
func NewVirtualMachineResource() resource.Resource { return &vmResource{} }

type vmResource struct{ engine *engine.Engine }

type vmModel struct {
	ID                 types.String   `tfsdk:"id"`
	ClusterID          types.String   `tfsdk:"cluster_id"`
	VolumeID           types.String   `tfsdk:"volume_id"`
	Name               types.String   `tfsdk:"name"`
	MemoryMB           types.Int64    `tfsdk:"memory_mb"`
	ProcessorCount     types.Int64    `tfsdk:"processor_count"`
	VHD                types.Object   `tfsdk:"vhd"`
	NetworkAdapters    types.List     `tfsdk:"network_adapters"`
	OwnerNode          types.String   `tfsdk:"owner_node"`
	PreferredOwners    types.List     `tfsdk:"preferred_owners"`
	PossibleOwners     types.Set      `tfsdk:"possible_owners"`
	AntiAffinityClass  types.String   `tfsdk:"anti_affinity_class"`
	AntiAffinityMode   types.String   `tfsdk:"anti_affinity_mode"`
	Migration          types.String   `tfsdk:"migration"`
	State              types.String   `tfsdk:"state"`
	AllowRestart       types.Bool     `tfsdk:"allow_restart"`
	Failback           types.Object   `tfsdk:"failback"`
	MaxFailures        types.Int64    `tfsdk:"max_failures"`
	FailurePeriodHours types.Int64    `tfsdk:"failure_period_hours"`
	CurrentNode        types.String   `tfsdk:"current_node"`
	Status             types.String   `tfsdk:"status"`
	StatusReason       types.String   `tfsdk:"status_reason"`
	VHDPath            types.String   `tfsdk:"vhd_path"`
	ConfigPath         types.String   `tfsdk:"config_path"`
	LastMigration      types.Object   `tfsdk:"last_migration"`
	DataDisks          types.List     `tfsdk:"data_disks"`
	DVD                types.Object   `tfsdk:"dvd"`
	BootOrder          types.List     `tfsdk:"boot_order"`
	Timeouts           timeouts.Value `tfsdk:"timeouts"`
}

var (
	vmAdapterAttrTypes = map[string]attr.Type{"switch": types.StringType, "mac_address": types.StringType,
		"ip_addresses": types.ListType{ElemType: types.StringType}}
	vmAdapterObjType  = types.ObjectType{AttrTypes: vmAdapterAttrTypes}
	failbackAttrTypes = map[string]attr.Type{"mode": types.StringType, "window_start_hour": types.Int64Type,
		"window_end_hour": types.Int64Type}
	migrationAttrTypes = map[string]attr.Type{"type": types.StringType, "from": types.StringType, "to": types.StringType,
		"duration_ms": types.Int64Type, "downtime_ms": types.Int64Type}
)

func (r *vmResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_virtual_machine"
}

const vmSimulatedNote = "**Simulated in the embedded engine:** the VHD and the configuration file are real files on " +
	"the Kayo FS volume (the VHD per Microsoft's VHD specification; `qemu-img` reads it), and placement, " +
	"ownership with fencing tokens, migration phases and their crash recovery are the engine's real logic. " +
	"The VM runtime is the `simulator` hypervisor: nothing boots, no guest runs and no memory is copied; " +
	"live migration's pre-copy rounds, downtime and duration come from a deterministic model (1 GB/s " +
	"migration network, a guest dirtying 25 MB/s per GiB), and a quick migration's saved-state file on the " +
	"volume holds a header and a sparse memory image. Real drivers (QEMU, Hyper-V) plug in behind the same interface."

func (r *vmResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "A clustered Hyper-V virtual machine whose VHD and configuration file live on a shared " +
			"Kayo FS volume (`O:\\WEB01\\WEB01.vhd` and `O:\\WEB01\\WEB01.xml`). The engine's scheduler places it on " +
			"a node (or `owner_node` pins it); memory is reserved on that node atomically with the VM's record, so " +
			"two VMs planned onto the last free memory cannot both land.\n\n" +
			"**Setting or changing `owner_node`, or a `possible_owners` that excludes the current node, is an in-place " +
			"update that migrates the VM, never a replacement.** A running VM with `migration = \"live\"` moves by live " +
			"migration when both nodes have the same processor vendor, otherwise by quick migration (state saved to " +
			"the shared volume, owner switched, state restored); an `off` VM just changes owner. The plan shows one " +
			"warning per migrating VM (\"WEB01 will be live-migrated from Y-21-2k8x64 to Y-22-2k8x64\"), and a placement " +
			"that cannot work (node down, not a possible owner, not enough memory, required anti-affinity, quorum lost) " +
			"fails the plan naming the attribute. A pinned VM found away from its pin moves back when the pin can take " +
			"it; while the pin is down it stays, with a warning. An unpinned VM that failed over produces no diff.\n\n" +
			"Every owner change carries a fencing token and is an event (`kayoctl events --kind vm.owner_changed`); a " +
			"migration runs between an intent and a completion record, so a process killed midway is rolled back " +
			"(before the owner switch) or forward (after it) by the next plan or apply.\n\n" + vmSimulatedNote,
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{Computed: true, MarkdownDescription: "`cluster/name`, e.g. `HVCLUSTER/WEB01`.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()}},
			"cluster_id": schema.StringAttribute{Required: true, MarkdownDescription: "The cluster (`kayo_cluster.*.id`). Changing it replaces the VM.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()}},
			"volume_id": schema.StringAttribute{Required: true, MarkdownDescription: "The shared volume holding the VM's files " +
				"(`kayo_shared_volume.*.id`, a UUID). A VM's storage does not move: changing it is a plan-time error."},
			"name": schema.StringAttribute{Required: true, MarkdownDescription: "The VM name, also its directory and file names on the " +
				"volume: 1–64 letters, digits, `-`, `_`, `.`, starting with a letter or digit, no `..`, not a Windows device name. " +
				"Changing it replaces the VM.",
				Validators:    []validator.String{vmNameValidator{}},
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()}},
			"memory_mb": schema.Int64Attribute{Required: true, MarkdownDescription: "Memory in MB (32 to 1048576). Reserved on the " +
				"owner node (after its 2048 MB host reserve). Changing it: in place when the VM is off; for a running VM only " +
				"with `allow_restart = true` (apply shuts it down, changes it and starts it)."},
			"processor_count": schema.Int64Attribute{Optional: true, Computed: true, Default: int64default.StaticInt64(1),
				MarkdownDescription: "Virtual processors (1–64). Same change rule as `memory_mb`."},
			"vhd": schema.SingleNestedAttribute{Required: true, MarkdownDescription: "The virtual disk, `<letter>:\\<name>\\<name>.vhd`: " +
				"blank, or made from a template (`source`).",
				Attributes: vhdSchemaAttrs()}, // virtual_machine_disks.go
			"network_adapters": schema.ListNestedAttribute{Optional: true, MarkdownDescription: "Network adapters (at most 8).",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"switch": schema.StringAttribute{Required: true, MarkdownDescription: "The virtual switch, e.g. `Public`."},
					"mac_address": schema.StringAttribute{Computed: true, MarkdownDescription: "Static MAC in Hyper-V's `00-15-5D` range, " +
						"derived from cluster, name and position (known at plan)."},
					"ip_addresses": schema.ListAttribute{Computed: true, ElementType: types.StringType,
						MarkdownDescription: "The addresses the guest is seen using on the adapter, as the agent of the node running it " +
							"reports them: on a `kayo_virtual_switch` with a `subnet` each adapter has an address reserved for it (the " +
							"lowest free one, kept while the adapter stays on that switch), which the guest gets by DHCP from its node's " +
							"agent; it shows here once the agent acknowledged the lease or the guest answers ARP on it. Unchanged by " +
							"migrations. Empty while the VM is off, on a switch without a subnet, and until the guest took its address " +
							"(see `timeouts.wait_for_ip`). Simulator VMs show their reserved addresses while running."},
				}}},
			"owner_node": schema.StringAttribute{Optional: true, MarkdownDescription: "The pin: the node the VM runs on. Null lets " +
				"the scheduler decide. Setting or changing it migrates the VM in place."},
			"preferred_owners": schema.ListAttribute{Optional: true, ElementType: types.StringType,
				MarkdownDescription: "Nodes of the cluster in order of preference, for placement and failover."},
			"possible_owners": schema.SetAttribute{Optional: true, ElementType: types.StringType,
				MarkdownDescription: "The only nodes that may run the VM (null: every node); each must be a node of the cluster. " +
					"Excluding the current node migrates the VM."},
			"anti_affinity_class": schema.StringAttribute{Optional: true, MarkdownDescription: "VMs of one class are kept on different nodes."},
			"anti_affinity_mode": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString("preferred"),
				MarkdownDescription: "`preferred` (as in Windows: avoided when possible) or `required` (never two of the class on one node)."},
			"migration": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString(engine.MigrationLive),
				MarkdownDescription: "`live` or `quick`: how a running VM moves. Live needs the same processor vendor on both nodes, " +
					"else quick is used."},
			"state": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString(engine.VMRunning),
				MarkdownDescription: "`running` or `off`. A VM found off (stopped after a lost quorum, or a crash) reads as `off`, so " +
					"the plan starts it again."},
			"allow_restart": schema.BoolAttribute{Optional: true, Computed: true, Default: booldefault.StaticBool(false),
				MarkdownDescription: "Let apply shut a running VM down to change its memory, processors, adapters or disk size."},
			"failback": schema.SingleNestedAttribute{Optional: true, Computed: true,
				Default: objectdefault.StaticValue(types.ObjectValueMust(failbackAttrTypes, map[string]attr.Value{
					"mode": types.StringValue(engine.FailbackPrevent), "window_start_hour": types.Int64Null(), "window_end_hour": types.Int64Null()})),
				MarkdownDescription: "Whether the VM moves back to its preferred owner after a failover.",
				Attributes: map[string]schema.Attribute{
					"mode":              schema.StringAttribute{Required: true, MarkdownDescription: "`prevent`, `immediate` or `window`."},
					"window_start_hour": schema.Int64Attribute{Optional: true, MarkdownDescription: "With `window`: first hour (0–23)."},
					"window_end_hour":   schema.Int64Attribute{Optional: true, MarkdownDescription: "With `window`: last hour (0–23)."},
				}},
			"max_failures": schema.Int64Attribute{Optional: true, Computed: true,
				MarkdownDescription: "Failovers allowed per `failure_period_hours` (default, as in Windows: nodes − 1)."},
			"failure_period_hours": schema.Int64Attribute{Optional: true, Computed: true, Default: int64default.StaticInt64(6),
				MarkdownDescription: "The period of `max_failures`, in hours."},
			"current_node": schema.StringAttribute{Computed: true, MarkdownDescription: "The node the VM runs on (its owner). " +
				"Known in the plan when `owner_node` pins it; unknown when the scheduler decides and the VM changes."},
			"status": schema.StringAttribute{Computed: true, MarkdownDescription: "`running`, `off`, `migrating` or `failed`."},
			"status_reason": schema.StringAttribute{Computed: true, MarkdownDescription: "Why the VM is failed, or off though " +
				"`state` is `running` (e.g. its node agent stopped its QEMU process); else empty."},
			"vhd_path":    schema.StringAttribute{Computed: true, MarkdownDescription: "The VHD as nodes see it, e.g. `O:\\WEB01\\WEB01.vhd`."},
			"config_path": schema.StringAttribute{Computed: true, MarkdownDescription: "The configuration file beside it, e.g. `O:\\WEB01\\WEB01.xml`."},
			"last_migration": schema.SingleNestedAttribute{Computed: true, MarkdownDescription: "The last migration: `type` " +
				"(`live`, `quick`, `offline`), `from`, `to`, `duration_ms`, `downtime_ms` (modelled by the simulator).",
				Attributes: map[string]schema.Attribute{
					"type": schema.StringAttribute{Computed: true}, "from": schema.StringAttribute{Computed: true},
					"to": schema.StringAttribute{Computed: true}, "duration_ms": schema.Int64Attribute{Computed: true},
					"downtime_ms": schema.Int64Attribute{Computed: true},
				}},
			"timeouts": vmTimeoutsAttribute(ctx), // virtual_machine_guest_net.go
		},
	}
	for k, a := range diskSchemaAttrs() { // virtual_machine_disks.go
		resp.Schema.Attributes[k] = a
	}
}

func (r *vmResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.engine = engineFrom(req.ProviderData, &resp.Diagnostics)
}

// known reports whether every value spec() needs is known.
func (m vmModel) known() bool {
	for _, v := range []attr.Value{m.ClusterID, m.VolumeID, m.Name, m.MemoryMB, m.ProcessorCount, m.VHD, m.NetworkAdapters,
		m.DataDisks, m.DVD, m.BootOrder,
		m.OwnerNode, m.PreferredOwners, m.PossibleOwners, m.AntiAffinityClass, m.AntiAffinityMode, m.Migration, m.State,
		m.AllowRestart, m.Failback, m.FailurePeriodHours} {
		if v.IsUnknown() {
			return false
		}
	}
	if !m.VHD.IsNull() {
		for _, v := range m.VHD.Attributes() {
			if v.IsUnknown() {
				return false
			}
		}
	}
	for _, v := range m.NetworkAdapters.Elements() {
		if o, ok := v.(types.Object); ok && o.Attributes()["switch"].IsUnknown() {
			return false
		}
	}
	for _, v := range m.DataDisks.Elements() {
		if o, ok := v.(types.Object); ok && (o.Attributes()["size_gib"].IsUnknown() || o.Attributes()["type"].IsUnknown()) {
			return false
		}
	}
	if !m.DVD.IsNull() && !m.DVD.IsUnknown() {
		if p, ok := m.DVD.Attributes()["path"]; ok && p.IsUnknown() {
			return false
		}
	}
	for _, v := range m.BootOrder.Elements() {
		if v.IsUnknown() {
			return false
		}
	}
	return true
}

func strList(ctx context.Context, v basetypes.ListValue, diags *diag.Diagnostics) []string {
	if v.IsNull() || v.IsUnknown() {
		return nil
	}
	out := []string{}
	diags.Append(v.ElementsAs(ctx, &out, false)...)
	return out
}

func (m vmModel) spec(ctx context.Context, diags *diag.Diagnostics) engine.VMSpec {
	s := engine.VMSpec{
		Cluster: m.ClusterID.ValueString(), Volume: m.VolumeID.ValueString(), Name: m.Name.ValueString(),
		MemoryMB: m.MemoryMB.ValueInt64(), ProcessorCount: int(m.ProcessorCount.ValueInt64()),
		OwnerNode: optString(m.OwnerNode), PreferredOwners: strList(ctx, m.PreferredOwners, diags),
		AntiAffinityClass: optString(m.AntiAffinityClass), AntiAffinityMode: m.AntiAffinityMode.ValueString(),
		Migration: m.Migration.ValueString(), State: m.State.ValueString(), AllowRestart: m.AllowRestart.ValueBool(),
		MaxFailures: int(m.MaxFailures.ValueInt64()), FailurePeriodHours: int(m.FailurePeriodHours.ValueInt64()),
	}
	if !m.PossibleOwners.IsNull() && !m.PossibleOwners.IsUnknown() {
		s.PossibleOwners = []string{}
		diags.Append(m.PossibleOwners.ElementsAs(ctx, &s.PossibleOwners, false)...)
	}
	if a := m.VHD.Attributes(); !m.VHD.IsNull() && !m.VHD.IsUnknown() {
		s.VHD.SizeGiB = a["size_gib"].(types.Int64).ValueInt64()
		s.VHD.Type = a["type"].(types.String).ValueString()
	}
	m.diskSpec(ctx, &s, diags) // virtual_machine_disks.go
	for _, v := range m.NetworkAdapters.Elements() {
		if o, ok := v.(types.Object); ok {
			s.Adapters = append(s.Adapters, engine.VMAdapter{Switch: o.Attributes()["switch"].(types.String).ValueString()})
		}
	}
	s.Failback.Mode = engine.FailbackPrevent
	if a := m.Failback.Attributes(); !m.Failback.IsNull() && !m.Failback.IsUnknown() {
		s.Failback.Mode = a["mode"].(types.String).ValueString()
		s.Failback.WindowStartHour = int(a["window_start_hour"].(types.Int64).ValueInt64())
		s.Failback.WindowEndHour = int(a["window_end_hour"].(types.Int64).ValueInt64())
	}
	return s
}

// adaptersValue is the network_adapters list; ips[i] is adapter i's
// ip_addresses (a missing one: unknown, decided at apply).
func adaptersValue(cluster, name string, switches []string, ips []attr.Value, null bool) types.List {
	if null {
		return types.ListNull(vmAdapterObjType)
	}
	elems := make([]attr.Value, len(switches))
	for i, sw := range switches {
		ip := attr.Value(types.ListUnknown(types.StringType))
		if i < len(ips) && ips[i] != nil {
			ip = ips[i]
		}
		elems[i] = types.ObjectValueMust(vmAdapterAttrTypes, map[string]attr.Value{
			"switch": types.StringValue(sw), "mac_address": types.StringValue(engine.MACAddress(cluster, name, i)), "ip_addresses": ip})
	}
	return types.ListValueMust(vmAdapterObjType, elems)
}

// adapterIPs are a VM's guest addresses by adapter (addrs, from
// engine.GuestAddresses: virtual_machine_guest_net.go), without prefix
// length.
func adapterIPs(vm engine.VM, addrs []string) []attr.Value {
	out := make([]attr.Value, len(vm.Adapters))
	for i := range vm.Adapters {
		ips := []attr.Value{}
		if i < len(addrs) && addrs[i] != "" {
			ips = append(ips, types.StringValue(strings.Split(addrs[i], "/")[0]))
		}
		out[i] = types.ListValueMust(types.StringType, ips)
	}
	return out
}

func strListValue(xs []string, null bool) types.List {
	if null && len(xs) == 0 {
		return types.ListNull(types.StringType)
	}
	v, _ := types.ListValueFrom(context.Background(), types.StringType, xs)
	return v
}

func optInt64(v int, null bool) types.Int64 {
	if null && v == 0 {
		return types.Int64Null()
	}
	return types.Int64Value(int64(v))
}

// vmToModel converts vm; prior (the plan or prior state) says which
// optional values the configuration leaves null.
func vmToModel(vm engine.VM, prior vmModel) vmModel {
	m := vmModel{
		ID: types.StringValue(vm.ID()), ClusterID: types.StringValue(vm.Cluster), VolumeID: types.StringValue(vm.Volume),
		Name: types.StringValue(vm.Name), MemoryMB: types.Int64Value(vm.MemoryMB), ProcessorCount: types.Int64Value(int64(vm.ProcessorCount)),
		OwnerNode: nullIfEmpty(vm.OwnerNode), AntiAffinityClass: nullIfEmpty(vm.AntiAffinityClass),
		AntiAffinityMode: types.StringValue(vm.AntiAffinityMode), Migration: types.StringValue(vm.Migration),
		State: types.StringValue(vm.State), AllowRestart: types.BoolValue(vm.AllowRestart),
		MaxFailures: types.Int64Value(int64(vm.MaxFailures)), FailurePeriodHours: types.Int64Value(int64(vm.FailurePeriodHours)),
		CurrentNode: types.StringValue(vm.Node), Status: types.StringValue(vm.Status), StatusReason: types.StringValue(vm.StatusReason),
		VHDPath: types.StringValue(vm.VHDPath), ConfigPath: types.StringValue(vm.ConfigPath), Timeouts: prior.Timeouts,
	}
	disksToModel(vm, prior, &m) // virtual_machine_disks.go
	switches := make([]string, len(vm.Adapters))
	for i, a := range vm.Adapters {
		switches[i] = a.Switch
	}
	m.NetworkAdapters = adaptersValue(vm.Cluster, vm.Name, switches, adapterIPs(vm, nil), prior.NetworkAdapters.IsNull() && len(switches) == 0)
	m.PreferredOwners = strListValue(vm.PreferredOwners, prior.PreferredOwners.IsNull())
	if vm.PossibleOwners == nil {
		m.PossibleOwners = types.SetNull(types.StringType)
	} else {
		m.PossibleOwners, _ = types.SetValueFrom(context.Background(), types.StringType, vm.PossibleOwners)
	}
	fb := prior.Failback.Attributes()
	startNull, endNull := true, true
	if !prior.Failback.IsNull() && !prior.Failback.IsUnknown() {
		startNull, endNull = fb["window_start_hour"].IsNull(), fb["window_end_hour"].IsNull()
	}
	m.Failback = types.ObjectValueMust(failbackAttrTypes, map[string]attr.Value{"mode": types.StringValue(vm.Failback.Mode),
		"window_start_hour": optInt64(vm.Failback.WindowStartHour, startNull), "window_end_hour": optInt64(vm.Failback.WindowEndHour, endNull)})
	m.LastMigration = lastMigrationValue(vm.LastMigration)
	// A VM found stopped (lost quorum, a crash) or failed reads as off, so
	// the plan starts it again.
	if vm.Pending == nil && vm.State == engine.VMRunning && (vm.Status == engine.VMOff || vm.Status == engine.StatusFailed) {
		m.State = types.StringValue(engine.VMOff)
	}
	return m
}

// vmNameValidator applies the engine's VM name rule when the configuration
// is validated: the rule depends on nothing else, so a bad name fails the
// plan even while volume_id is unknown, before anything is created.
type vmNameValidator struct{}

func (vmNameValidator) Description(context.Context) string {
	return "1–64 letters, digits, '-', '_' and '.', starting with a letter or digit, no \"..\", not a Windows device name"
}
func (v vmNameValidator) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (vmNameValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if err := engine.CheckVMName(req.ConfigValue.ValueString()); err != nil {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid VM name", err.Error())
	}
}

// vmDiags turns an engine error into diagnostics naming the attribute.
func vmDiags(summary string, err error) diag.Diagnostics {
	var ql *engine.QuorumLostError
	if errors.As(err, &ql) {
		var d diag.Diagnostics
		d.AddAttributeError(path.Root("cluster_id"), summary, "cluster_id: "+err.Error())
		return d
	}
	return engineDiags(summary, err)
}

func (r *vmResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() || r.engine == nil {
		return
	}
	var plan, state vmModel
	resp.Diagnostics.Append(getPlan(ctx, req.Plan, &plan)...)
	hasState := !req.State.Raw.IsNull()
	if hasState {
		resp.Diagnostics.Append(getState(ctx, req.State, &state)...)
	}
	if resp.Diagnostics.HasError() {
		return
	}
	asked := plan
	// setPlan writes the plan back only when it changed: the framework
	// converts the whole object on every Set.
	setPlan := func() {
		if !sameModel(plan, asked) {
			resp.Diagnostics.Append(setPlanModel(ctx, &resp.Plan, plan)...)
		}
	}
	// MACs are derived from cluster, name and position: known now.
	if !plan.ClusterID.IsUnknown() && !plan.Name.IsUnknown() && !plan.NetworkAdapters.IsUnknown() && !plan.NetworkAdapters.IsNull() {
		var switches []string
		ok := true
		for _, v := range plan.NetworkAdapters.Elements() {
			sw := v.(types.Object).Attributes()["switch"]
			if sw.IsUnknown() {
				ok = false
				break
			}
			switches = append(switches, sw.(types.String).ValueString())
		}
		if ok {
			// The guest's addresses are known after apply, but for an
			// adapter that stays on its switch of a VM that runs and keeps
			// running, while apply waits for them (wait_for_ip): they are
			// its reserved address (virtual_machine_guest_net.go).
			ips := make([]attr.Value, len(switches))
			for i, v := range plan.NetworkAdapters.Elements() {
				// Known here only when nothing changes (the framework marks
				// computed values unknown on a change): stays.
				if ip := v.(types.Object).Attributes()["ip_addresses"]; !ip.IsUnknown() && !ip.IsNull() {
					ips[i] = ip
				}
			}
			if hasState && plan.ClusterID.Equal(state.ClusterID) && plan.Name.Equal(state.Name) && !state.NetworkAdapters.IsNull() &&
				state.State.ValueString() == engine.VMRunning && plan.State.ValueString() == engine.VMRunning &&
				state.Status.ValueString() == engine.VMRunning && waitForIP(plan) > 0 {
				for i, v := range state.NetworkAdapters.Elements() {
					o := v.(types.Object).Attributes()
					if l, ok := o["ip_addresses"].(types.List); i < len(ips) && ips[i] == nil && o["switch"].Equal(types.StringValue(switches[i])) && ok &&
						!l.IsNull() && !l.IsUnknown() && len(l.Elements()) > 0 {
						ips[i] = l
					}
				}
			}
			plan.NetworkAdapters = adaptersValue(plan.ClusterID.ValueString(), plan.Name.ValueString(), switches, ips, false)
		}
	}
	if plan.MaxFailures.IsUnknown() && hasState && !state.MaxFailures.IsNull() {
		plan.MaxFailures = state.MaxFailures
	}
	// A VM keeps its paths (its name does not change in place) but for a
	// change of its volume's drive letter, which another resource makes,
	// maybe in this apply: the plan holds the prior paths, apply keeps them
	// (plannedPaths) and the next refresh reads the new ones.
	if hasState && plan.VHDPath.IsUnknown() {
		plan.VHDPath, plan.ConfigPath = state.VHDPath, state.ConfigPath
	}
	if !plan.known() {
		setPlan()
		return // judged at apply
	}
	if hasState && diskReplaced(plan, state) {
		// A new disk from another template is another VM: the framework
		// replaces it (vhd.source, vhd.clone: RequiresReplace), and the
		// new one is judged as a creation at apply.
		setPlan()
		return
	}
	s := plan.spec(ctx, &resp.Diagnostics)
	if plan.MaxFailures.IsUnknown() {
		s.MaxFailures = 1 // placement does not depend on it; set below
	}
	ctx, w := withWaitRecorder(ctx)
	p, err := r.engine.PlanVM(ctx, s)
	w.report(&resp.Diagnostics, "Planning VM "+s.Name)
	if err != nil {
		resp.Diagnostics.Append(vmDiags("VM "+s.Name+" cannot be placed as configured", err)...)
		return
	}
	for _, w := range p.Warnings {
		resp.Diagnostics.AddAttributeWarning(path.Root("vhd"), "VM "+s.Name+": a file it names is not on the volume yet", w)
	}
	if p.Judged {
		if plan.MaxFailures.IsUnknown() { // as in Windows: nodes − 1
			plan.MaxFailures = types.Int64Value(int64(max(p.ClusterNodes-1, 0)))
		}
		if !hasState && p.Paths.VHD != "" {
			plan.VHDPath, plan.ConfigPath = types.StringValue(p.Paths.VHD), types.StringValue(p.Paths.Config)
		}
		if p.Move {
			detail := fmt.Sprintf("%s migration of VM %s from %s to %s.", p.Type, s.Name, p.From, p.To)
			if p.Why != "" {
				detail += " Not live: " + p.Why + "."
			}
			resp.Diagnostics.AddWarning(p.Summary, detail)
		}
		if p.Stay && hasState {
			resp.Diagnostics.AddWarning(fmt.Sprintf("%s stays on %s, away from its owner_node %s", s.Name, state.CurrentNode.ValueString(), s.OwnerNode),
				fmt.Sprintf("owner_node %s cannot take VM %s now (%s). The VM stays where it is and moves back once %s can run it.",
					s.OwnerNode, s.Name, p.StayReason, s.OwnerNode))
		}
		// Moved since the prior state was read: this plan is made at
		// apply, after a drain, the leader or another run moved it.
		moved := hasState && p.Current != nil && (state.CurrentNode.ValueString() != p.Current.Node ||
			!state.LastMigration.Equal(lastMigrationValue(p.Current.LastMigration)))
		switch {
		case p.Pinned && p.Node != "":
			plan.CurrentNode = types.StringValue(p.Node)
		case hasState && !p.Changed && !p.Move && p.Current != nil:
			plan.CurrentNode = types.StringValue(p.Current.Node)
		case hasState && !p.Changed && !p.Move:
			plan.CurrentNode = state.CurrentNode
		default:
			plan.CurrentNode = types.StringUnknown()
		}
		if p.Move || moved {
			plan.Status, plan.StatusReason, plan.LastMigration = types.StringUnknown(), types.StringUnknown(), types.ObjectUnknown(migrationAttrTypes)
		}
	}
	setPlan()
}

// lastMigrationValue is last_migration's value of a VM's record.
func lastMigrationValue(lm *engine.MigrationRecord) types.Object {
	if lm == nil {
		return types.ObjectNull(migrationAttrTypes)
	}
	return types.ObjectValueMust(migrationAttrTypes, map[string]attr.Value{"type": types.StringValue(lm.Type),
		"from": types.StringValue(lm.From), "to": types.StringValue(lm.To),
		"duration_ms": types.Int64Value(lm.DurationMs), "downtime_ms": types.Int64Value(lm.DowntimeMs)})
}

// sameModel reports whether two models of one resource hold equal values
// in every field (each field an attr.Value).
func sameModel[M any](a, b M) bool {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	for i := range va.NumField() {
		x, ok := va.Field(i).Interface().(attr.Value)
		y, ok2 := vb.Field(i).Interface().(attr.Value)
		if !ok || !ok2 || !x.Equal(y) {
			return false
		}
	}
	return true
}

func progressLogger(ctx context.Context) context.Context {
	return engine.WithProgress(ctx, func(vm string, p hypervisor.Progress) {
		tflog.Info(ctx, fmt.Sprintf("VM %s: %s round %d, %d%%", vm, p.Phase, p.Round, p.Percent),
			map[string]any{"vm": vm, "phase": p.Phase, "round": p.Round, "percent": p.Percent, "remaining_mb": p.RemainingMB})
	})
}

func (r *vmResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var m vmModel
	resp.Diagnostics.Append(getPlan(ctx, req.Plan, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, d := m.Timeouts.Create(ctx, 20*time.Minute)
	resp.Diagnostics.Append(d...)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s := m.spec(ctx, &resp.Diagnostics)
	if m.MaxFailures.IsUnknown() {
		c, err := r.engine.GetCluster(ctx, s.Cluster)
		if err != nil {
			resp.Diagnostics.Append(vmDiags("Cannot create VM "+s.Name, err)...)
			return
		}
		s.MaxFailures = max(len(c.Nodes)-1, 0)
	}
	ctx, w := withWaitRecorder(ctx)
	vm, err := r.engine.CreateVM(progressLogger(ctx), s)
	w.report(&resp.Diagnostics, "Creating VM "+s.Name)
	if err != nil {
		resp.Diagnostics.Append(vmDiags("Cannot create VM "+s.Name, asExisting(err, orphans.TypeVM, s.Cluster+"/"+s.Name))...)
		return
	}
	tflog.Info(ctx, "VM created", map[string]any{"vm": vm.Name, "node": vm.Node, "vhd": vm.VHDPath})
	next := waitGuestNet(ctx, r.engine, vm, vmToModel(vm, m), m, &resp.Diagnostics)
	resp.Diagnostics.Append(setStateModel(ctx, &resp.State, plannedPaths(next, m, &resp.Diagnostics))...)
}

func (r *vmResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var m vmModel
	resp.Diagnostics.Append(getState(ctx, req.State, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	cluster, name := m.ClusterID.ValueString(), m.Name.ValueString()
	if cluster == "" || name == "" {
		cluster, name, _ = strings.Cut(m.ID.ValueString(), "/")
	}
	ctx, w := withWaitRecorder(ctx)
	vm, err := r.engine.RefreshVM(progressLogger(ctx), cluster, name)
	w.report(&resp.Diagnostics, "Reading VM "+name)
	if errors.Is(err, engine.ErrNotFound) {
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		resp.Diagnostics.Append(vmDiags("Cannot read VM "+name, err)...)
		return
	}
	// resp.State holds the prior state: write only what changed.
	if next := withGuestNet(ctx, r.engine, vm, vmToModel(vm, m), &resp.Diagnostics); !sameModel(next, m) {
		resp.Diagnostics.Append(setStateModel(ctx, &resp.State, next)...)
	}
}

func (r *vmResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var m vmModel
	resp.Diagnostics.Append(getPlan(ctx, req.Plan, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, d := m.Timeouts.Update(ctx, 20*time.Minute)
	resp.Diagnostics.Append(d...)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s := m.spec(ctx, &resp.Diagnostics)
	ctx, w := withWaitRecorder(ctx)
	vm, err := r.engine.UpdateVM(progressLogger(ctx), s)
	w.report(&resp.Diagnostics, "Changing VM "+s.Name)
	if err != nil {
		resp.Diagnostics.Append(vmDiags("Cannot change VM "+s.Name, err)...)
		return
	}
	if lm := vm.LastMigration; lm != nil && lm.Token == vm.Token && lm.To == vm.Node {
		tflog.Info(ctx, fmt.Sprintf("VM %s: %s migration from %s to %s in %d ms, %d ms downtime", vm.Name, lm.Type, lm.From, lm.To,
			lm.DurationMs, lm.DowntimeMs))
	}
	next := waitGuestNet(ctx, r.engine, vm, vmToModel(vm, m), m, &resp.Diagnostics)
	resp.Diagnostics.Append(setStateModel(ctx, &resp.State, plannedPaths(next, m, &resp.Diagnostics))...)
}

// plannedPaths keeps the paths the plan promised when the volume's drive
// letter changed after the plan read them (in this apply, or since the
// last refresh): apply must return what it planned, and the next refresh
// reads the paths at the new letter.
func plannedPaths(next, plan vmModel, diags *diag.Diagnostics) vmModel {
	if plan.VHDPath.IsUnknown() || plan.VHDPath.IsNull() || next.VHDPath.Equal(plan.VHDPath) {
		return next
	}
	diags.AddWarning(fmt.Sprintf("VM %s: its volume's drive letter changed", next.Name.ValueString()),
		fmt.Sprintf("The plan showed vhd_path %s; the VM's files are now at %s. The next refresh records the new paths "+
			"(nothing to apply).", plan.VHDPath.ValueString(), next.VHDPath.ValueString()))
	next.VHDPath, next.ConfigPath = plan.VHDPath, plan.ConfigPath
	return next
}

func (r *vmResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var m vmModel
	resp.Diagnostics.Append(getState(ctx, req.State, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, d := m.Timeouts.Delete(ctx, 20*time.Minute)
	resp.Diagnostics.Append(d...)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ctx, w := withWaitRecorder(ctx)
	ctx, notes := engine.WithNotes(ctx)
	err := r.engine.DeleteVM(ctx, m.ClusterID.ValueString(), m.Name.ValueString())
	w.report(&resp.Diagnostics, "Deleting VM "+m.Name.ValueString())
	reportNotes(&resp.Diagnostics, notes)
	if err != nil {
		resp.Diagnostics.Append(vmDiags("Cannot delete VM "+m.Name.ValueString(), err)...)
	}
}

// ImportState takes cluster/name.
func (r *vmResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	cluster, name, ok := strings.Cut(req.ID, "/")
	if !ok || cluster == "" || name == "" || strings.Contains(name, "/") {
		resp.Diagnostics.AddError("Invalid import ID",
			fmt.Sprintf("%q is not a VM import ID; allowed: CLUSTER/NAME, e.g. HVCLUSTER/WEB01", req.ID))
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), req.ID)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("cluster_id"), cluster)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("name"), name)...)
}
