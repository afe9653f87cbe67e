package provider

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/setvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/validate"
	"github.com/kayo-labs/terraform-provider-kayo/internal/orphans"
)

var (
	_ resource.ResourceWithConfigure   = (*clusterResource)(nil)
	_ resource.ResourceWithImportState = (*clusterResource)(nil)
	_ resource.ResourceWithModifyPlan  = (*clusterResource)(nil)
)

// NewClusterResource is the kayo_cluster resource.
func NewClusterResource() resource.Resource { return &clusterResource{} }

type clusterResource struct{ engine *engine.Engine }

type clusterModel struct {
	ID                      types.String `tfsdk:"id"`
	Name                    types.String `tfsdk:"name"`
	Nodes                   types.Set    `tfsdk:"nodes"`
	StaticAddress           types.String `tfsdk:"static_address"`
	Hypervisor              types.String `tfsdk:"hypervisor"`
	HeartbeatTimeoutSeconds types.Int64  `tfsdk:"heartbeat_timeout_seconds"`
	ForceDestroy            types.Bool   `tfsdk:"force_destroy"`
	Validation              types.List   `tfsdk:"validation"`
	ValidatedAt             types.String `tfsdk:"validated_at"`
}

var validationAgentAttrTypes = map[string]attr.Type{"node": types.StringType, "at": types.StringType}

var validationProbeAttrTypes = map[string]attr.Type{"from": types.StringType, "to": types.StringType,
	"network": types.StringType, "reachable": types.BoolType, "rtt_ms": types.Float64Type}

var validationAttrTypes = map[string]attr.Type{
	"category": types.StringType,
	"test":     types.StringType,
	"result":   types.StringType,
	"message":  types.StringType,
	"source":   types.StringType,
	"agents":   types.ListType{ElemType: types.ObjectType{AttrTypes: validationAgentAttrTypes}},
	"probes":   types.ListType{ElemType: types.ObjectType{AttrTypes: validationProbeAttrTypes}},
}

func (r *clusterResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_cluster"
}

func validationSchemaDescription() string {
	return "The validation report of the last formation or membership change, as Windows' Validate a " +
		"Configuration wizard gives it: one entry per test in the categories Inventory, Network, Storage and " +
		"System Configuration, each `passed`, `warning` or `failed` with a message. A failed test refuses the " +
		"change; warnings (hardware that differs) are reported and do not block."
}

