// Package provider is the thin Terraform layer over internal/engine:
// schemas, validators, plan modifiers and model conversion.
package provider

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/function"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
)

// Address is the provider's source address. It names a hostname explicitly
// so Terraform and OpenTofu resolve it alike from a filesystem mirror.
const Address = "local/kayo/kayo"

// EnvDataDir overrides the default data directory.
const EnvDataDir = "KAYO_DATA_DIR"

var (
	_ provider.Provider                   = (*kayoProvider)(nil)
	_ provider.ProviderWithFunctions      = (*kayoProvider)(nil)
	_ provider.ProviderWithValidateConfig = (*kayoProvider)(nil)
)

type kayoProvider struct {
	version string

	// Engines are shared per data dir within the plugin process.
	mu      sync.Mutex
	engines map[string]*engine.Engine
}

type providerModel struct {
	DataDir     types.String `tfsdk:"data_dir"`
	LockTimeout types.String `tfsdk:"lock_timeout"`
}

// New returns the provider factory for providerserver.
func New(version string) func() provider.Provider {
	return func() provider.Provider {
		return &kayoProvider{version: version, engines: map[string]*engine.Engine{}}
	}
}

func (p *kayoProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "kayo"
	resp.Version = p.version
}

func (p *kayoProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "The kayo provider declares a Hyper-V failover cluster whose virtual machines live " +
			"on one shared Kayo FS volume. By default the cluster database and the embedded SAN live in a " +
			"local `data_dir`.",
		Attributes: map[string]schema.Attribute{
			"data_dir": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "Directory of the embedded cluster database and SAN. Defaults to the " +
					"`KAYO_DATA_DIR` environment variable, else `.kayo` in the working directory. Several " +
					"Terraform runs, `kayoctl` and agents may share one data directory.",
			},
			"lock_timeout": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "How long one operation waits for the cluster database while another " +
					"process holds it, as a Go duration (`30s`, `2m`). Default `30s`.",
				Validators: []validator.String{durationValidator{}},
			},
		},
	}
}

func (p *kayoProvider) ValidateConfig(ctx context.Context, req provider.ValidateConfigRequest, resp *provider.ValidateConfigResponse) {
	var m providerModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
}

func (p *kayoProvider) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	var m providerModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	dataDir := engine.DefaultDataDir
	if v := os.Getenv(EnvDataDir); v != "" {
		dataDir = v
	}
	if !m.DataDir.IsNull() && !m.DataDir.IsUnknown() && m.DataDir.ValueString() != "" {
		dataDir = m.DataDir.ValueString()
	}
	timeout := engine.DefaultLockTimeout
	if !m.LockTimeout.IsNull() && !m.LockTimeout.IsUnknown() {
		d, err := time.ParseDuration(m.LockTimeout.ValueString())
		if err != nil || d <= 0 {
			resp.Diagnostics.AddAttributeError(path.Root("lock_timeout"), "Invalid lock_timeout",
				fmt.Sprintf("lock_timeout %q is not a positive Go duration; allowed: e.g. \"30s\", \"2m\"", m.LockTimeout.ValueString()))
			return
		}
		timeout = d
	}
	e, err := p.engine(dataDir, timeout)
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("data_dir"), "Cannot open the cluster database", err.Error())
		return
	}
	tflog.Debug(ctx, "kayo engine ready", map[string]any{"data_dir": e.DataDir(), "lock_timeout": timeout.String()})
	resp.ResourceData = e
	resp.DataSourceData = e
}

func (p *kayoProvider) engine(dataDir string, timeout time.Duration) (*engine.Engine, error) {
	key := dataDir + "\x00" + timeout.String()
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.engines[key]; ok {
		return e, nil
	}
	e, err := engine.Open(engine.Config{DataDir: dataDir, LockTimeout: timeout, OnWait: logWait})
	if err != nil {
		return nil, err
	}
	p.engines[key] = e
	return e, nil
}

// logWait says that an operation waits for another process.
func logWait(ctx context.Context, waited, limit time.Duration) {
	tflog.Warn(ctx, fmt.Sprintf("waiting for the kayo cluster database, held by another process (%s of at most %s, the provider's lock_timeout)",
		waited.Round(time.Millisecond), limit))
	noteWait(ctx, waited)
}

func (p *kayoProvider) Resources(_ context.Context) []func() resource.Resource {
	return []func() resource.Resource{
		NewHostResource,
		NewClusterResource,
		NewQuorumResource,
	}
}

func (p *kayoProvider) DataSources(_ context.Context) []func() datasource.DataSource {
	return []func() datasource.DataSource{
		NewHostsDataSource,
		NewClusterDataSource,
	}
}

func (p *kayoProvider) Functions(_ context.Context) []func() function.Function {
	return []func() function.Function{
		NewQuorumFunction,
	}
}
