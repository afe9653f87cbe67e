package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
)

var _ datasource.DataSourceWithConfigure = (*vmDataSource)(nil)

// NewVirtualMachineDataSource is the kayo_virtual_machine data source.
func NewVirtualMachineDataSource() datasource.DataSource { return &vmDataSource{} }

type vmDataSource struct{ engine *engine.Engine }

type vmDataModel struct {
	ID              types.String `tfsdk:"id"`
	ClusterID       types.String `tfsdk:"cluster_id"`
	Name            types.String `tfsdk:"name"`
	VolumeID        types.String `tfsdk:"volume_id"`
	MemoryMB        types.Int64  `tfsdk:"memory_mb"`
	ProcessorCount  types.Int64  `tfsdk:"processor_count"`
	VHD             types.Object `tfsdk:"vhd"`
	NetworkAdapters types.List   `tfsdk:"network_adapters"`
	OwnerNode       types.String `tfsdk:"owner_node"`
	PreferredOwners types.List   `tfsdk:"preferred_owners"`
	PossibleOwners  types.Set    `tfsdk:"possible_owners"`
	Migration       types.String `tfsdk:"migration"`
	State           types.String `tfsdk:"state"`
	CurrentNode     types.String `tfsdk:"current_node"`
	Status          types.String `tfsdk:"status"`
	StatusReason    types.String `tfsdk:"status_reason"`
	VHDPath         types.String `tfsdk:"vhd_path"`
	ConfigPath      types.String `tfsdk:"config_path"`
	LastMigration   types.Object `tfsdk:"last_migration"`
}

func (d *vmDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_virtual_machine"
}

func (d *vmDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	str := func(desc string) schema.StringAttribute {
		return schema.StringAttribute{Computed: true, MarkdownDescription: desc}
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "Reads a clustered VM: where it runs (`current_node`), its status, its files on the shared volume " +
			"and its last migration. " + vmSimulatedNote,
		Attributes: map[string]schema.Attribute{
			"cluster_id":      schema.StringAttribute{Required: true, MarkdownDescription: "The cluster name."},
			"name":            schema.StringAttribute{Required: true, MarkdownDescription: "The VM name."},
			"id":              str("`cluster/name`."),
			"volume_id":       str("The shared volume (UUID) holding the VM's files."),
			"memory_mb":       schema.Int64Attribute{Computed: true, MarkdownDescription: "Memory in MB."},
			"processor_count": schema.Int64Attribute{Computed: true, MarkdownDescription: "Virtual processors."},
			"vhd": schema.SingleNestedAttribute{Computed: true, MarkdownDescription: "The virtual disk.",
				Attributes: map[string]schema.Attribute{
					"size_gib": schema.Int64Attribute{Computed: true}, "type": schema.StringAttribute{Computed: true},
					"source": schema.StringAttribute{Computed: true, MarkdownDescription: "The template the disk was made from, or null."},
					"clone":  schema.StringAttribute{Computed: true, MarkdownDescription: "`differencing` or `copy` (with `source`)."}}},
			"network_adapters": schema.ListNestedAttribute{Computed: true, MarkdownDescription: "Network adapters.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"switch": schema.StringAttribute{Computed: true}, "mac_address": schema.StringAttribute{Computed: true},
					"ip_addresses": schema.ListAttribute{Computed: true, ElementType: types.StringType,
						MarkdownDescription: "The addresses the guest is seen using on the adapter (its lease from the node's DHCP server, or an ARP answer); empty while off."}}}},
			"owner_node":       str("The pin, or null."),
			"preferred_owners": schema.ListAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "Preferred owners, in order."},
			"possible_owners":  schema.SetAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "Possible owners (null: every node)."},
			"migration":        str("`live` or `quick`."),
			"state":            str("The desired state, `running` or `off`."),
			"current_node":     str("The node the VM runs on (its owner)."),
			"status":           str("`running`, `off`, `migrating` or `failed`."),
			"status_reason":    str("Why the VM is failed, or off though `state` is `running` (e.g. its node agent stopped its QEMU process); else empty."),
			"vhd_path":         str("The VHD as nodes see it, e.g. `O:\\WEB01\\WEB01.vhd`."),
			"config_path":      str("The configuration file beside it."),
			"last_migration": schema.SingleNestedAttribute{Computed: true, MarkdownDescription: "The last migration, or null.",
				Attributes: map[string]schema.Attribute{
					"type": schema.StringAttribute{Computed: true}, "from": schema.StringAttribute{Computed: true},
					"to": schema.StringAttribute{Computed: true}, "duration_ms": schema.Int64Attribute{Computed: true},
					"downtime_ms": schema.Int64Attribute{Computed: true}}},
		},
	}
}

func (d *vmDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.engine = engineFrom(req.ProviderData, &resp.Diagnostics)
}

func (d *vmDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m vmDataModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, w := withWaitRecorder(ctx)
	vm, err := d.engine.ObservedVM(ctx, m.ClusterID.ValueString(), m.Name.ValueString())
	w.report(&resp.Diagnostics, "Reading VM "+m.Name.ValueString())
	if err != nil {
		resp.Diagnostics.Append(vmDiags("Cannot read VM "+m.Name.ValueString(), err)...)
		return
	}
	vm = d.engine.ReportedVM(ctx, vm)
	r := vmToModel(vm, vmModel{NetworkAdapters: types.ListNull(vmAdapterObjType), PreferredOwners: types.ListNull(types.StringType),
		Failback: types.ObjectNull(failbackAttrTypes)})
	if len(vm.Adapters) == 0 {
		r.NetworkAdapters = types.ListValueMust(vmAdapterObjType, []attr.Value{})
	} else {
		r = withGuestNet(ctx, d.engine, vm, r, &resp.Diagnostics) // virtual_machine_guest_net.go
	}
	out := vmDataModel{ID: r.ID, ClusterID: r.ClusterID, Name: r.Name, VolumeID: r.VolumeID, MemoryMB: r.MemoryMB,
		ProcessorCount: r.ProcessorCount, VHD: r.VHD, NetworkAdapters: r.NetworkAdapters, OwnerNode: r.OwnerNode,
		PreferredOwners: r.PreferredOwners, PossibleOwners: r.PossibleOwners, Migration: r.Migration,
		State: types.StringValue(vm.State), CurrentNode: r.CurrentNode, Status: r.Status, StatusReason: r.StatusReason,
		VHDPath: r.VHDPath, ConfigPath: r.ConfigPath, LastMigration: r.LastMigration}
	resp.Diagnostics.Append(resp.State.Set(ctx, out)...)
}