func (r *clusterResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "A failover cluster formed from registered hosts. Formation runs cluster validation " +
			"and is refused when any test fails, listing every failed test. Adding or removing nodes is an " +
			"in-place update (the new membership is validated first); renaming replaces the cluster.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: "The cluster name.",
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"name": schema.StringAttribute{
				Required: true,
				MarkdownDescription: "NetBIOS cluster name: 1–15 letters, digits and hyphens, not all digits. " +
					"Changing it replaces the cluster.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
				Validators:    []validator.String{netbiosValidator{}},
			},
			"nodes": schema.SetAttribute{
				ElementType:         types.StringType,
				Required:            true,
				MarkdownDescription: "Names of the registered hosts that are the cluster's nodes, 1 to 16.",
				Validators:          []validator.Set{setvalidator.SizeBetween(1, validate.MaxNodes)},
			},
			"static_address": schema.StringAttribute{
				Required: true,
				MarkdownDescription: "The cluster's administrative IP address in CIDR form (e.g. `192.0.2.50/24`), " +
					"inside a network every node has an adapter in, and not used by any host.",
				Validators: []validator.String{cidrAddressValidator{}},
			},
			"hypervisor": schema.StringAttribute{
				Optional: true,
				Computed: true,
				Default:  stringdefault.StaticString(engine.HypervisorSimulator),
				MarkdownDescription: "The VM runtime: `simulator` (the embedded engine's simulated Hyper-V; " +
					"default), or `qemu`: real QEMU guests (TCG) run by each node's `kayoctl agent`, their disks served over " +
					"NBD out of the Kayo FS volume, live-migrated with QMP. Changing it in place is refused at plan time while " +
					"any VM of the cluster has `state = \"running\"` (their guests live in the old runtime): the error names " +
					"the VMs; set them `off`, apply, then change `hypervisor`.",
				Validators: []validator.String{stringvalidator.OneOf(engine.HypervisorSimulator, engine.HypervisorQEMU)},
			},
			"heartbeat_timeout_seconds": schema.Int64Attribute{
				Optional:            true,
				Computed:            true,
				Default:             int64default.StaticInt64(engine.DefaultHeartbeatTimeout),
				MarkdownDescription: "A node silent this long is declared down. 1–3600, default 10.",
				Validators:          []validator.Int64{int64validator.Between(engine.MinHeartbeatTimeout, engine.MaxHeartbeatTimeout)},
			},
			"force_destroy": schema.BoolAttribute{
				Optional: true,
				Computed: true,
				Default:  booldefault.StaticBool(false),
				MarkdownDescription: "Allow tearing the cluster down while nodes are down for good. Destroying a " +
					"`kayo_quorum` returns the cluster to `node_majority`, which is refused when the cluster has no quorum " +
					"or would lose it (e.g. two nodes and a witness, one node dead); with `force_destroy = true` the quorum " +
					"record is dropped anyway so the destroy can go on. Like any attribute read at destroy, it must be " +
					"applied first: set it, `terraform apply` (an in-place change that needs neither validation nor " +
					"quorum), then `terraform destroy`. Only the cluster's own records go; hosts stay registered and no " +
					"node's data is touched. A dead node is evicted without it: drop it from `nodes` (or destroy its " +
					"`kayo_host`) once its VMs have failed over. Default `false`.",
			},
			"validation": schema.ListNestedAttribute{
				Computed:            true,
				MarkdownDescription: validationSchemaDescription(),
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"category": schema.StringAttribute{Computed: true, MarkdownDescription: "Inventory, Network, Storage or System Configuration."},
					"test":     schema.StringAttribute{Computed: true, MarkdownDescription: "The test's name."},
					"result":   schema.StringAttribute{Computed: true, MarkdownDescription: "`passed`, `warning` or `failed`."},
					"message":  schema.StringAttribute{Computed: true, MarkdownDescription: "What the test found."},
					"source": schema.StringAttribute{Computed: true, MarkdownDescription: "What the test looked at: `declared` " +
						"(the facts in the configuration: no node agent reports, as in the embedded lab) or `probed` (what the " +
						"nodes' agents report of their machines)."},
					"agents": schema.ListNestedAttribute{Computed: true, MarkdownDescription: "For a `probed` test, the nodes " +
						"whose agents' reports or probes it used, each with when its agent made them; empty for a `declared` test.",
						NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
							"node": schema.StringAttribute{Computed: true, MarkdownDescription: "The node whose agent made the data."},
							"at":   schema.StringAttribute{Computed: true, MarkdownDescription: "When (RFC 3339, UTC)."},
						}}},
					"probes": validationProbesSchema(),
				}},
			},
			"validated_at": schema.StringAttribute{
				Computed: true,
				MarkdownDescription: "When `validation` was made (RFC 3339, UTC): at formation and at every change of " +
					"the nodes, address, hypervisor or heartbeat timeout, each of which validates the cluster again. " +
					"`kayoctl cluster validate NAME` makes a report now without changing anything.",
			},
		},
	}
}

func (r *clusterResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.engine = engineFrom(req.ProviderData, &resp.Diagnostics)
}

