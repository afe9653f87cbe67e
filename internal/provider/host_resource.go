package provider

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/setdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/orphans"
)

var (
	_ resource.ResourceWithConfigure      = (*hostResource)(nil)
	_ resource.ResourceWithImportState    = (*hostResource)(nil)
	_ resource.ResourceWithValidateConfig = (*hostResource)(nil)
	_ resource.ResourceWithModifyPlan     = (*hostResource)(nil)
)

// NewHostResource is the kayo_host resource.
func NewHostResource() resource.Resource { return &hostResource{} }

type hostResource struct{ engine *engine.Engine }

type hostModel struct {
	ID              types.String `tfsdk:"id"`
	Name            types.String `tfsdk:"name"`
	Address         types.String `tfsdk:"address"`
	OSEdition       types.String `tfsdk:"os_edition"`
	ProcessorVendor types.String `tfsdk:"processor_vendor"`
	ProcessorModel  types.String `tfsdk:"processor_model"`
	ProcessorCores  types.Int64  `tfsdk:"processor_cores"`
	MemoryMB        types.Int64  `tfsdk:"memory_mb"`
	Features        types.Set    `tfsdk:"features"`
	NetworkAdapters types.List   `tfsdk:"network_adapters"`
	Maintenance     types.Bool   `tfsdk:"maintenance"`
	State           types.String `tfsdk:"state"`
	Reported        types.Object `tfsdk:"reported"`
}

type adapterModel struct {
	Name    types.String `tfsdk:"name"`
	Network types.String `tfsdk:"network"`
	Address types.String `tfsdk:"address"`
}

var adapterAttrTypes = map[string]attr.Type{
	"name":    types.StringType,
	"network": types.StringType,
	"address": types.StringType,
}

func (r *hostResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_host"
}

