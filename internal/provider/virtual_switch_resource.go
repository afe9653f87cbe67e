package provider

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
)

var (
	_ resource.ResourceWithConfigure      = (*switchResource)(nil)
	_ resource.ResourceWithImportState    = (*switchResource)(nil)
	_ resource.ResourceWithModifyPlan     = (*switchResource)(nil)
	_ resource.ResourceWithValidateConfig = (*switchResource)(nil)
)

// NewVirtualSwitchResource is the kayo_virtual_switch resource.
func NewVirtualSwitchResource() resource.Resource { return &switchResource{} }

type switchResource struct{ engine *engine.Engine }

type switchModel struct {
	ID           types.String `tfsdk:"id"`
	ClusterID    types.String `tfsdk:"cluster_id"`
	Name         types.String `tfsdk:"name"`
	Type         types.String `tfsdk:"type"`
	Adapter      types.String `tfsdk:"adapter"`
	NodeAdapters types.Map    `tfsdk:"node_adapters"`
	Subnet       types.String `tfsdk:"subnet"`
	Bridge       types.String `tfsdk:"bridge"`
}

func (r *switchResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_virtual_switch"
}

func (r *switchResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	replace := []planmodifier.String{stringplanmodifier.RequiresReplace()}
	resp.Schema = schema.Schema{
		MarkdownDescription: "A Hyper-V virtual network (virtual switch) present on every node of a cluster; " +
			"`kayo_virtual_machine` adapters name it in `network_adapters[*].switch`. `external` switches bind on each " +
			"node to a host network adapter and connect the nodes' VMs over that network; `internal` and `private` " +
			"switches stay inside each node (`internal`: VMs and the host; `private`: VMs only).\n\n" +
			"On a `qemu` cluster each node's agent makes the switch a Linux bridge (an external switch enslaves the " +
			"bound adapter, moving its addresses to the bridge) and each VM adapter a tap on it with the adapter's MAC. " +
			"The adapter is checked at plan time against each node's declared `network_adapters` and the interfaces its " +
			"agent reports. A switch that VMs use cannot be destroyed.\n\n" +
			"Once a cluster has a switch (and always on a `qemu` cluster), every new VM adapter must name one: by `name`, " +
			"or by `id` when the switch is created in the same apply (the id is unknown until then, so the check waits " +
			"for apply).",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{Computed: true, MarkdownDescription: "`cluster/name`: the import ID.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()}},
			"cluster_id": schema.StringAttribute{Required: true, PlanModifiers: replace,
				MarkdownDescription: "The cluster (`kayo_cluster.*.id`). Changing it replaces the switch."},
			"name": schema.StringAttribute{Required: true, PlanModifiers: replace,
				MarkdownDescription: fmt.Sprintf("The switch name, as VM adapters name it (1–%d characters, no `/` or `\\`). "+
					"Changing it replaces the switch.", engine.MaxSwitchNameLen)},
			"type": schema.StringAttribute{Required: true, PlanModifiers: replace,
				Validators:          []validator.String{stringvalidator.OneOf(engine.SwitchExternal, engine.SwitchInternal, engine.SwitchPrivate)},
				MarkdownDescription: "`external`, `internal` or `private` (Hyper-V's kinds). Changing it replaces the switch."},
			"adapter": schema.StringAttribute{Optional: true,
				MarkdownDescription: "External switches only: the host network adapter the switch binds on every node — a " +
					"declared adapter's `name` (the node's interface holding its address) or an interface name the node's " +
					"agent reports. Changing it rebinds in place."},
			"node_adapters": schema.MapAttribute{Optional: true, ElementType: types.StringType,
				MarkdownDescription: "External switches only: node name → adapter, for nodes whose adapter differs from " +
					"`adapter`."},
			"subnet": schema.StringAttribute{Optional: true, PlanModifiers: replace,
				MarkdownDescription: "An IPv4 network (CIDR, /8 to /29) for the guests: each VM adapter added on the switch gets " +
					"the lowest free address of it (not the network's first host address, by custom a router's, nor a host's " +
					"declared address or the cluster's static address), reserved for the adapter's life, moves included. On a `qemu` " +
					"cluster each node's agent serves DHCP on the switch's bridge, answering only the MACs of the VM adapters it " +
					"runs, each with its reserved address; the adapter's `ip_addresses` show it once the guest took it. A switch " +
					"without a subnet has no DHCP. Changing it replaces the switch."},
			"bridge": schema.StringAttribute{Computed: true, PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
				MarkdownDescription: "The Linux bridge each node's agent makes for the switch (on a `qemu` cluster)."},
		},
	}
}

func (r *switchResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.engine = engineFrom(req.ProviderData, &resp.Diagnostics)
}

func (m switchModel) known() bool {
	if m.ClusterID.IsUnknown() || m.Name.IsUnknown() || m.Type.IsUnknown() || m.Adapter.IsUnknown() || m.NodeAdapters.IsUnknown() ||
		m.Subnet.IsUnknown() {
		return false
	}
	for _, v := range m.NodeAdapters.Elements() {
		if v.IsUnknown() {
			return false
		}
	}
	return true
}