func (m clusterModel) spec(ctx context.Context, diags *diag.Diagnostics) (engine.ClusterSpec, bool) {
	for _, v := range []attr.Value{m.Name, m.Nodes, m.StaticAddress, m.Hypervisor, m.HeartbeatTimeoutSeconds, m.ForceDestroy} {
		if v.IsUnknown() {
			return engine.ClusterSpec{}, false
		}
	}
	s := engine.ClusterSpec{
		Name:                    m.Name.ValueString(),
		StaticAddress:           m.StaticAddress.ValueString(),
		Hypervisor:              m.Hypervisor.ValueString(),
		HeartbeatTimeoutSeconds: int(m.HeartbeatTimeoutSeconds.ValueInt64()),
		ForceDestroy:            m.ForceDestroy.ValueBool(),
	}
	var nodes []types.String
	diags.Append(m.Nodes.ElementsAs(ctx, &nodes, false)...)
	for _, n := range nodes {
		if n.IsUnknown() {
			return engine.ClusterSpec{}, false
		}
		s.Nodes = append(s.Nodes, n.ValueString())
	}
	return s, !diags.HasError()
}

func validationList(tests []validate.Test) types.List {
	vals := make([]attr.Value, 0, len(tests))
	for _, t := range tests {
		vals = append(vals, types.ObjectValueMust(validationAttrTypes, map[string]attr.Value{
			"category": types.StringValue(t.Category),
			"test":     types.StringValue(t.Name),
			"result":   types.StringValue(string(t.Result)),
			"message":  types.StringValue(t.Message),
			"source":   types.StringValue(sourceOf(t)),
			"agents":   agentsList(t.Agents),
			"probes":   probesList(t.Probes),
		}))
	}
	return types.ListValueMust(types.ObjectType{AttrTypes: validationAttrTypes}, vals)
}

// sourceOf: reports stored before tests had a source were all computed
// from declared facts.
func sourceOf(t validate.Test) string {
	if t.Source == "" {
		return validate.SourceDeclared
	}
	return t.Source
}

func clusterToModel(c engine.Cluster) clusterModel {
	nodes := make([]attr.Value, 0, len(c.Nodes))
	for _, n := range c.Nodes {
		nodes = append(nodes, types.StringValue(n))
	}
	return clusterModel{
		ID:                      types.StringValue(c.Name),
		Name:                    types.StringValue(c.Name),
		Nodes:                   types.SetValueMust(types.StringType, nodes),
		StaticAddress:           types.StringValue(c.StaticAddress),
		Hypervisor:              types.StringValue(c.Hypervisor),
		HeartbeatTimeoutSeconds: types.Int64Value(int64(c.HeartbeatTimeoutSeconds)),
		ForceDestroy:            types.BoolValue(c.ForceDestroy),
		Validation:              validationList(c.Validation),
		ValidatedAt:             validatedAt(c),
	}
}

func agentsList(as []validate.AgentData) types.List {
	vals := make([]attr.Value, len(as))
	for i, a := range as {
		vals[i] = types.ObjectValueMust(validationAgentAttrTypes, map[string]attr.Value{
			"node": types.StringValue(a.Node), "at": types.StringValue(a.At.UTC().Format(time.RFC3339Nano)),
		})
	}
	return types.ListValueMust(types.ObjectType{AttrTypes: validationAgentAttrTypes}, vals)
}

// validatedAt is null for a record made before the field.
func validatedAt(c engine.Cluster) types.String {
	if c.ValidatedAt.IsZero() {
		return types.StringNull()
	}
	return types.StringValue(c.ValidatedAt.UTC().Format(time.RFC3339Nano))
}

// warnValidation surfaces validation warnings so they are seen, not only stored.
func warnValidation(diags *diag.Diagnostics, cluster string, tests []validate.Test) {
	for _, t := range tests {
		if t.Result == validate.Warning {
			diags.AddWarning(fmt.Sprintf("Cluster %s validation warning: %s", cluster, t.Name),
				fmt.Sprintf("%s (category %s). Warnings do not block the cluster.", t.Message, t.Category))
		}
	}
}

