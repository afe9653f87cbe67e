package provider

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
)

var (
	_ resource.ResourceWithConfigure   = (*volumeFileResource)(nil)
	_ resource.ResourceWithImportState = (*volumeFileResource)(nil)
	_ resource.ResourceWithModifyPlan  = (*volumeFileResource)(nil)
)

// NewVolumeFileResource is the kayo_volume_file resource.
func NewVolumeFileResource() resource.Resource { return &volumeFileResource{} }

type volumeFileResource struct{ engine *engine.Engine }

type volumeFileModel struct {
	ID        types.String `tfsdk:"id"`
	VolumeID  types.String `tfsdk:"volume_id"`
	Path      types.String `tfsdk:"path"`
	Source    types.String `tfsdk:"source"`
	Kind      types.String `tfsdk:"kind"`
	SHA256    types.String `tfsdk:"sha256"`
	SizeBytes types.Int64  `tfsdk:"size_bytes"`
}

func (r *volumeFileResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_volume_file"
}

func (r *volumeFileResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "A file put on a shared volume from a local file: a template VHD that `kayo_virtual_machine`'s " +
			"`vhd.source` makes disks from, or an ISO for a VM's `dvd`. A `*.vhd` must be a valid standalone (fixed or dynamic) " +
			"VHD and an `*.iso` an ISO 9660 image: checked at plan time, before anything is written. The file is written under " +
			"a temporary name and renamed into place, between an intent and a completion record in the cluster database.\n\n" +
			"New content (the local file's sha256 changed) replaces the file. A template is read-only while differencing " +
			"disks made from it exist: deleting or replacing it is refused, naming those VMs (so is an ISO in a VM's DVD " +
			"drive). `kayoctl volume cp LOCAL VOLUME:PATH` does the same from the command line.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{Computed: true, MarkdownDescription: "`<volume UUID>:<path>`, e.g. " +
				"`6f1c…:templates\\base.vhd` (the import ID).",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()}},
			"volume_id": schema.StringAttribute{Required: true, MarkdownDescription: "The shared volume (`kayo_shared_volume.*.id`). " +
				"Changing it replaces the file.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()}},
			"path": schema.StringAttribute{Required: true, MarkdownDescription: "The path on the volume, e.g. `templates\\base.vhd` " +
				"(`/` works too): 1 to 8 names of letters, digits, `-`, `_`, `.` and spaces. Changing it replaces the file.",
				Validators:    []validator.String{volumePathValidator{}},
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()}},
			"source": schema.StringAttribute{Required: true, MarkdownDescription: "The local file to copy, read by the " +
				"machine running Terraform, which needs no access to the volume's LUN: the provider sends the bytes through the " +
				"cluster database, in chunks, to the agent of one of the volume's nodes, which writes them on its own mount and " +
				"checks their SHA-256 before renaming the file into place (removing the file is done by a node's agent too). " +
				"At most 256 MiB with the cluster database on etcd and 16 GiB on the embedded one: checked at plan time. " +
				"Pointing it at another file with the same content changes nothing on the volume."},
			"kind": schema.StringAttribute{Computed: true, MarkdownDescription: "`vhd`, `iso` or `file`, from the path's extension.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()}},
			"sha256":     schema.StringAttribute{Computed: true, MarkdownDescription: "The content's SHA-256 (hex), known at plan."},
			"size_bytes": schema.Int64Attribute{Computed: true, MarkdownDescription: "The file's size in bytes, known at plan."},
		},
	}
}

func (r *volumeFileResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.engine = engineFrom(req.ProviderData, &resp.Diagnostics)
}

// volumePathValidator applies the engine's path rule at validation.
type volumePathValidator struct{}

func (volumePathValidator) Description(context.Context) string {
	return "a relative path on the volume, e.g. templates\\base.vhd"
}
func (v volumePathValidator) MarkdownDescription(ctx context.Context) string {
	return v.Description(ctx)
}
func (volumePathValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if _, _, err := engine.VolumeFilePath("path", req.ConfigValue.ValueString()); err != nil {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid volume path", err.Error())
	}
}

