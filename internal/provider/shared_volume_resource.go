package provider

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/mapplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/lunprobe"
)

var (
	_ resource.ResourceWithConfigure      = (*sharedVolumeResource)(nil)
	_ resource.ResourceWithImportState    = (*sharedVolumeResource)(nil)
	_ resource.ResourceWithModifyPlan     = (*sharedVolumeResource)(nil)
	_ resource.ResourceWithValidateConfig = (*sharedVolumeResource)(nil)
)

// NewSharedVolumeResource is the kayo_shared_volume resource.
func NewSharedVolumeResource() resource.Resource { return &sharedVolumeResource{} }

type sharedVolumeResource struct{ engine *engine.Engine }

type sharedVolumeModel struct {
	ID           types.String `tfsdk:"id"`
	ClusterID    types.String `tfsdk:"cluster_id"`
	LUN          types.String `tfsdk:"lun"`
	SizeGiB      types.Int64  `tfsdk:"size_gib"`
	Label        types.String `tfsdk:"label"`
	DriveLetter  types.String `tfsdk:"drive_letter"`
	BlockSize    types.Int64  `tfsdk:"block_size"`
	NodeSlots    types.Int64  `tfsdk:"node_slots"`
	ForceFormat  types.Bool   `tfsdk:"force_format"`
	ForceDestroy types.Bool   `tfsdk:"force_destroy"`
	// ForceFormatOver and FileBacked: see the schema.
	ForceFormatOver types.String `tfsdk:"force_format_over"`
	FileBacked      types.Bool   `tfsdk:"file_backed"`
	DeviceID        types.String `tfsdk:"device_id"`
	DevicePaths     types.Map    `tfsdk:"device_paths"`
	Mounts          types.Map    `tfsdk:"mounts"`
	UsedBytes       types.Int64  `tfsdk:"used_bytes"`
	FreeBytes       types.Int64  `tfsdk:"free_bytes"`
}

func (r *sharedVolumeResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_shared_volume"
}

