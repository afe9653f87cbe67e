// Package provider is the thin Terraform layer over internal/engine:
// schemas, validators, plan modifiers and model conversion.
package provider

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/function"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/nodeagent/workexec"
)

// Address is the provider's source address. It names a hostname explicitly
// so Terraform and OpenTofu resolve it alike from a filesystem mirror.
const Address = "local/kayo/kayo"

// LogLevelEnv sets the level of the provider's own logger (tflog) in its
// plugin: terraform-plugin-go reads TF_LOG_PROVIDER_ and the type of
// Address, upper-cased, and nothing else (main.go turns it off when no
// log was asked for).
const LogLevelEnv = "TF_LOG_PROVIDER_KAYO"

// EnvDataDir overrides the default data directory.
const EnvDataDir = "KAYO_DATA_DIR"

var (
	_ provider.Provider                   = (*kayoProvider)(nil)
	_ provider.ProviderWithFunctions      = (*kayoProvider)(nil)
	_ provider.ProviderWithValidateConfig = (*kayoProvider)(nil)
)

type kayoProvider struct {
	version string
	// rt is the plugin process's runtime, shared by all its engines.
	rt *engine.Runtime

	// Engines are shared per data dir within the plugin process.
	mu      sync.Mutex
	engines map[string]*engine.Engine
}

type providerModel struct {
	DataDir     types.String `tfsdk:"data_dir"`
	LockTimeout types.String `tfsdk:"lock_timeout"`
	Etcd        *etcdModel   `tfsdk:"etcd"`
}

// New returns the provider factory for providerserver, its engines on a
// runtime of their own.
func New(version string) func() provider.Provider {
	return NewWithRuntime(version, engine.NewRuntime())
}