// ModifyPlan judges the cluster against the committed database at plan
// time, so a configuration that cannot validate fails before apply. Nodes
// not registered yet (created in the same apply) leave the verdict to apply.
func (r *clusterResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if r.engine == nil || req.Plan.Raw.IsNull() {
		return
	}
	var plan, state clusterModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	// A new cluster (also the create half of a replacement) may take hosts
	// and an address from a cluster this apply destroys first: only apply
	// can tell, so the plan leaves other clusters out of its judgement.
	creating := req.State.Raw.IsNull()
	if !creating {
		resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
		if !plan.Name.Equal(state.Name) {
			creating = true
		} else if plan.Nodes.Equal(state.Nodes) && plan.StaticAddress.Equal(state.StaticAddress) &&
			plan.Hypervisor.Equal(state.Hypervisor) && plan.HeartbeatTimeoutSeconds.Equal(state.HeartbeatTimeoutSeconds) {
			return // nothing to judge
		}
	}
	s, ok := plan.spec(ctx, &resp.Diagnostics)
	if !ok || resp.Diagnostics.HasError() {
		return
	}
	if engine.CheckClusterSpec(s) != nil {
		return // the attribute validators already said so
	}
	ctx, w := withWaitRecorder(ctx)
	check, err := r.engine.ValidateCluster(ctx, s, creating)
	w.report(&resp.Diagnostics, "Validating cluster "+s.Name)
	if err != nil {
		resp.Diagnostics.Append(engineDiags("Cannot validate cluster "+s.Name, err)...)
		return
	}
	if !creating && !plan.Hypervisor.Equal(state.Hypervisor) {
		// The VMs' guests live in the old runtime: refuse while any runs.
		if err := r.engine.CheckHypervisorChange(ctx, s.Name, s.Hypervisor); err != nil && !errors.Is(err, engine.ErrNotFound) {
			resp.Diagnostics.Append(engineDiags("Cluster "+s.Name+": the hypervisor cannot change now", err)...)
			return
		}
	}
	if !creating && !plan.Nodes.Equal(state.Nodes) {
		// Removed nodes are drained first: say which VMs move where, and
		// refuse a removal that would lose quorum or strand a VM.
		moves, err := r.engine.PlanNodeRemoval(ctx, s)
		if err != nil && !errors.Is(err, engine.ErrNotFound) {
			resp.Diagnostics.Append(engineDiags("Cluster "+s.Name+": the node removal is refused", drainInput(err))...)
			return
		}
		for _, m := range moves {
			resp.Diagnostics.AddWarning(m.Summary(), moveDetail(m)+removalPinNote(m))
		}
	}
	if !check.Complete {
		return
	}
	if failed := check.Report.Failed(); len(failed) > 0 {
		resp.Diagnostics.Append(engineDiags("Cluster "+s.Name+" cannot be formed",
			&engine.ValidationError{Cluster: s.Name, Failed: failed})...)
		return
	}
	warnValidation(&resp.Diagnostics, s.Name, check.Report.Tests)
}

func (r *clusterResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var m clusterModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	s, ok := m.spec(ctx, &resp.Diagnostics)
	if !ok || resp.Diagnostics.HasError() {
		return
	}
	c, err := engineCall(ctx, &resp.Diagnostics, "Forming cluster "+s.Name, "Cannot form cluster "+s.Name,
		func(ctx context.Context) (engine.Cluster, error) {
			c, err := r.engine.CreateCluster(ctx, s)
			return c, asExisting(err, orphans.TypeCluster, s.Name)
		})
	if err != nil {
		return
	}
	warnValidation(&resp.Diagnostics, c.Name, c.Validation)
	resp.Diagnostics.Append(resp.State.Set(ctx, clusterToModel(c))...)
}

func (r *clusterResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var m clusterModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	id := m.ID.ValueString()
	c, err := engineCall(ctx, &resp.Diagnostics, "Reading cluster "+id, "Cannot read cluster "+id,
		func(ctx context.Context) (engine.Cluster, error) { return r.engine.GetCluster(ctx, id) }, engine.ErrNotFound)
	if errors.Is(err, engine.ErrNotFound) {
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, clusterToModel(c))...)
}