func (r *sharedVolumeResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "A SAN LUN formatted with the Kayo FS clustered file system and mounted on every node of a " +
			"cluster at the same drive letter, so every node sees every VHD (the seed guide's `O:`).\n\n" +
			"Each node mounts the volume in a node slot of its own (its own metadata journal and heartbeat); the " +
			"mount lasts between Terraform runs. Mounts follow the cluster's membership: a node added to the " +
			"`kayo_cluster` mounts the volume in the same apply, a removed node unmounts it.\n\n" +
			"In place: `label`, `drive_letter`, a larger `size_gib` (the LUN and the file system grow online) and " +
			"more `node_slots`. A new `lun` or `block_size` replaces the volume (formats anew: its files are lost). " +
			"Shrinking `size_gib` or `node_slots` is a plan-time error.\n\n" +
			"Before formatting, the first and last MiB of the LUN are probed (at plan time when the LUN exists). " +
			"A recognised signature — partition tables (MBR, GPT incl. its backup header), LUKS, LVM2, MD RAID, swap, " +
			"qcow2/VHD/VHDX/VMDK images, file systems (ext2/3/4, XFS, Btrfs, NTFS, FAT, OCFS2, GFS2, ZFS) — is refused " +
			"even with `force_format`, unless `force_format_over` names exactly what was found; other non-zero data " +
			"and an existing Kayo FS need `force_format`; a Kayo FS mounted elsewhere is always refused. A `lun` path " +
			"must be a block device (opened exclusively) unless `file_backed` says a file-backed LUN is intended.\n\n" +
			"Before every write the volume UUID on the LUN must match the volume's: a LUN swapped for another, or a " +
			"data_dir copied from another installation, is never written to. An embedded LUN is found by name in " +
			"the `data_dir` in use. A volume whose LUN was zeroed or deleted outside Kayo can still be destroyed " +
			"(with a warning): its records are removed, the LUN is left as it is.\n\n" +
			"Reads (plan, refresh) open no device: `used_bytes`, `free_bytes` and whether the LUN still holds the " +
			"volume come from what the nodes report into the cluster database — after every change made through a " +
			"node's mount, on each node agent's heartbeat, and, in the embedded lab, from each provider run for the " +
			"LUNs of its `data_dir`. So a plan works from a machine that reaches only the database. A report older than " +
			"two minutes, or a node that cannot reach the LUN, is warned about.\n\n" +
			"Destroy refuses while the volume holds files unless `force_destroy`.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: "The volume UUID (from the Kayo FS superblock).",
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"cluster_id": schema.StringAttribute{
				Required:            true,
				MarkdownDescription: "The cluster (`kayo_cluster.*.id`) whose nodes mount the volume. Changing it replaces the volume.",
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"lun": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "The LUN: a name in the embedded SAN (1–64 letters, digits, `.`, `_`, `-`; created " +
					"sparse at `<data_dir>/san/<name>.img` with `size_gib`, and found by that name in the `data_dir` in use), " +
					"or an absolute block-device path, the same on every node (a regular file only with `file_backed`). " +
					"Exactly one of `lun`, `device_id` and `device_paths` names the LUN. Changing it replaces the volume.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"device_id": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "The LUN by its identity: a name under `/dev/disk/by-id` (e.g. `wwn-0x5000c500a1b2c3d4`), which " +
					"each node's agent resolves on its own host, so the LUN may have a different `/dev/sdX` on every node. The " +
					"nodes' agents report the identities they see (`kayo_host.reported.luns`); when they report, creating the " +
					"volume fails naming the node whose report does not list it. Changing it replaces the volume.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"device_paths": schema.MapAttribute{
				Optional:    true,
				ElementType: types.StringType,
				MarkdownDescription: "The LUN by its path on each node: node name → absolute device path on that node; the " +
					"keys must be exactly the cluster's nodes. Changing a path is in place (the volume UUID on the LUN is " +
					"checked before every write); switching to or from `device_paths` replaces the volume.",
				PlanModifiers: []planmodifier.Map{mapplanmodifier.RequiresReplaceIf(func(_ context.Context, req planmodifier.MapRequest, resp *mapplanmodifier.RequiresReplaceIfFuncResponse) {
					resp.RequiresReplace = req.StateValue.IsNull() != req.PlanValue.IsNull()
				}, "Switching to or from device_paths replaces the volume.", "Switching to or from `device_paths` replaces the volume.")},
			},
			"size_gib": schema.Int64Attribute{
				Required: true,
				MarkdownDescription: fmt.Sprintf("Size in GiB, %d to %d (64 TiB). Growing it is in place (online); "+
					"shrinking it is an error.", engine.MinVolumeGiB, engine.MaxVolumeGiB),
				Validators: []validator.Int64{int64validator.Between(engine.MinVolumeGiB, engine.MaxVolumeGiB)},
			},
			"label": schema.StringAttribute{
				Optional:            true,
				Computed:            true,
				Default:             stringdefault.StaticString(""),
				MarkdownDescription: fmt.Sprintf("Volume label, at most %d bytes of printable UTF-8 (no NUL or control characters). In place.", kayofs.MaxLabelLen),
				Validators:          []validator.String{stringvalidator.LengthAtMost(kayofs.MaxLabelLen)},
			},
			"drive_letter": schema.StringAttribute{
				Required: true,
				MarkdownDescription: "The drive letter every node mounts the volume at: one upper-case letter `D`–`Z`, " +
					"unique in the cluster. In place.",
			},
			"block_size": schema.Int64Attribute{
				Optional:            true,
				Computed:            true,
				Default:             int64default.StaticInt64(engine.DefaultBlockSize),
				MarkdownDescription: "Block size in bytes: a power of two from 4096 to 65536. Default 4096. Changing it replaces the volume.",
				PlanModifiers:       []planmodifier.Int64{int64planmodifier.RequiresReplace()},
			},
			"node_slots": schema.Int64Attribute{
				Optional: true,
				Computed: true,
				Default:  int64default.StaticInt64(engine.DefaultNodeSlots),
				MarkdownDescription: fmt.Sprintf("Node slots (1–%d, at least the cluster's node count): how many nodes can "+
					"mount the volume at once. Default %d. Growing it is in place; shrinking it is an error.", kayofs.MaxSlots, engine.DefaultNodeSlots),
			},
			"force_format": schema.BoolAttribute{
				Optional: true,
				Computed: true,
				Default:  booldefault.StaticBool(false),
				MarkdownDescription: "Format the LUN even when it holds a Kayo FS volume or data no signature is known for " +
					"(destroying it). Does not override a recognised signature (see `force_format_over`); never formats a LUN mounted elsewhere.",
			},
			"force_format_over": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "Format the LUN although it holds these recognised signatures (destroying what they hold): " +
					"exactly the name(s) a refused plan reported, comma-separated in that order, e.g. `gpt` or `gpt,luks`. Known: `" +
					strings.Join(lunprobe.Names(), "`, `") + "`.",
			},
			"file_backed": schema.BoolAttribute{
				Optional:            true,
				Computed:            true,
				Default:             booldefault.StaticBool(false),
				MarkdownDescription: "Allow a `lun` path that is a regular file (a file-backed LUN) rather than a block device.",
			},
			"force_destroy": schema.BoolAttribute{
				Optional:            true,
				Computed:            true,
				Default:             booldefault.StaticBool(false),
				MarkdownDescription: "Allow destroy while the volume holds files (they are lost). Set it, apply, then destroy.",
			},
			"mounts": schema.MapAttribute{
				Computed:            true,
				ElementType:         types.Int64Type,
				MarkdownDescription: "Node name → node slot, for every node that mounts the volume.",
			},
			"used_bytes": schema.Int64Attribute{
				Computed:            true,
				MarkdownDescription: "Bytes in use (metadata included), from the allocation groups, as the newest node report says.",
			},
			"free_bytes": schema.Int64Attribute{
				Computed:            true,
				MarkdownDescription: "Bytes free for files, as the newest node report says.",
			},
		},
	}
}