func (r *hostResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "A physical server registered with the cluster manager: the Windows Server host that " +
			"will run Hyper-V and Failover Clustering. Its hardware facts (processor, cores, memory, network adapters) are declared, or " +
			"left out and taken from the report of the host's node agent (the embedded lab has no hardware to " +
			"discover, so there they are declared). Whether it can join a cluster (edition, features, adapters) is judged by " +
			"`kayo_cluster` validation, so a host valid on its own registers even if it cannot be a node yet.\n\n" +
			"Destroying a host that is still a node of a cluster evicts it first, exactly as removing it from the " +
			"cluster's `nodes` does (validation of the remaining nodes, quorum check, drain of its VMs, removal from the " +
			"node list, volume mounts released), so dropping a host from a `for_each` that also feeds " +
			"`kayo_cluster.nodes` works in one apply; the cluster's update then has nothing left to do. The plan warns " +
			"for each such host (\"Destroying host HV-05 evicts it from cluster QCLUSTER\") with the VMs that move and " +
			"the quorum after, or says why the eviction will be refused (quorum, a VM that fits nowhere, the last " +
			"node); a refused eviction stops the apply at that host with nothing changed. When the whole cluster is " +
			"destroyed in the same apply it goes before its hosts and nothing is evicted. A cluster whose configuration " +
			"still lists a destroyed host (a literal name) shows the cluster adding it back in the next plan, and that " +
			"apply fails naming the unregistered host: remove it from `nodes`.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: "The host name.",
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"name": schema.StringAttribute{
				Required: true,
				MarkdownDescription: "Computer name (1–63 letters, digits and hyphens), e.g. `Y-21-2k8x64`. " +
					"Changing it replaces the host.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"address": schema.StringAttribute{
				Required:            true,
				MarkdownDescription: "The host's management IP address.",
			},
			"os_edition": schema.StringAttribute{
				Required: true,
				MarkdownDescription: "Windows Server 2008 edition: `standard`, `enterprise` or `datacenter`. " +
					"Failover clustering needs `enterprise` or `datacenter`.",
				Validators: []validator.String{stringvalidator.OneOf(engine.OSEditions...)},
			},
			"processor_vendor": schema.StringAttribute{
				Optional: true,
				Computed: true,
				MarkdownDescription: "`intel` or `amd`. Live migration needs the same vendor on both ends; " +
					"otherwise the engine quick-migrates." + fromAgentNote,
				Validators: []validator.String{stringvalidator.OneOf(engine.ProcessorVendors...)},
			},
			"processor_model": schema.StringAttribute{
				Optional:            true,
				Computed:            true,
				MarkdownDescription: "Processor model, e.g. `Xeon E5440`." + fromAgentNote,
				Validators:          []validator.String{stringvalidator.LengthBetween(1, 128)},
			},
			"processor_cores": schema.Int64Attribute{
				Optional:            true,
				Computed:            true,
				MarkdownDescription: "Processor cores, 1–1024." + fromAgentNote,
				Validators:          []validator.Int64{int64validator.Between(1, 1024)},
			},
			"memory_mb": schema.Int64Attribute{
				Optional:            true,
				Computed:            true,
				MarkdownDescription: "Physical memory in MiB (at least 512)." + fromAgentNote,
				Validators:          []validator.Int64{int64validator.Between(512, 64<<20)},
			},
			"features": schema.SetAttribute{
				ElementType: types.StringType,
				Optional:    true,
				Computed:    true,
				Default:     setdefault.StaticValue(types.SetValueMust(types.StringType, nil)),
				MarkdownDescription: "Installed Windows features. A cluster node needs `Hyper-V` and " +
					"`Failover-Clustering`. Default: none.",
			},
			"network_adapters": schema.ListNestedAttribute{
				Optional: true,
				Computed: true,
				MarkdownDescription: "Network adapters. A cluster node needs at least two (e.g. a public and a " +
					"heartbeat network), in the same networks as the other nodes. Left out, the host's adapters are the " +
					"network interfaces its node agent reports (`reported.network_adapters`): one per interface with a " +
					"usable address (not loopback, link-local or multicast), named as the interface, in its address's " +
					"subnet (of several addresses, the one in a network of the cluster's other nodes, else the first IPv4). " +
					"Declared, each adapter is held to the report at validation: the agent must report an interface with " +
					"the adapter's address in its network, or \"Compare Declared and Reported Inventory\" fails naming the " +
					"host, the adapter and both values. Left out with no agent report, the plan fails naming this attribute.",
				Validators: []validator.List{listvalidator.SizeAtLeast(1)},
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"name": schema.StringAttribute{
						Required:            true,
						MarkdownDescription: "Adapter name, e.g. `Public`, unique within the host.",
					},
					"network": schema.StringAttribute{
						Required:            true,
						MarkdownDescription: "The network the adapter is in, in CIDR form, e.g. `192.0.2.0/24`.",
					},
					"address": schema.StringAttribute{
						Required:            true,
						MarkdownDescription: "The adapter's IP address, inside `network`.",
					},
				}},
			},
			"maintenance": schema.BoolAttribute{
				Optional: true,
				Computed: true,
				Default:  booldefault.StaticBool(false),
				MarkdownDescription: "Put the host in maintenance: apply drains it — every virtual machine it runs " +
					"moves to another node (live migration when the VM runs and both nodes have the same processor " +
					"vendor, else quick migration; an `off` VM just changes owner), placed as a failover would place " +
					"it — and new placements keep off it. The plan warns once per VM that moves (\"WEB01 will be " +
					"live-migrated from Y-21-2k8x64 to Y-22-2k8x64 (maintenance)\"), and fails, naming the VMs and " +
					"why, when one of them fits on no other node. Unpinned VMs that moved produce no diff; a VM " +
					"pinned here (`owner_node`) stays away with a plan warning and moves back in the first plan after " +
					"maintenance ends (or, per its `failback` policy, by the leader agent). Default `false`.",
			},
			"state": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: "`up`, `down` or `maintenance`.",
			},
			"reported": reportedSchema(),
		},
	}
}

func (r *hostResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.engine = engineFrom(req.ProviderData, &resp.Diagnostics)
}

