package provider

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/quorum"
	"github.com/kayo-labs/terraform-provider-kayo/internal/orphans"
)

var (
	_ resource.ResourceWithConfigure      = (*quorumResource)(nil)
	_ resource.ResourceWithImportState    = (*quorumResource)(nil)
	_ resource.ResourceWithModifyPlan     = (*quorumResource)(nil)
	_ resource.ResourceWithValidateConfig = (*quorumResource)(nil)
)

// NewQuorumResource is the kayo_quorum resource.
func NewQuorumResource() resource.Resource { return &quorumResource{} }

type quorumResource struct{ engine *engine.Engine }

type quorumModel struct {
	ID                types.String `tfsdk:"id"`
	ClusterID         types.String `tfsdk:"cluster_id"`
	Type              types.String `tfsdk:"type"`
	WitnessDisk       types.String `tfsdk:"witness_disk"`
	WitnessShare      types.String `tfsdk:"witness_share"`
	TotalVotes        types.Int64  `tfsdk:"total_votes"`
	VotesNeeded       types.Int64  `tfsdk:"votes_needed"`
	FailuresTolerated types.Int64  `tfsdk:"failures_tolerated"`
	HasQuorum         types.Bool   `tfsdk:"has_quorum"`
}

func (r *quorumResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_quorum"
}

func quorumTypesMarkdown() string {
	s := make([]string, len(quorum.Types))
	for i, t := range quorum.Types {
		s[i] = "`" + string(t) + "`"
	}
	return strings.Join(s, ", ")
}

func (r *quorumResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "The quorum configuration of a cluster, with Windows Server 2008's vote arithmetic: " +
			"one static vote per node, one for a witness disk or file share, no dynamic quorum. A cluster has " +
			"exactly one quorum configuration: without a `kayo_quorum` it runs `node_majority`; declaring a " +
			"second `kayo_quorum` for a cluster is an error (import the existing one). Changing the type or " +
			"witness is an in-place update; destroying the resource returns the cluster to `node_majority`. " +
			"A cluster that has lost quorum refuses changes until enough nodes are back.\n\n" +
			"Risky choices are warned about at plan time: a two-node `node_majority` cluster tolerates no node " +
			"failure, and `disk_only` makes the disk a single point of failure.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: "The cluster name (as `cluster_id`).",
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"cluster_id": schema.StringAttribute{
				Required:            true,
				MarkdownDescription: "The cluster (`kayo_cluster.*.id`). Changing it replaces the resource.",
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"type": schema.StringAttribute{
				Required: true,
				MarkdownDescription: "The quorum type: " + quorumTypesMarkdown() + ". `node_majority`: one vote " +
					"per node, a majority needed. `node_and_disk_majority` / `node_and_file_share_majority`: the " +
					"witness adds a vote (recommended for an even node count). `disk_only`: only the witness disk " +
					"votes; any node reaching it runs the cluster, and losing it stops the cluster.",
			},
			"witness_disk": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "The witness disk, required by `node_and_disk_majority` and `disk_only` and " +
					"not allowed otherwise: a LUN name of the embedded SAN (1–64 letters, digits, `.`, `_`, `-`; " +
					"created small and sparse at `<data_dir>/san/<name>.img` when absent) or an absolute " +
					"block-device path. It must not hold a Kayo FS data volume, nor be another cluster's witness.",
			},
			"witness_share": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "The file share witness, required by `node_and_file_share_majority` and not " +
					"allowed otherwise: a UNC path `\\\\server\\share` (optionally with a folder).",
			},
			"total_votes": schema.Int64Attribute{
				Computed:            true,
				MarkdownDescription: "Every vote of the configuration: nodes plus witness (1 for `disk_only`).",
			},
			"votes_needed": schema.Int64Attribute{
				Computed:            true,
				MarkdownDescription: "Votes a partition needs to run the cluster: a strict majority of `total_votes`.",
			},
			"failures_tolerated": schema.Int64Attribute{
				Computed: true,
				MarkdownDescription: "Node failures the cluster survives while its witness (if any) is up: " +
					"`node_majority` 2 nodes → 0, 3 → 1, 4 → 1, 5 → 2, 16 → 7; a witness adds a vote.",
			},
			"has_quorum": schema.BoolAttribute{
				Computed: true,
				MarkdownDescription: "Whether the cluster has quorum now, from its nodes' states (a node is down " +
					"when its agent has been silent for the cluster's `heartbeat_timeout_seconds`, or when the " +
					"lab failed it). Refreshed on every read.",
			},
		},
	}
}