func (r *sharedVolumeResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.engine = engineFrom(req.ProviderData, &resp.Diagnostics)
}

func (m sharedVolumeModel) spec() engine.VolumeSpec {
	return engine.VolumeSpec{
		Cluster:         m.ClusterID.ValueString(),
		LUN:             m.LUN.ValueString(),
		SizeGiB:         m.SizeGiB.ValueInt64(),
		Label:           m.Label.ValueString(),
		DriveLetter:     m.DriveLetter.ValueString(),
		BlockSize:       int(m.BlockSize.ValueInt64()),
		NodeSlots:       int(m.NodeSlots.ValueInt64()),
		ForceFormat:     m.ForceFormat.ValueBool(),
		ForceDestroy:    m.ForceDestroy.ValueBool(),
		ForceFormatOver: m.ForceFormatOver.ValueString(),
		FileBacked:      m.FileBacked.ValueBool(),
		DeviceID:        m.DeviceID.ValueString(),
		DevicePaths:     stringMap(m.DevicePaths),
	}
}

// stringMap is a known map of strings as Go's; nil when null.
func stringMap(m types.Map) map[string]string {
	if m.IsNull() || m.IsUnknown() {
		return nil
	}
	out := make(map[string]string, len(m.Elements()))
	for k, v := range m.Elements() {
		if s, ok := v.(types.String); ok {
			out[k] = s.ValueString()
		}
	}
	return out
}

// mapKnown: null, or known with every element known.
func mapKnown(m types.Map) bool {
	if m.IsNull() {
		return true
	}
	if m.IsUnknown() {
		return false
	}
	for _, v := range m.Elements() {
		if v.IsUnknown() {
			return false
		}
	}
	return true
}

// sameSpec compares two specs (a map field makes == unusable).
func sameSpec(a, b engine.VolumeSpec) bool { return reflect.DeepEqual(a, b) }

func (m sharedVolumeModel) anyUnknown() bool {
	return m.ClusterID.IsUnknown() || m.LUN.IsUnknown() || m.SizeGiB.IsUnknown() || m.Label.IsUnknown() ||
		m.DriveLetter.IsUnknown() || m.BlockSize.IsUnknown() || m.NodeSlots.IsUnknown() ||
		m.ForceFormat.IsUnknown() || m.ForceDestroy.IsUnknown() || m.ForceFormatOver.IsUnknown() || m.FileBacked.IsUnknown() ||
		m.DeviceID.IsUnknown() || m.DevicePaths.IsUnknown() || !mapKnown(m.DevicePaths)
}

