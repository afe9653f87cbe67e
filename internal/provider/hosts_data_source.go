package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
)

var _ datasource.DataSourceWithConfigure = (*hostsDataSource)(nil)

// NewHostsDataSource is the kayo_hosts data source.
func NewHostsDataSource() datasource.DataSource { return &hostsDataSource{} }

type hostsDataSource struct{ engine *engine.Engine }

type hostsDataModel struct {
	Cluster types.String `tfsdk:"cluster"`
	State   types.String `tfsdk:"state"`
	Names   types.List   `tfsdk:"names"`
	Hosts   types.List   `tfsdk:"hosts"`
}

var hostSummaryAttrTypes = map[string]attr.Type{
	"name":             types.StringType,
	"address":          types.StringType,
	"os_edition":       types.StringType,
	"processor_vendor": types.StringType,
	"processor_model":  types.StringType,
	"processor_cores":  types.Int64Type,
	"memory_mb":        types.Int64Type,
	"features":         types.SetType{ElemType: types.StringType},
	"network_adapters": types.ListType{ElemType: types.ObjectType{AttrTypes: adapterAttrTypes}},
	"maintenance":      types.BoolType,
	"state":            types.StringType,
	"cluster":          types.StringType,
}

func (d *hostsDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_hosts"
}

func (d *hostsDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	adapter := schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
		"name":    schema.StringAttribute{Computed: true, MarkdownDescription: "Adapter name."},
		"network": schema.StringAttribute{Computed: true, MarkdownDescription: "Network in CIDR form."},
		"address": schema.StringAttribute{Computed: true, MarkdownDescription: "Adapter address."},
	}}
	resp.Schema = schema.Schema{
		MarkdownDescription: "Lists the hosts registered with the cluster manager, optionally only those of one " +
			"cluster or in one state.",
		Attributes: map[string]schema.Attribute{
			"cluster": schema.StringAttribute{Optional: true,
				MarkdownDescription: "Only hosts that are nodes of this cluster; `\"\"` for hosts in no cluster."},
			"state": schema.StringAttribute{Optional: true,
				MarkdownDescription: "Only hosts in this state: `up`, `down` or `maintenance`."},
			"names": schema.ListAttribute{Computed: true, ElementType: types.StringType,
				MarkdownDescription: "Names of the matching hosts, sorted."},
			"hosts": schema.ListNestedAttribute{Computed: true, MarkdownDescription: "The matching hosts, by name.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"name":             schema.StringAttribute{Computed: true, MarkdownDescription: "Host name."},
					"address":          schema.StringAttribute{Computed: true, MarkdownDescription: "Management address."},
					"os_edition":       schema.StringAttribute{Computed: true, MarkdownDescription: "Windows Server edition."},
					"processor_vendor": schema.StringAttribute{Computed: true, MarkdownDescription: "`intel` or `amd`."},
					"processor_model":  schema.StringAttribute{Computed: true, MarkdownDescription: "Processor model."},
					"processor_cores":  schema.Int64Attribute{Computed: true, MarkdownDescription: "Processor cores."},
					"memory_mb":        schema.Int64Attribute{Computed: true, MarkdownDescription: "Memory in MiB."},
					"features": schema.SetAttribute{Computed: true, ElementType: types.StringType,
						MarkdownDescription: "Installed features."},
					"network_adapters": schema.ListNestedAttribute{Computed: true, NestedObject: adapter,
						MarkdownDescription: "Network adapters."},
					"maintenance": schema.BoolAttribute{Computed: true, MarkdownDescription: "In maintenance."},
					"state":       schema.StringAttribute{Computed: true, MarkdownDescription: "`up`, `down` or `maintenance`."},
					"cluster":     schema.StringAttribute{Computed: true, MarkdownDescription: "The cluster it is a node of, or `\"\"`."},
				}},
			},
		},
	}
}

func (d *hostsDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.engine = engineFrom(req.ProviderData, &resp.Diagnostics)
}

func (d *hostsDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m hostsDataModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, w := withWaitRecorder(ctx)
	hosts, err := d.engine.ListHosts(ctx)
	w.report(&resp.Diagnostics, "Listing hosts")
	if err != nil {
		resp.Diagnostics.Append(engineDiags("Cannot list hosts", err)...)
		return
	}
	names := []attr.Value{}
	objs := []attr.Value{}
	for _, h := range hosts {
		if !m.Cluster.IsNull() && h.Cluster != m.Cluster.ValueString() {
			continue
		}
		if !m.State.IsNull() && h.State() != m.State.ValueString() {
			continue
		}
		hm := hostToModel(h)
		names = append(names, hm.Name)
		objs = append(objs, types.ObjectValueMust(hostSummaryAttrTypes, map[string]attr.Value{
			"name": hm.Name, "address": hm.Address, "os_edition": hm.OSEdition,
			"processor_vendor": hm.ProcessorVendor, "processor_model": hm.ProcessorModel,
			"processor_cores": hm.ProcessorCores, "memory_mb": hm.MemoryMB, "features": hm.Features,
			"network_adapters": hm.NetworkAdapters, "maintenance": hm.Maintenance, "state": hm.State,
			"cluster": types.StringValue(h.Cluster),
		}))
	}
	m.Names = types.ListValueMust(types.StringType, names)
	m.Hosts = types.ListValueMust(types.ObjectType{AttrTypes: hostSummaryAttrTypes}, objs)
	resp.Diagnostics.Append(resp.State.Set(ctx, m)...)
}