// spec converts a fully known model; ok is false when a value is unknown.
// The hardware facts cfg (the configuration) leaves out are the agent's
// (HostSpec.FromAgent; host_facts.go); cfg nil: m is the configuration.
func (m hostModel) spec(ctx context.Context, diags *diag.Diagnostics, cfg *hostModel) (engine.HostSpec, bool) {
	if cfg == nil {
		cfg = &m
	}
	for _, v := range []attr.Value{m.Name, m.Address, m.OSEdition, m.Features, m.Maintenance} {
		if v.IsUnknown() {
			return engine.HostSpec{}, false
		}
	}
	fromAgent := cfg.omittedFacts()
	for _, f := range engine.AgentFacts {
		if !slices.Contains(fromAgent, f) && m.fact(f).IsUnknown() {
			return engine.HostSpec{}, false
		}
	}
	s := engine.HostSpec{
		Name:            m.Name.ValueString(),
		Address:         m.Address.ValueString(),
		OSEdition:       m.OSEdition.ValueString(),
		ProcessorVendor: m.ProcessorVendor.ValueString(),
		ProcessorModel:  m.ProcessorModel.ValueString(),
		ProcessorCores:  int(m.ProcessorCores.ValueInt64()),
		MemoryMB:        m.MemoryMB.ValueInt64(),
		Maintenance:     m.Maintenance.ValueBool(),
	}
	s = withFromAgent(s, fromAgent)
	if !m.Features.IsNull() {
		diags.Append(m.Features.ElementsAs(ctx, &s.Features, false)...)
	}
	var adapters []adapterModel
	if !slices.Contains(fromAgent, engine.FactNetworkAdapters) && !m.NetworkAdapters.IsNull() {
		diags.Append(m.NetworkAdapters.ElementsAs(ctx, &adapters, false)...)
	}
	for _, a := range adapters {
		if a.Name.IsUnknown() || a.Network.IsUnknown() || a.Address.IsUnknown() {
			return engine.HostSpec{}, false
		}
		s.Adapters = append(s.Adapters, engine.Adapter{
			Name: a.Name.ValueString(), Network: a.Network.ValueString(), Address: a.Address.ValueString()})
	}
	return s, !diags.HasError()
}

func hostToModel(h engine.Host) hostModel {
	features := make([]attr.Value, 0, len(h.Features))
	for _, f := range h.Features {
		features = append(features, types.StringValue(f))
	}
	adapters := make([]attr.Value, 0, len(h.Adapters))
	for _, a := range h.Adapters {
		adapters = append(adapters, types.ObjectValueMust(adapterAttrTypes, map[string]attr.Value{
			"name": types.StringValue(a.Name), "network": types.StringValue(a.Network), "address": types.StringValue(a.Address),
		}))
	}
	return hostModel{
		ID:              types.StringValue(h.Name),
		Name:            types.StringValue(h.Name),
		Address:         types.StringValue(h.Address),
		OSEdition:       types.StringValue(h.OSEdition),
		ProcessorVendor: types.StringValue(h.ProcessorVendor),
		ProcessorModel:  types.StringValue(h.ProcessorModel),
		ProcessorCores:  types.Int64Value(int64(h.ProcessorCores)),
		MemoryMB:        types.Int64Value(h.MemoryMB),
		Features:        types.SetValueMust(types.StringType, features),
		NetworkAdapters: types.ListValueMust(types.ObjectType{AttrTypes: adapterAttrTypes}, adapters),
		Maintenance:     types.BoolValue(h.Maintenance),
		State:           types.StringValue(h.State()),
		Reported:        types.ObjectNull(reportedAttrTypes),
	}
}

func (r *hostResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var m hostModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if m.Maintenance.IsNull() {
		m.Maintenance = types.BoolValue(false)
	}
	s, ok := m.spec(ctx, &resp.Diagnostics, nil)
	if !ok {
		return
	}
	if err := engine.CheckHostSpec(s); err != nil {
		resp.Diagnostics.Append(engineDiags("Invalid host", err)...)
	}
}