func (r *sharedVolumeResource) toModel(ctx context.Context, v engine.Volume) (sharedVolumeModel, error) {
	mounts := make(map[string]int64, len(v.Mounts))
	for n, s := range v.Mounts {
		mounts[n] = int64(s)
	}
	mv, diags := types.MapValueFrom(ctx, types.Int64Type, mounts)
	if diags.HasError() {
		return sharedVolumeModel{}, fmt.Errorf("mounts: %v", diags)
	}
	m := sharedVolumeModel{
		ID:              types.StringValue(v.ID),
		ClusterID:       types.StringValue(v.Cluster),
		LUN:             nullIfEmpty(v.LUN),
		DeviceID:        nullIfEmpty(v.DeviceID),
		DevicePaths:     types.MapNull(types.StringType),
		SizeGiB:         types.Int64Value(v.SizeGiB),
		Label:           types.StringValue(v.Label),
		DriveLetter:     types.StringValue(v.DriveLetter),
		BlockSize:       types.Int64Value(int64(v.BlockSize)),
		NodeSlots:       types.Int64Value(int64(v.NodeSlots)),
		ForceFormat:     types.BoolValue(v.ForceFormat),
		ForceDestroy:    types.BoolValue(v.ForceDestroy),
		ForceFormatOver: types.StringNull(),
		FileBacked:      types.BoolValue(v.FileBacked),
		Mounts:          mv,
	}
	if v.ForceFormatOver != "" {
		m.ForceFormatOver = types.StringValue(v.ForceFormatOver)
	}
	if v.DevicePaths != nil {
		dp, diags := types.MapValueFrom(ctx, types.StringType, v.DevicePaths)
		if diags.HasError() {
			return m, fmt.Errorf("device_paths: %v", diags)
		}
		m.DevicePaths = dp
	}
	// Space and the LUN's state come from the nodes' reports in the
	// database: a read opens no device (the engine's volume_reports.go).
	st, err := r.engine.VolumeState(ctx, v)
	if err != nil {
		return m, err
	}
	if st.Lost != nil {
		// Reported (Read warns); destroy still works.
		m.UsedBytes, m.FreeBytes = types.Int64Value(0), types.Int64Value(0)
		return m, st.Lost
	}
	m.UsedBytes, m.FreeBytes = types.Int64Value(st.UsedBytes), types.Int64Value(st.FreeBytes)
	return m, nil
}

// warnReports says when the volume's reports may be out of date or a node
// cannot reach the LUN.
func (r *sharedVolumeResource) warnReports(ctx context.Context, v engine.Volume, diags *diag.Diagnostics) {
	st, err := r.engine.VolumeState(ctx, v)
	if err != nil || st.Lost != nil {
		return
	}
	for _, n := range slices.Sorted(maps.Keys(st.Unseen)) {
		diags.AddWarning(fmt.Sprintf("Volume %s: node %s does not reach its LUN", v.DriveLetter, n),
			fmt.Sprintf("The agent of %s last reported that it cannot reach LUN %q: %s. Its VMs cannot use volume %s: until it does.",
				n, v.LUN, st.Unseen[n], v.DriveLetter))
	}
	if len(st.Stale) == 0 {
		return
	}
	when := "no node has reported it yet"
	if st.By != "" {
		when = fmt.Sprintf("the newest report is %s's, %s old (at %s)", st.By,
			time.Since(st.ReportedAt).Round(time.Second), st.ReportedAt.Format(time.RFC3339))
	}
	diags.AddWarning(fmt.Sprintf("Volume %s: used_bytes and free_bytes may be out of date", v.DriveLetter),
		fmt.Sprintf("They come from what the nodes report into the cluster database, and %s; %s reported nothing newer than %s. "+
			"A node's agent (`kayoctl agent --node NAME`) reports on its heartbeat.", when, strings.Join(st.Stale, ", "), engine.VolumeReportStale))
}