func (r *volumeFileResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() || r.engine == nil {
		return
	}
	var plan, state volumeFileModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	hasState := !req.State.Raw.IsNull()
	if hasState {
		resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	}
	if resp.Diagnostics.HasError() || plan.Source.IsUnknown() || plan.Path.IsUnknown() {
		return
	}
	// A put carries the file through the cluster database to a node's
	// agent, up to a size known now (checked before the file is read).
	if st, err := os.Stat(plan.Source.ValueString()); err == nil {
		if err := r.engine.CheckVolumeFilePut(plan.Source.ValueString(), st.Size()); err != nil {
			resp.Diagnostics.Append(engineDiags("Cannot put "+plan.Path.ValueString()+" on the volume", err)...)
			return
		}
	}
	// The local file is checked now: nothing is written when it is bad.
	f, err := engine.InspectVolumeFile(plan.Source.ValueString(), plan.Path.ValueString())
	if err != nil {
		resp.Diagnostics.Append(engineDiags("Cannot put "+plan.Path.ValueString()+" on the volume", err)...)
		return
	}
	plan.Kind, plan.SHA256, plan.SizeBytes = types.StringValue(f.Kind), types.StringValue(f.SHA256), types.Int64Value(f.SizeBytes)
	if hasState && !state.SHA256.IsNull() && state.SHA256.ValueString() != f.SHA256 {
		resp.RequiresReplace = append(resp.RequiresReplace, path.Root("sha256"))
		plan.ID = types.StringUnknown()
	}
	// A file already at path with other content (not this resource's) is
	// refused by apply: a replacement's create plan looks the same here.
	resp.Diagnostics.Append(resp.Plan.Set(ctx, plan)...)
}

func (r *volumeFileResource) put(ctx context.Context, m volumeFileModel) (volumeFileModel, error) {
	f, err := r.engine.PutVolumeFile(ctx, engine.VolumeFileSpec{Volume: m.VolumeID.ValueString(), Path: m.Path.ValueString(),
		Source: m.Source.ValueString()})
	if err != nil {
		return m, err
	}
	return volumeFileToModel(f, m), nil
}

func volumeFileToModel(f engine.VolumeFile, prior volumeFileModel) volumeFileModel {
	m := prior
	m.ID, m.VolumeID = types.StringValue(f.ID()), types.StringValue(f.Volume)
	if prior.Path.IsNull() || prior.Path.IsUnknown() || !samePath(prior.Path.ValueString(), f.Path) {
		m.Path = types.StringValue(f.Path)
	}
	m.Kind, m.SHA256, m.SizeBytes = types.StringValue(f.Kind), types.StringValue(f.SHA256), types.Int64Value(f.SizeBytes)
	return m
}

func (r *volumeFileResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	r.putPlanned(ctx, req.Plan, &resp.State, &resp.Diagnostics)
}

// putPlanned puts the planned file on the volume and records it: Create,
// and Update (only source changed, to a file of the same content: the put
// keeps what the volume holds).
func (r *volumeFileResource) putPlanned(ctx context.Context, plan tfsdk.Plan, state *tfsdk.State, diags *diag.Diagnostics) {
	var m volumeFileModel
	diags.Append(plan.Get(ctx, &m)...)
	if diags.HasError() {
		return
	}
	out, err := r.put(ctx, m)
	if err != nil {
		diags.Append(engineDiags("Cannot put "+m.Path.ValueString()+" on the volume", err)...)
		return
	}
	diags.Append(state.Set(ctx, out)...)
}

func (r *volumeFileResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var m volumeFileModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	vol, p := m.VolumeID.ValueString(), m.Path.ValueString()
	if vol == "" || p == "" {
		vol, p, _ = strings.Cut(m.ID.ValueString(), ":")
	}
	f, err := r.engine.GetVolumeFile(ctx, vol, p)
	if errors.Is(err, engine.ErrNotFound) || err == nil && f.Writing {
		resp.State.RemoveResource(ctx) // gone, or a put that never completed: put it again
		return
	}
	if err != nil {
		resp.Diagnostics.Append(engineDiags("Cannot read "+p, err)...)
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, volumeFileToModel(f, m))...)
}

func (r *volumeFileResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	r.putPlanned(ctx, req.Plan, &resp.State, &resp.Diagnostics)
}

func (r *volumeFileResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var m volumeFileModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if err := r.engine.DeleteVolumeFile(ctx, m.VolumeID.ValueString(), m.Path.ValueString()); err != nil {
		resp.Diagnostics.Append(engineDiags("Cannot delete "+m.Path.ValueString(), err)...)
	}
}

// ImportState takes <volume UUID>:<path>.
func (r *volumeFileResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	vol, p, ok := strings.Cut(req.ID, ":")
	if !ok || vol == "" || p == "" {
		resp.Diagnostics.AddError("Invalid import ID", fmt.Sprintf("%q is not a volume file import ID; allowed: VOLUME_UUID:PATH, "+
			`e.g. 6f1c2a4e-…:templates\base.vhd`, req.ID))
		return
	}
	f, err := r.engine.GetVolumeFile(ctx, vol, p)
	if err != nil {
		resp.Diagnostics.Append(engineDiags("Cannot import "+req.ID, err)...)
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), f.ID())...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("volume_id"), f.Volume)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("path"), f.Path)...)
}