// NewWithRuntime returns the provider factory whose engines run on rt, the
// process's runtime (main releases its mounts on exit).
func NewWithRuntime(version string, rt *engine.Runtime) func() provider.Provider {
	return func() provider.Provider {
		return &kayoProvider{version: version, rt: rt, engines: map[string]*engine.Engine{}}
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
		Blocks: map[string]schema.Block{"etcd": etcdBlock()},
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
	etcdOpts, attr, ok := etcdOptions(ctx, m.Etcd, &resp.Diagnostics)
	if !ok {
		return
	}
	e, err := p.engine(dataDir, timeout, etcdOpts)
	if err != nil {
		if etcdOpts != nil {
			resp.Diagnostics.AddAttributeError(attr, "Cannot reach the cluster database on etcd", err.Error())
			return
		}
		resp.Diagnostics.AddAttributeError(path.Root("data_dir"), "Cannot open the cluster database", err.Error())
		return
	}
	if etcdOpts != nil {
		tflog.Debug(ctx, "kayo engine ready on etcd", map[string]any{"endpoints": strings.Join(etcdOpts.Endpoints, ","),
			"prefix": etcdOpts.Prefix, "data_dir": e.DataDir()})
	}
	tflog.Debug(ctx, "kayo engine ready", map[string]any{"data_dir": e.DataDir(), "lock_timeout": timeout.String()})
	// With no agents, each run of the provider is the lab's nodes: their
	// in-process executors report the LUNs they hold, as an agent does on
	// its heartbeat, so reads (which open no device) see a LUN zeroed or
	// deleted since.
	if err := e.ReportLabVolumes(ctx); err != nil {
		tflog.Warn(ctx, "kayo: reporting the lab's volumes: "+err.Error())
	}
	resp.ResourceData = e
	resp.DataSourceData = e
}

func (p *kayoProvider) engine(dataDir string, timeout time.Duration, etcd *store.EtcdOptions) (*engine.Engine, error) {
	key := dataDir + "\x00" + timeout.String()
	if etcd != nil {
		key += fmt.Sprintf("\x00%q", *etcd)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.engines[key]; ok {
		return e, nil
	}
	e, err := engine.Open(engine.Config{LocalExecutor: workexec.Local, DataDir: dataDir, LockTimeout: timeout, OnWait: logWait, Etcd: etcd, Runtime: p.rt})
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
		NewSharedVolumeResource,
		NewVirtualMachineResource,
		NewVolumeFileResource,
		NewVirtualSwitchResource,
	}
}

func (p *kayoProvider) DataSources(_ context.Context) []func() datasource.DataSource {
	return []func() datasource.DataSource{
		NewHostsDataSource,
		NewClusterDataSource,
		NewVirtualMachineDataSource,
	}
}

func (p *kayoProvider) Functions(_ context.Context) []func() function.Function {
	return []func() function.Function{
		NewQuorumFunction,
	}
}

// Environment variables of the etcd block; the block's attributes win.
const (
	EnvEtcdEndpoints   = store.EnvEtcdEndpoints
	EnvEtcdDialTimeout = store.EnvEtcdDialTimeout
)

type etcdModel struct {
	Endpoints   types.List   `tfsdk:"endpoints"`
	Prefix      types.String `tfsdk:"prefix"`
	Username    types.String `tfsdk:"username"`
	Password    types.String `tfsdk:"password"`
	CAFile      types.String `tfsdk:"ca_file"`
	CertFile    types.String `tfsdk:"cert_file"`
	KeyFile     types.String `tfsdk:"key_file"`
	DialTimeout types.String `tfsdk:"dial_timeout"`
}

func etcdBlock() schema.SingleNestedBlock {
	str := func(desc string, sensitive bool) schema.StringAttribute {
		return schema.StringAttribute{Optional: true, Sensitive: sensitive, MarkdownDescription: desc}
	}
	return schema.SingleNestedBlock{
		MarkdownDescription: "Keep the cluster database in etcd (v3 API) instead of `data_dir`, so operators, CI " +
			"pipelines and `kayoctl` on several machines share one cluster. Each attribute defaults to its " +
			"`KAYO_ETCD_*` environment variable; without endpoints the embedded database is used. An etcd that " +
			"does not answer within `dial_timeout` fails the configuration with the endpoints and the cause.",
		Attributes: map[string]schema.Attribute{
			"endpoints": schema.ListAttribute{ElementType: types.StringType, Optional: true,
				MarkdownDescription: "etcd client URLs, e.g. `[\"https://etcd1:2379\", \"https://etcd2:2379\"]`. " +
					"Env `KAYO_ETCD_ENDPOINTS` (comma-separated)."},
			"prefix": str("Key prefix of this installation, so several clusters share one etcd. Default `/kayo/`. "+
				"Env `KAYO_ETCD_PREFIX`.", false),
			"username": str("etcd user, when etcd has authentication enabled. Env `KAYO_ETCD_USERNAME`.", false),
			"password": str("Password of `username`. Env `KAYO_ETCD_PASSWORD`.", true),
			"ca_file":  str("PEM file of the CA that signed the etcd servers' certificates. Env `KAYO_ETCD_CA_FILE`.", false),
			"cert_file": str("PEM client certificate, for etcd with `--client-cert-auth`; goes with `key_file`. "+
				"Env `KAYO_ETCD_CERT_FILE`.", false),
			"key_file": str("PEM private key of `cert_file`. Env `KAYO_ETCD_KEY_FILE`.", false),
			"dial_timeout": schema.StringAttribute{Optional: true, Validators: []validator.String{durationValidator{}},
				MarkdownDescription: "How long to wait for etcd to answer at configure time, as a Go duration. " +
					"Default `5s`. Env `KAYO_ETCD_DIAL_TIMEOUT`."},
		},
	}
}

// etcdOptions merges the etcd block over the KAYO_ETCD_* environment. It
// returns nil options when no endpoints are set (the embedded database),
// and the attribute path to blame for a connection error.
func etcdOptions(ctx context.Context, m *etcdModel, diags *diag.Diagnostics) (*store.EtcdOptions, path.Path, bool) {
	attr := path.Root("etcd").AtName("endpoints")
	o := store.EtcdOptions{
		Prefix: os.Getenv(store.EnvEtcdPrefix), Username: os.Getenv(store.EnvEtcdUsername), Password: os.Getenv(store.EnvEtcdPassword),
		CAFile: os.Getenv(store.EnvEtcdCAFile), CertFile: os.Getenv(store.EnvEtcdCertFile), KeyFile: os.Getenv(store.EnvEtcdKeyFile),
		Endpoints: store.SplitEndpoints(os.Getenv(EnvEtcdEndpoints)),
	}
	dial := os.Getenv(EnvEtcdDialTimeout)
	dialAttr := "the environment variable " + EnvEtcdDialTimeout
	if m != nil {
		if !m.Endpoints.IsNull() && !m.Endpoints.IsUnknown() {
			var eps []string
			diags.Append(m.Endpoints.ElementsAs(ctx, &eps, false)...)
			if diags.HasError() {
				return nil, attr, false
			}
			o.Endpoints = eps
		}
		set := func(v types.String, dst *string) {
			if !v.IsNull() && !v.IsUnknown() {
				*dst = v.ValueString()
			}
		}
		set(m.Prefix, &o.Prefix)
		set(m.Username, &o.Username)
		set(m.Password, &o.Password)
		set(m.CAFile, &o.CAFile)
		set(m.CertFile, &o.CertFile)
		set(m.KeyFile, &o.KeyFile)
		if !m.DialTimeout.IsNull() && !m.DialTimeout.IsUnknown() {
			dial, dialAttr = m.DialTimeout.ValueString(), "dial_timeout"
		}
	}
	if len(o.Endpoints) == 0 {
		return nil, attr, true
	}
	if err := store.CheckEndpoints(o.Endpoints); err != nil {
		diags.AddAttributeError(attr, "Invalid etcd endpoint", err.Error())
		return nil, attr, false
	}
	if dial != "" {
		d, err := time.ParseDuration(dial)
		if err != nil || d <= 0 {
			diags.AddAttributeError(path.Root("etcd").AtName("dial_timeout"), "Invalid dial_timeout",
				fmt.Sprintf("%s %q is not a positive Go duration; allowed: e.g. \"5s\", \"500ms\"", dialAttr, dial))
			return nil, attr, false
		}
		o.DialTimeout = d
	}
	return &o, attr, true
}