// ValidateConfig judges each known attribute on its own, so a drive letter
// like "OO" or a block size of 5000 fails at plan time.
func (r *sharedVolumeResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var m sharedVolumeModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	base := engine.VolumeSpec{Cluster: "c", LUN: "lun", SizeGiB: 1, DriveLetter: "O", BlockSize: engine.DefaultBlockSize,
		NodeSlots: engine.DefaultNodeSlots}
	checks := []struct {
		known bool
		set   func(*engine.VolumeSpec)
	}{
		{!m.LUN.IsNull() && !m.LUN.IsUnknown(), func(s *engine.VolumeSpec) { s.LUN = m.LUN.ValueString() }},
		{!m.DriveLetter.IsNull() && !m.DriveLetter.IsUnknown(), func(s *engine.VolumeSpec) { s.DriveLetter = m.DriveLetter.ValueString() }},
		{!m.BlockSize.IsNull() && !m.BlockSize.IsUnknown(), func(s *engine.VolumeSpec) { s.BlockSize = int(m.BlockSize.ValueInt64()) }},
		{!m.NodeSlots.IsNull() && !m.NodeSlots.IsUnknown(), func(s *engine.VolumeSpec) { s.NodeSlots = int(m.NodeSlots.ValueInt64()) }},
		{!m.Label.IsNull() && !m.Label.IsUnknown(), func(s *engine.VolumeSpec) { s.Label = m.Label.ValueString() }},
		{!m.ForceFormatOver.IsNull() && !m.ForceFormatOver.IsUnknown(), func(s *engine.VolumeSpec) { s.ForceFormatOver = m.ForceFormatOver.ValueString() }},
	}
	// The LUN's naming (lun, device_id, device_paths) once all three are
	// known: an unknown one may still turn out null.
	if !m.LUN.IsUnknown() && !m.DeviceID.IsUnknown() && !m.DevicePaths.IsUnknown() && mapKnown(m.DevicePaths) {
		s := base
		s.LUN, s.DeviceID, s.DevicePaths = m.LUN.ValueString(), m.DeviceID.ValueString(), stringMap(m.DevicePaths)
		if err := engine.CheckVolumeSpec(s); err != nil {
			resp.Diagnostics.Append(engineDiags("Invalid shared volume configuration", err)...)
		}
	}
	for _, c := range checks {
		if !c.known {
			continue
		}
		s := base
		c.set(&s)
		if err := engine.CheckVolumeSpec(s); err != nil {
			resp.Diagnostics.Append(engineDiags("Invalid shared volume configuration", err)...)
		}
	}
}

// ModifyPlan checks against the committed database and the LUN: shrink,
// slots fewer than the cluster's nodes, a new drive letter taken in the
// cluster, a LUN mounted elsewhere or holding a file system. A new
// volume's letter or LUN that an existing volume holds is refused at
// apply (a replacement's create is planned without its prior state).
func (r *sharedVolumeResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if r.engine == nil || req.Plan.Raw.IsNull() {
		return
	}
	var plan, state sharedVolumeModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if !req.State.Raw.IsNull() {
		resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	}
	if resp.Diagnostics.HasError() || plan.anyUnknown() {
		return
	}
	id := ""
	if !req.State.Raw.IsNull() {
		if !plan.ClusterID.Equal(state.ClusterID) || !plan.LUN.Equal(state.LUN) || !plan.BlockSize.Equal(state.BlockSize) ||
			!plan.DeviceID.Equal(state.DeviceID) || plan.DevicePaths.IsNull() != state.DevicePaths.IsNull() {
			// A replacement: Terraform plans its create again, without
			// the prior state; that call checks the new volume.
			return
		}
		if sameSpec(plan.spec(), state.spec()) {
			r.warnUnmounted(ctx, state, &resp.Diagnostics)
			return // nothing changes
		}
		id = state.ID.ValueString()
	}
	ctx, w := withWaitRecorder(ctx)
	err := r.engine.CheckVolumePlan(ctx, id, plan.spec())
	w.report(&resp.Diagnostics, "Checking shared volume "+plan.DriveLetter.ValueString()+":")
	if err != nil {
		resp.Diagnostics.Append(engineDiags("Invalid shared volume "+plan.DriveLetter.ValueString()+":", err)...)
	}
}