// ModifyPlan warns which VMs a change to maintenance = true moves where,
// and fails the plan when one of them fits on no other node. The moves are
// judged against the committed cluster database; apply re-plans them.
func (r *hostResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if r.engine == nil {
		return
	}
	if !req.Plan.Raw.IsNull() {
		r.planAgentFacts(ctx, req, resp)
		if resp.Diagnostics.HasError() {
			return
		}
		r.keepStateWhenUnchanged(ctx, req, resp)
	}
	if req.State.Raw.IsNull() {
		return
	}
	if req.Plan.Raw.IsNull() {
		r.warnEviction(ctx, req, resp)
		return
	}
	var plan, state hostModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() || plan.Maintenance.IsUnknown() || plan.Maintenance.Equal(state.Maintenance) {
		return
	}
	name := state.ID.ValueString()
	ctx, w := withWaitRecorder(ctx)
	defer w.report(&resp.Diagnostics, "Planning the maintenance of host "+name)
	h, err := r.engine.GetHost(ctx, name)
	if err != nil || h.Cluster == "" {
		return // not a node: nothing to drain (apply reports a missing host)
	}
	if !plan.Maintenance.ValueBool() {
		vms, err := r.engine.ListVMs(ctx, h.Cluster)
		if err != nil {
			return
		}
		for _, vm := range vms {
			if vm.OwnerNode == name && vm.Node != name {
				resp.Diagnostics.AddWarning(fmt.Sprintf("%s can move back to %s after this apply", vm.Name, name),
					fmt.Sprintf("VM %s is pinned to %s (owner_node) and runs on %s while %s is in maintenance. Once this apply "+
						"ends maintenance, the next plan moves it back (or the leader agent does, per its failback policy %q).",
						vm.Name, name, vm.Node, name, vm.Failback.Mode))
			}
		}
		return
	}
	moves, err := r.engine.PlanDrain(ctx, h.Cluster, []string{name}, engine.ReasonMaintenance)
	if err != nil {
		resp.Diagnostics.Append(engineDiags("Host "+name+" cannot enter maintenance", drainInput(err))...)
		return
	}
	for _, m := range moves {
		resp.Diagnostics.AddWarning(m.Summary(), moveDetail(m))
	}
}

// moveDetail explains a planned drain move.
func moveDetail(m engine.PlannedMove) string {
	d := fmt.Sprintf("%s migration of VM %s from %s to %s (%s), chosen as a failover would place it (preferred owners, "+
		"anti-affinity, free memory); the VM's configuration does not change.", m.Type, m.VM, m.From, m.To, m.Reason)
	if m.Why != "" {
		d += " Not live: " + m.Why + "."
	}
	if m.Pinned && m.Reason == engine.ReasonMaintenance {
		d += fmt.Sprintf(" VM %s is pinned to %s (owner_node): while it is away its plan warns and shows no change; it moves back "+
			"in the first plan once %s can run it again.", m.VM, m.From, m.From)
	}
	return d
}

// drainInput turns a DrainError into an InputError on its attribute, so
// the diagnostic points at the attribute whose change asked for the drain.
func drainInput(err error) error {
	var de *engine.DrainError
	if errors.As(err, &de) {
		msg := de.Error()
		return &engine.InputError{Attribute: de.Attribute, Detail: msg[len(de.Attribute)+2:]}
	}
	return err
}

func (r *hostResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var m, cfg hostModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	s, ok := m.spec(ctx, &resp.Diagnostics, &cfg)
	if !ok || resp.Diagnostics.HasError() {
		return
	}
	h, err := engineCall(ctx, &resp.Diagnostics, "Registering host "+s.Name, "Cannot register host "+s.Name,
		func(ctx context.Context) (engine.Host, error) {
			h, err := r.engine.CreateHost(ctx, s)
			return h, asExisting(err, orphans.TypeHost, s.Name)
		})
	if err != nil {
		return
	}
	out := hostToModel(h)
	if out.Reported, err = reportedValue(ctx, r.engine, h.Name); err != nil {
		resp.Diagnostics.AddError("Cannot read the report of host "+h.Name, err.Error())
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, out)...)
}

func (r *hostResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var m hostModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	id := m.ID.ValueString()
	h, err := engineCall(ctx, &resp.Diagnostics, "Reading host "+id, "Cannot read host "+id,
		func(ctx context.Context) (engine.Host, error) { return r.engine.GetHost(ctx, id) }, engine.ErrNotFound)
	if errors.Is(err, engine.ErrNotFound) {
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		return
	}
	out := hostToModel(h)
	if out.Reported, err = reportedValue(ctx, r.engine, id); err != nil {
		resp.Diagnostics.AddError("Cannot read the report of host "+id, err.Error())
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, out)...)
}

