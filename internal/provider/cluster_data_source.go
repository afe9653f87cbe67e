package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
)

var _ datasource.DataSourceWithConfigure = (*clusterDataSource)(nil)

// NewClusterDataSource is the kayo_cluster data source.
func NewClusterDataSource() datasource.DataSource { return &clusterDataSource{} }

type clusterDataSource struct{ engine *engine.Engine }

func (d *clusterDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_cluster"
}

func (d *clusterDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Reads a formed cluster by name: its nodes, address, settings and validation report.",
		Attributes: map[string]schema.Attribute{
			"id":   schema.StringAttribute{Computed: true, MarkdownDescription: "The cluster name."},
			"name": schema.StringAttribute{Required: true, MarkdownDescription: "The cluster name."},
			"nodes": schema.SetAttribute{Computed: true, ElementType: types.StringType,
				MarkdownDescription: "Host names of the nodes."},
			"static_address": schema.StringAttribute{Computed: true, MarkdownDescription: "Administrative address (CIDR)."},
			"hypervisor":     schema.StringAttribute{Computed: true, MarkdownDescription: "The VM runtime."},
			"heartbeat_timeout_seconds": schema.Int64Attribute{Computed: true,
				MarkdownDescription: "Seconds of silence after which a node is down."},
			"force_destroy": schema.BoolAttribute{Computed: true,
				MarkdownDescription: "Whether the cluster may be torn down without quorum (see `kayo_cluster`)."},
			"validation": schema.ListNestedAttribute{Computed: true, MarkdownDescription: validationSchemaDescription(),
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"category": schema.StringAttribute{Computed: true, MarkdownDescription: "Test category."},
					"test":     schema.StringAttribute{Computed: true, MarkdownDescription: "Test name."},
					"result":   schema.StringAttribute{Computed: true, MarkdownDescription: "`passed`, `warning` or `failed`."},
					"message":  schema.StringAttribute{Computed: true, MarkdownDescription: "What the test found."},
					"source":   schema.StringAttribute{Computed: true, MarkdownDescription: "`declared` or `probed` (see `kayo_cluster`)."},
					"agents": schema.ListNestedAttribute{Computed: true, MarkdownDescription: "For a `probed` test, the nodes whose agents' data it used, and when.",
						NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
							"node": schema.StringAttribute{Computed: true, MarkdownDescription: "The node whose agent made the data."},
							"at":   schema.StringAttribute{Computed: true, MarkdownDescription: "When (RFC 3339, UTC)."},
						}}},
					"probes": validationProbesDataSchema(),
				}},
			},
			"validated_at": schema.StringAttribute{Computed: true, MarkdownDescription: "When `validation` was made (RFC 3339, UTC)."},
		},
	}
}

func (d *clusterDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.engine = engineFrom(req.ProviderData, &resp.Diagnostics)
}

func (d *clusterDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var name types.String
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, pathName, &name)...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, w := withWaitRecorder(ctx)
	c, err := d.engine.GetCluster(ctx, name.ValueString())
	w.report(&resp.Diagnostics, "Reading cluster "+name.ValueString())
	if err != nil {
		resp.Diagnostics.Append(engineDiags("Cannot read cluster "+name.ValueString(), err)...)
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, clusterToModel(c))...)
}

// validationProbesDataSchema is validation[*].probes (validationProbesSchema).
func validationProbesDataSchema() schema.ListNestedAttribute {
	return schema.ListNestedAttribute{Computed: true, MarkdownDescription: "For \"Validate Network Communication\" made " +
		"from the agents' probes, each probe (see `kayo_cluster`).",
		NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
			"from":      schema.StringAttribute{Computed: true, MarkdownDescription: "The probing node."},
			"to":        schema.StringAttribute{Computed: true, MarkdownDescription: "The probed node."},
			"network":   schema.StringAttribute{Computed: true, MarkdownDescription: "The cluster network (CIDR)."},
			"reachable": schema.BoolAttribute{Computed: true, MarkdownDescription: "Whether the probed node answered."},
			"rtt_ms":    schema.Float64Attribute{Computed: true, MarkdownDescription: "The round trip in milliseconds (0 when unreachable)."},
		}}}
}