func (m switchModel) spec() engine.SwitchSpec {
	s := engine.SwitchSpec{Cluster: m.ClusterID.ValueString(), Name: m.Name.ValueString(), Type: m.Type.ValueString(),
		Adapter: optString(m.Adapter), Subnet: optString(m.Subnet)}
	if !m.NodeAdapters.IsNull() && !m.NodeAdapters.IsUnknown() {
		s.NodeAdapters = map[string]string{}
		for n, v := range m.NodeAdapters.Elements() {
			if sv, ok := v.(types.String); ok {
				s.NodeAdapters[n] = sv.ValueString()
			}
		}
	}
	return s
}

func switchToModel(sw engine.Switch) switchModel {
	m := switchModel{ID: types.StringValue(sw.ID()), ClusterID: types.StringValue(sw.Cluster), Name: types.StringValue(sw.Name),
		Type: types.StringValue(sw.Type), Adapter: nullIfEmpty(sw.Adapter), NodeAdapters: types.MapNull(types.StringType),
		Subnet: nullIfEmpty(sw.Subnet),
		Bridge: types.StringValue(engine.BridgeName(sw.Cluster, sw.Name))}
	if len(sw.NodeAdapters) > 0 {
		m.NodeAdapters, _ = types.MapValueFrom(context.Background(), types.StringType, sw.NodeAdapters)
	}
	return m
}

// ValidateConfig judges the switch from its configuration alone.
func (r *switchResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var m switchModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() || !m.known() {
		return
	}
	s := m.spec()
	if s.Cluster == "" {
		s.Cluster = "-" // judged with the cluster later
	}
	if err := engine.CheckSwitchSpec(s); err != nil {
		resp.Diagnostics.Append(engineDiags("Invalid virtual switch", err)...)
	}
}

// ModifyPlan judges the adapter binding against the committed cluster.
func (r *switchResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() || r.engine == nil {
		return
	}
	var plan switchModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() || !plan.known() {
		return
	}
	if !req.State.Raw.IsNull() {
		var state switchModel
		resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
		if plan.Adapter.Equal(state.Adapter) && plan.NodeAdapters.Equal(state.NodeAdapters) && plan.Type.Equal(state.Type) &&
			plan.Name.Equal(state.Name) && plan.ClusterID.Equal(state.ClusterID) {
			return // nothing changes
		}
	}
	s := plan.spec()
	ctx, w := withWaitRecorder(ctx)
	_, err := r.engine.PlanSwitch(ctx, s)
	w.report(&resp.Diagnostics, "Planning virtual switch "+s.Name)
	if err != nil {
		resp.Diagnostics.Append(engineDiags("Virtual switch "+s.Name+" cannot be made as configured", err)...)
		return
	}
	// The bridge name is known now; the id stays unknown while the switch
	// is created, so a VM naming it by id is judged at apply, after it.
	if plan.Bridge.IsUnknown() {
		plan.Bridge = types.StringValue(engine.BridgeName(s.Cluster, s.Name))
		resp.Diagnostics.Append(resp.Plan.Set(ctx, plan)...)
	}
}

func (r *switchResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var m switchModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	s := m.spec()
	sw, err := engineCall(ctx, &resp.Diagnostics, "Creating virtual switch "+s.Name, "Cannot create virtual switch "+s.Name,
		func(ctx context.Context) (engine.Switch, error) { return r.engine.CreateSwitch(ctx, s) })
	if err != nil {
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, switchToModel(sw))...)
}

func (r *switchResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var m switchModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	cluster, name, ok := strings.Cut(m.ID.ValueString(), "/")
	if !ok {
		resp.Diagnostics.AddAttributeError(path.Root("id"), "Invalid virtual switch id",
			fmt.Sprintf("id: %q is not cluster/name", m.ID.ValueString()))
		return
	}
	sw, err := engineCall(ctx, &resp.Diagnostics, "Reading virtual switch "+name, "Cannot read virtual switch "+name,
		func(ctx context.Context) (engine.Switch, error) { return r.engine.GetSwitch(ctx, cluster, name) }, engine.ErrNotFound)
	if errors.Is(err, engine.ErrNotFound) {
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, switchToModel(sw))...)
}

func (r *switchResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var m switchModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	s := m.spec()
	sw, err := engineCall(ctx, &resp.Diagnostics, "Changing virtual switch "+s.Name, "Cannot change virtual switch "+s.Name,
		func(ctx context.Context) (engine.Switch, error) { return r.engine.UpdateSwitch(ctx, s) })
	if err != nil {
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, switchToModel(sw))...)
}

func (r *switchResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var m switchModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	cluster, name := m.ClusterID.ValueString(), m.Name.ValueString()
	_, _ = engineCall(ctx, &resp.Diagnostics, "Deleting virtual switch "+name, "Cannot delete virtual switch "+name,
		noValue(func(ctx context.Context) error { return r.engine.DeleteSwitch(ctx, cluster, name) }), engine.ErrNotFound)
}

// ImportState takes cluster/name.
func (r *switchResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	cluster, name, ok := strings.Cut(req.ID, "/")
	if !ok || cluster == "" || name == "" {
		resp.Diagnostics.AddError("Invalid import ID", fmt.Sprintf("%q: a virtual switch is imported as cluster/name, e.g. HVCLUSTER/Public", req.ID))
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), req.ID)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("cluster_id"), cluster)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("name"), name)...)
}