// warnUnmounted says when nodes of the cluster do not mount the volume
// (the cluster grew past node_slots): applying a larger node_slots mounts
// them.
func (r *sharedVolumeResource) warnUnmounted(ctx context.Context, state sharedVolumeModel, diags *diag.Diagnostics) {
	missing, v, err := r.engine.VolumeUnmountedNodes(ctx, state.ID.ValueString())
	if err != nil || len(missing) == 0 {
		return
	}
	diags.AddAttributeWarning(path.Root("node_slots"), fmt.Sprintf("Volume %s: is not mounted on %d node(s)", v.DriveLetter, len(missing)),
		fmt.Sprintf("%s of cluster %q do not mount volume %s: (%s): its %d node slots are taken. Raise node_slots to at least %d "+
			"and apply; the change mounts them.", strings.Join(missing, ", "), v.Cluster, v.DriveLetter, v.ID, v.NodeSlots, len(v.Mounts)+len(missing)))
}

func (r *sharedVolumeResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var m sharedVolumeModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	s := m.spec()
	ctx, w := withWaitRecorder(ctx)
	v, err := r.engine.CreateVolume(ctx, s)
	w.report(&resp.Diagnostics, "Creating shared volume "+s.DriveLetter+":")
	if err != nil {
		resp.Diagnostics.Append(engineDiags("Cannot create shared volume "+s.DriveLetter+": on cluster "+s.Cluster, err)...)
		return
	}
	out, err := r.toModel(ctx, v)
	if err != nil {
		resp.Diagnostics.AddError("Cannot read shared volume "+s.DriveLetter+":", err.Error())
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, out)...)
}

func (r *sharedVolumeResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var m sharedVolumeModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, w := withWaitRecorder(ctx)
	v, err := r.engine.GetVolume(ctx, m.ID.ValueString())
	w.report(&resp.Diagnostics, "Reading shared volume "+m.ID.ValueString())
	if errors.Is(err, engine.ErrNotFound) {
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		resp.Diagnostics.Append(engineDiags("Cannot read shared volume "+m.ID.ValueString(), err)...)
		return
	}
	out, err := r.toModel(ctx, v)
	if errors.Is(err, engine.ErrLUNLost) {
		resp.Diagnostics.AddWarning("Volume "+v.DriveLetter+": its LUN no longer holds it", err.Error())
	} else if err == nil {
		r.warnReports(ctx, v, &resp.Diagnostics)
	} else if err != nil {
		resp.Diagnostics.AddError("Cannot read shared volume "+v.DriveLetter+":", err.Error())
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, out)...)
}

func (r *sharedVolumeResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var m, state sharedVolumeModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	s := m.spec()
	ctx, w := withWaitRecorder(ctx)
	v, err := r.engine.UpdateVolume(ctx, state.ID.ValueString(), s)
	w.report(&resp.Diagnostics, "Changing shared volume "+s.DriveLetter+":")
	if err != nil {
		resp.Diagnostics.Append(engineDiags("Cannot change shared volume "+state.DriveLetter.ValueString()+":", err)...)
		return
	}
	out, err := r.toModel(ctx, v)
	if err != nil {
		resp.Diagnostics.AddError("Cannot read shared volume "+s.DriveLetter+":", err.Error())
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, out)...)
}

func (r *sharedVolumeResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var m sharedVolumeModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, w := withWaitRecorder(ctx)
	ctx, notes := engine.WithNotes(ctx)
	err := r.engine.DeleteVolume(ctx, m.ID.ValueString(), m.ForceDestroy.ValueBool())
	w.report(&resp.Diagnostics, "Destroying shared volume "+m.DriveLetter.ValueString()+":")
	reportNotes(&resp.Diagnostics, notes)
	if err != nil && !errors.Is(err, engine.ErrNotFound) {
		resp.Diagnostics.Append(engineDiags("Cannot destroy shared volume "+m.DriveLetter.ValueString()+":", err)...)
	}
}

// ImportState takes the volume UUID or "cluster/letter" (e.g. HVCLUSTER/O).
func (r *sharedVolumeResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	if r.engine == nil {
		resp.Diagnostics.AddError("Provider not configured", "cannot import before the provider is configured")
		return
	}
	v, err := r.engine.LookupVolume(ctx, strings.TrimSpace(req.ID))
	if err != nil {
		resp.Diagnostics.AddError("Cannot import shared volume "+req.ID,
			err.Error()+"\n\nThe import ID is the volume UUID or CLUSTER/LETTER, e.g. HVCLUSTER/O.")
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), v.ID)...)
}
