// Command noop is a provider that does nothing: its resources, noop_thing
// and noop_vm (vm.go: kayo_virtual_machine's schema), only copy the plan
// into state on create, read, update and delete. It is built with the same plugin framework as the kayo provider and serves as the
// "Terraform plus a plugin" floor of the lifecycle benchmark in bench/.
package main

import (
	"context"
	"flag"
	"log"
	"os"
	rdebug "runtime/debug"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	pschema "github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/kayo-labs/terraform-provider-kayo/internal/sdklogs"
)

func main() {
	var debug bool
	flag.BoolVar(&debug, "debug", false, "run with support for debuggers")
	flag.Parse()
	sdklogs.QuietUnlessAsked() // as the kayo provider does: a like-for-like floor
	if os.Getenv("GOGC") == "" {
		rdebug.SetGCPercent(400) // the kayo provider's collector setting (main.go), likewise
	}
	stopProfile := startProfile()
	err := providerserver.Serve(context.Background(), func() provider.Provider { return &noopProvider{} },
		providerserver.ServeOpts{Address: "local/bench/noop", Debug: debug})
	stopProfile()
	if err != nil {
		log.Fatal(err)
	}
}

type noopProvider struct{}

func (p *noopProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "noop"
	resp.Version = "0.1.0"
}

func (p *noopProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = pschema.Schema{Description: "A provider that does nothing (benchmark floor)."}
}

func (p *noopProvider) Configure(context.Context, provider.ConfigureRequest, *provider.ConfigureResponse) {
}

func (p *noopProvider) Resources(context.Context) []func() resource.Resource {
	return []func() resource.Resource{func() resource.Resource { return &thing{} }, func() resource.Resource { return &vmShape{} }}
}

func (p *noopProvider) DataSources(context.Context) []func() datasource.DataSource { return nil }

type thing struct{}

type thingModel struct {
	ID      types.String `tfsdk:"id"`
	Name    types.String `tfsdk:"name"`
	Address types.String `tfsdk:"address"`
	Edition types.String `tfsdk:"edition"`
	Model   types.String `tfsdk:"model"`
	Cores   types.Int64  `tfsdk:"cores"`
	Memory  types.Int64  `tfsdk:"memory_mb"`
}

func (r *thing) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_thing"
}

func (r *thing) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "A thing that exists only in state.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed:      true,
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"name": schema.StringAttribute{
				Required:      true,
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"address":   schema.StringAttribute{Optional: true},
			"edition":   schema.StringAttribute{Optional: true},
			"model":     schema.StringAttribute{Optional: true},
			"cores":     schema.Int64Attribute{Optional: true},
			"memory_mb": schema.Int64Attribute{Optional: true},
		},
	}
}

func (r *thing) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var m thingModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	m.ID = m.Name
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *thing) Read(context.Context, resource.ReadRequest, *resource.ReadResponse) {
	// The prior state is already in resp.State: nothing to refresh.
}

func (r *thing) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var m thingModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *thing) Delete(context.Context, resource.DeleteRequest, *resource.DeleteResponse) {
	// The framework removes the resource from state.
}

func (r *thing) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}