func (r *clusterResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var m clusterModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	s, ok := m.spec(ctx, &resp.Diagnostics)
	if !ok || resp.Diagnostics.HasError() {
		return
	}
	c, err := engineCall(ctx, &resp.Diagnostics, "Updating cluster "+s.Name, "Cannot update cluster "+s.Name,
		func(ctx context.Context) (engine.Cluster, error) { return r.engine.UpdateCluster(ctx, s) })
	if err != nil {
		return
	}
	warnValidation(&resp.Diagnostics, c.Name, c.Validation)
	resp.Diagnostics.Append(resp.State.Set(ctx, clusterToModel(c))...)
}

func (r *clusterResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var m clusterModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	id := m.ID.ValueString()
	_, _ = engineCall(ctx, &resp.Diagnostics, "Destroying cluster "+id, "Cannot destroy cluster "+id,
		noValue(func(ctx context.Context) error { return r.engine.DeleteCluster(ctx, id) }), engine.ErrNotFound)
}

func (r *clusterResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), req.ID)...)
}

func removalPinNote(m engine.PlannedMove) string {
	if !m.Pinned {
		return ""
	}
	return fmt.Sprintf(" Since %s leaves the cluster, set owner_node of %s to a remaining node (or null).", m.From, m.VM)
}

// netbiosValidator applies the engine's NetBIOS rule at plan time.
type netbiosValidator struct{}

func (netbiosValidator) Description(context.Context) string {
	return "1–15 letters, digits and hyphens, not all digits"
}
func (v netbiosValidator) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (netbiosValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if err := validate.CheckName(req.ConfigValue.ValueString()); err != nil {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid cluster name", fmt.Sprintf("%s: %s", req.Path, err))
	}
}

// cidrAddressValidator accepts an address with a prefix length, e.g. 192.0.2.50/24.
type cidrAddressValidator struct{}

func (cidrAddressValidator) Description(context.Context) string {
	return "an IP address with its prefix length, e.g. 192.0.2.50/24"
}
func (v cidrAddressValidator) MarkdownDescription(ctx context.Context) string {
	return v.Description(ctx)
}

func (cidrAddressValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	s := req.ConfigValue.ValueString()
	if _, err := netip.ParsePrefix(s); err != nil {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid address",
			fmt.Sprintf("%s: %q is not allowed; allowed: an IP address with its prefix length, e.g. \"192.0.2.50/24\"", req.Path, s))
	}
}

// validationProbesSchema is validation[*].probes, in kayo_cluster and its
// data source.
func validationProbesSchema() schema.ListNestedAttribute {
	return schema.ListNestedAttribute{Computed: true, MarkdownDescription: "For \"Validate Network Communication\" made " +
		"from the agents' probes, each probe: the node that sent it, the node it reached (or not), on which cluster " +
		"network, and the round trip; empty otherwise.",
		NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
			"from":      schema.StringAttribute{Computed: true, MarkdownDescription: "The probing node."},
			"to":        schema.StringAttribute{Computed: true, MarkdownDescription: "The probed node."},
			"network":   schema.StringAttribute{Computed: true, MarkdownDescription: "The cluster network (CIDR)."},
			"reachable": schema.BoolAttribute{Computed: true, MarkdownDescription: "Whether the probed node answered."},
			"rtt_ms":    schema.Float64Attribute{Computed: true, MarkdownDescription: "The round trip in milliseconds (0 when unreachable)."},
		}}}
}

func probesList(ps []validate.ProbeData) types.List {
	vals := make([]attr.Value, len(ps))
	for i, p := range ps {
		vals[i] = types.ObjectValueMust(validationProbeAttrTypes, map[string]attr.Value{
			"from": types.StringValue(p.From), "to": types.StringValue(p.To), "network": types.StringValue(p.Network),
			"reachable": types.BoolValue(p.Reachable), "rtt_ms": types.Float64Value(float64(p.RTT.Microseconds()) / 1000),
		})
	}
	return types.ListValueMust(types.ObjectType{AttrTypes: validationProbeAttrTypes}, vals)
}