func (r *quorumResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.engine = engineFrom(req.ProviderData, &resp.Diagnostics)
}

func optString(v types.String) string {
	if v.IsNull() || v.IsUnknown() {
		return ""
	}
	return v.ValueString()
}

func nullIfEmpty(s string) types.String {
	if s == "" {
		return types.StringNull()
	}
	return types.StringValue(s)
}

func (m quorumModel) spec() engine.QuorumSpec {
	return engine.QuorumSpec{
		Cluster:      m.ClusterID.ValueString(),
		Type:         m.Type.ValueString(),
		WitnessDisk:  optString(m.WitnessDisk),
		WitnessShare: optString(m.WitnessShare),
	}
}

func quorumToModel(q engine.Quorum) quorumModel {
	return quorumModel{
		ID:                types.StringValue(q.Cluster),
		ClusterID:         types.StringValue(q.Cluster),
		Type:              types.StringValue(q.Type),
		WitnessDisk:       nullIfEmpty(q.WitnessDisk),
		WitnessShare:      nullIfEmpty(q.WitnessShare),
		TotalVotes:        types.Int64Value(int64(q.Status.TotalVotes)),
		VotesNeeded:       types.Int64Value(int64(q.Status.VotesNeeded)),
		FailuresTolerated: types.Int64Value(int64(q.Status.FailuresTolerated)),
		HasQuorum:         types.BoolValue(q.Status.HasQuorum),
	}
}

// ValidateConfig judges type and witnesses from the configuration alone,
// so a wrong combination fails at plan time, before anything is read.
func (r *quorumResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var m quorumModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() || m.Type.IsUnknown() || m.Type.IsNull() {
		return
	}
	if _, err := quorum.ParseType(m.Type.ValueString()); err != nil {
		resp.Diagnostics.Append(engineDiags("Invalid quorum type",
			&engine.InputError{Attribute: "type", Value: m.Type.ValueString(),
				Detail: strings.TrimPrefix(err.Error(), "type: ")})...)
		return
	}
	if m.WitnessDisk.IsUnknown() || m.WitnessShare.IsUnknown() {
		return // known at apply
	}
	// Node count does not change which witness is needed: judge with one.
	if err := engine.CheckQuorumSpec(m.spec(), 1); err != nil {
		resp.Diagnostics.Append(engineDiags("Invalid quorum configuration", err)...)
	}
}

// ModifyPlan checks what needs the committed database: a second
// kayo_quorum for one cluster, a cluster without quorum, and the risks of
// the chosen type for the cluster's node count.
func (r *quorumResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if r.engine == nil {
		return
	}
	var state quorumModel
	if !req.State.Raw.IsNull() {
		resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	}
	if req.Plan.Raw.IsNull() {
		r.warnReset(ctx, state, &resp.Diagnostics)
		return
	}
	var plan quorumModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() || plan.ClusterID.IsUnknown() || plan.Type.IsUnknown() ||
		plan.WitnessDisk.IsUnknown() || plan.WitnessShare.IsUnknown() {
		return
	}
	creating := req.State.Raw.IsNull() || !plan.ClusterID.Equal(state.ClusterID)
	if !creating && plan.Type.Equal(state.Type) && plan.WitnessDisk.Equal(state.WitnessDisk) &&
		plan.WitnessShare.Equal(state.WitnessShare) {
		return // nothing changes
	}
	cluster := plan.ClusterID.ValueString()
	ctx, w := withWaitRecorder(ctx)
	cur, err := r.engine.GetQuorum(ctx, cluster)
	w.report(&resp.Diagnostics, "Reading the quorum of cluster "+cluster)
	if errors.Is(err, engine.ErrNotFound) {
		return // created in this apply, or gone: apply judges
	}
	if err != nil {
		resp.Diagnostics.Append(engineDiags("Cannot read the quorum of cluster "+cluster, err)...)
		return
	}
	if creating && cur.Managed {
		resp.Diagnostics.AddAttributeError(path.Root("cluster_id"), "Cluster already has a kayo_quorum",
			fmt.Sprintf("cluster_id: cluster %q already has its quorum set by a kayo_quorum (type %q); a cluster has "+
				"exactly one quorum configuration. Import it instead of declaring a second one:\n\n"+
				"  terraform import kayo_quorum.NAME %s", cluster, cur.Type, cluster))
		return
	}
	if !cur.Status.HasQuorum {
		resp.Diagnostics.AddAttributeError(path.Root("type"), "Cluster "+cluster+" has lost quorum",
			(&engine.QuorumLostError{Cluster: cluster, Status: cur.Status, Action: "changing its quorum configuration"}).Error())
		return
	}
	s := plan.spec()
	if err := engine.CheckQuorumSpec(s, cur.Status.Nodes); err != nil {
		resp.Diagnostics.Append(engineDiags("Invalid quorum configuration", err)...)
		return
	}
	warnRisks(&resp.Diagnostics, cluster, s.Type, cur.Status.Nodes, path.Root("type"))
}