func (r *hostResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var m, cfg hostModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	s, ok := m.spec(ctx, &resp.Diagnostics, &cfg)
	if !ok || resp.Diagnostics.HasError() {
		return
	}
	h, err := engineCall(ctx, &resp.Diagnostics, "Updating host "+s.Name, "Cannot update host "+s.Name,
		func(ctx context.Context) (engine.Host, error) { return r.engine.UpdateHost(ctx, s) })
	if err != nil {
		return
	}
	// The planned report (the prior state's: it is computed and kept)
	// stays; the next refresh reads a newer one.
	out := hostToModel(h)
	out.keepPlannedFacts(m)
	out.Reported = m.Reported
	if out.Reported.IsUnknown() {
		if out.Reported, err = reportedValue(ctx, r.engine, h.Name); err != nil {
			resp.Diagnostics.AddError("Cannot read the report of host "+h.Name, err.Error())
		}
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, out)...)
}

func (r *hostResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var m hostModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	id := m.ID.ValueString()
	// A node is evicted first (drained, removed from its cluster's nodes,
	// volumes unmounted), so dropping a host from a for_each that feeds
	// kayo_cluster.nodes works in one apply although Terraform destroys
	// the host before it updates the cluster.
	_, _ = engineCall(ctx, &resp.Diagnostics, "Removing host "+id, "Cannot remove host "+id,
		noValue(func(ctx context.Context) error {
			cluster, err := r.engine.EvictNode(ctx, id)
			if err != nil {
				return err
			}
			if cluster != "" {
				tflog.Info(ctx, "host evicted from its cluster before removal", map[string]any{"host": id, "cluster": cluster})
			}
			return r.engine.DeleteHost(ctx, id)
		}), engine.ErrNotFound)
}

// warnEviction says, when a host that is a node is destroyed, that its
// destroy evicts it from the cluster: which VMs move where, the quorum
// after, or why the eviction will be refused. Only warnings: in a full
// destroy Terraform destroys the cluster first, and then the host is no
// node by the time its delete runs.
func (r *hostResource) warnEviction(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	var state hostModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	name := state.ID.ValueString()
	ctx, w := withWaitRecorder(ctx)
	defer w.report(&resp.Diagnostics, "Planning the removal of host "+name)
	p, err := r.engine.PlanEviction(ctx, name)
	if p.Cluster == "" {
		return // no node (or unreadable: apply reports it)
	}
	if err != nil {
		resp.Diagnostics.AddWarning(fmt.Sprintf("Destroying host %s will be refused unless cluster %s goes first", name, p.Cluster),
			fmt.Sprintf("Host %s is a node of cluster %s. Destroying it evicts it from the cluster first, and that eviction "+
				"is refused now: %v. This is fine if this apply also destroys kayo_cluster %s (it is destroyed before its "+
				"hosts); otherwise the apply stops at this host with nothing changed.", name, p.Cluster, err, p.Cluster))
		return
	}
	detail := fmt.Sprintf("Host %s is a node of cluster %s. Destroying it first evicts it, as removing it from the cluster's "+
		"nodes does: its VMs move to the other nodes, it leaves the node list and its volume mounts are released. "+
		"Afterwards the cluster has %d of %d votes present (%d needed). Remove the host from kayo_cluster.nodes in the "+
		"same change (a for_each does it for you): a cluster configuration that still lists it plans to add it back "+
		"afterwards, and that apply fails, the host being gone. Nothing is evicted if this apply destroys kayo_cluster "+p.Cluster+" (it goes before its hosts).", name, p.Cluster, p.After.VotesPresent, p.After.TotalVotes, p.After.VotesNeeded)
	for _, m := range p.Moves {
		detail += "\n- " + m.Summary()
	}
	resp.Diagnostics.AddWarning(fmt.Sprintf("Destroying host %s evicts it from cluster %s", name, p.Cluster), detail)
}

func (r *hostResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), req.ID)...)
}