// warnReset tells, when a kayo_quorum is destroyed, what node_majority
// will mean for the cluster.
func (r *quorumResource) warnReset(ctx context.Context, state quorumModel, diags *diag.Diagnostics) {
	if state.ClusterID.IsNull() || state.Type.ValueString() == string(quorum.NodeMajority) {
		return
	}
	c, err := r.engine.GetCluster(ctx, state.ClusterID.ValueString())
	if err != nil {
		return
	}
	// Only a warning: a destroy that also destroys the cluster is judged
	// by apply, and force_destroy must be applied before it counts.
	switch forced, err := r.engine.PlanQuorumReset(ctx, c.Name); {
	case err != nil:
		diags.AddWarning("Destroying the kayo_quorum of cluster "+c.Name+" will be refused", err.Error()+".")
		return
	case forced:
		diags.AddWarning("Cluster "+c.Name+" returns to node_majority without quorum (force_destroy)",
			"kayo_cluster "+c.Name+" has force_destroy = true: its quorum record is dropped although the cluster has no "+
				"quorum or would lose it, so that it can be torn down. Only the cluster's own records go.")
		return
	}
	warnRisks(diags, c.Name, string(quorum.NodeMajority), len(c.Nodes), path.Empty())
}

func warnRisks(diags *diag.Diagnostics, cluster, typ string, nodes int, attr path.Path) {
	t := quorum.Type(typ)
	for _, risk := range quorum.Risks(quorum.Config{Type: t, Nodes: nodes, Witness: t.NeedsWitness()}) {
		summary := fmt.Sprintf("Quorum risk for cluster %s (%s, %d nodes)", cluster, typ, nodes)
		if attr.Equal(path.Empty()) {
			diags.AddWarning(summary, "After destroy the cluster returns to node_majority: "+risk+".")
		} else {
			diags.AddAttributeWarning(attr, summary, risk+".")
		}
	}
}

func (r *quorumResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var m quorumModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	s := m.spec()
	q, err := engineCall(ctx, &resp.Diagnostics, "Setting the quorum of cluster "+s.Cluster, "Cannot set the quorum of cluster "+s.Cluster,
		func(ctx context.Context) (engine.Quorum, error) {
			q, err := r.engine.CreateQuorum(ctx, s)
			return q, asExisting(err, orphans.TypeQuorum, s.Cluster)
		})
	if err != nil {
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, quorumToModel(q))...)
}

func (r *quorumResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var m quorumModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	cluster := m.ID.ValueString()
	q, err := engineCall(ctx, &resp.Diagnostics, "Reading the quorum of cluster "+cluster, "Cannot read the quorum of cluster "+cluster,
		func(ctx context.Context) (engine.Quorum, error) { return r.engine.GetQuorum(ctx, cluster) }, engine.ErrNotFound)
	if errors.Is(err, engine.ErrNotFound) {
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, quorumToModel(q))...)
}

func (r *quorumResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var m quorumModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	s := m.spec()
	q, err := engineCall(ctx, &resp.Diagnostics, "Changing the quorum of cluster "+s.Cluster, "Cannot change the quorum of cluster "+s.Cluster,
		func(ctx context.Context) (engine.Quorum, error) { return r.engine.UpdateQuorum(ctx, s) })
	if err != nil {
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, quorumToModel(q))...)
}

func (r *quorumResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var m quorumModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	cluster := m.ID.ValueString()
	_, _ = engineCall(ctx, &resp.Diagnostics, "Resetting the quorum of cluster "+cluster, "Cannot return cluster "+cluster+" to node_majority",
		noValue(func(ctx context.Context) error { return r.engine.ResetQuorum(ctx, cluster) }), engine.ErrNotFound)
}

// ImportState takes the cluster name. A cluster without a kayo_quorum
// imports as its implicit node_majority.
func (r *quorumResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), req.ID)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("cluster_id"), req.ID)...)
}
