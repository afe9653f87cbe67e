package provider

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6/tf6server"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/parentwatch"
)

// ErrCLIGone: the CLI that started the plugin died (killed) without
// shutting the plugin down; Serve gave up serving it.
var ErrCLIGone = errors.New("the terraform/tofu process that started this provider is gone")

// OrphanGrace bounds how long a plugin whose CLI died waits for the calls
// it was serving: they were cancelled, so they return as soon as their
// current step does. A call still running then is left to its intent
// record, which the next call settles (internal/engine/vms.go, abandoned).
const OrphanGrace = 3 * time.Second

// ServeOpts configure Serve.
type ServeOpts struct {
	// Debug serves under a debugger (TF_REATTACH_PROVIDERS); the process
	// that started the plugin is then not its CLI, so it is not watched.
	Debug bool
	// ParentPoll is how often the parent process is checked; default
	// parentwatch.DefaultInterval.
	ParentPoll time.Duration
	// Runtime is the process's engine runtime (NewWithRuntime); a new one
	// when nil.
	Runtime *engine.Runtime
}

// Serve serves the provider over plugin protocol 6 until the CLI shuts it
// down (nil) or, outside debug mode, until the CLI process is gone: then
// it cancels the calls in flight, waits up to OrphanGrace for them, closes
// the cluster databases and returns ErrCLIGone. go-plugin itself only
// stops on the CLI's shutdown call, so without this a plugin whose CLI was
// SIGKILLed kept running, and its pid kept its unfinished operations
// "in progress" for every later run.
func Serve(version string, opts ServeOpts) error {
	rt := opts.Runtime
	if rt == nil {
		rt = engine.NewRuntime()
	}
	p := NewWithRuntime(version, rt)().(*kayoProvider)
	root, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := &trackedServer{ProviderServer: providerserver.NewProtocol6(p)(), root: root}
	var serveOpts []tf6server.ServeOpt
	orphaned := make(chan struct{})
	if opts.Debug {
		serveOpts = append(serveOpts, tf6server.WithManagedDebug())
	} else {
		go func() {
			if parentwatch.Wait(root, opts.ParentPoll) == nil {
				close(orphaned)
			}
		}()
	}
	served := make(chan error, 1)
	go func() {
		served <- tf6server.Serve(Address, func() tfprotov6.ProviderServer { return srv }, serveOpts...)
	}()
	select {
	case err := <-served:
		cancel()
		return errors.Join(err, p.closeEngines())
	case <-orphaned:
		cancel()
		srv.drain(OrphanGrace)
		return errors.Join(ErrCLIGone, p.closeEngines())
	}
}

// closeEngines releases every cluster database the provider opened.
func (p *kayoProvider) closeEngines() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for k, e := range p.engines {
		errs = append(errs, e.Close())
		delete(p.engines, k)
	}
	return errors.Join(errs...)
}

// trackedServer counts the calls in flight that reach the engine and
// cancels them with root, so a plugin whose CLI died can wait for them
// before it closes the databases under them.
type trackedServer struct {
	tfprotov6.ProviderServer
	root context.Context

	mu      sync.Mutex
	running int
	idle    chan struct{} // closed when running drops to 0; nil while none waits
}

// begin registers a call; the returned context also ends with root.
func (s *trackedServer) begin(ctx context.Context) (context.Context, func()) {
	s.mu.Lock()
	s.running++
	s.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.root, cancel)
	return ctx, func() {
		stop()
		cancel()
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.running--; s.running == 0 && s.idle != nil {
			close(s.idle)
			s.idle = nil
		}
	}
}

// drain waits until no call runs or limit passes; it reports whether
// every call returned.
func (s *trackedServer) drain(limit time.Duration) bool {
	s.mu.Lock()
	if s.running == 0 {
		s.mu.Unlock()
		return true
	}
	if s.idle == nil {
		s.idle = make(chan struct{})
	}
	idle := s.idle
	s.mu.Unlock()
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-idle:
		return true
	case <-t.C:
		return false
	}
}

func (s *trackedServer) ConfigureProvider(ctx context.Context, req *tfprotov6.ConfigureProviderRequest) (*tfprotov6.ConfigureProviderResponse, error) {
	ctx, done := s.begin(ctx)
	defer done()
	return s.ProviderServer.ConfigureProvider(ctx, req)
}

func (s *trackedServer) ReadResource(ctx context.Context, req *tfprotov6.ReadResourceRequest) (*tfprotov6.ReadResourceResponse, error) {
	ctx, done := s.begin(ctx)
	defer done()
	return s.ProviderServer.ReadResource(ctx, req)
}

func (s *trackedServer) PlanResourceChange(ctx context.Context, req *tfprotov6.PlanResourceChangeRequest) (*tfprotov6.PlanResourceChangeResponse, error) {
	ctx, done := s.begin(ctx)
	defer done()
	return s.ProviderServer.PlanResourceChange(ctx, req)
}

func (s *trackedServer) ApplyResourceChange(ctx context.Context, req *tfprotov6.ApplyResourceChangeRequest) (*tfprotov6.ApplyResourceChangeResponse, error) {
	ctx, done := s.begin(ctx)
	defer done()
	return s.ProviderServer.ApplyResourceChange(ctx, req)
}

func (s *trackedServer) ImportResourceState(ctx context.Context, req *tfprotov6.ImportResourceStateRequest) (*tfprotov6.ImportResourceStateResponse, error) {
	ctx, done := s.begin(ctx)
	defer done()
	return s.ProviderServer.ImportResourceState(ctx, req)
}

func (s *trackedServer) ReadDataSource(ctx context.Context, req *tfprotov6.ReadDataSourceRequest) (*tfprotov6.ReadDataSourceResponse, error) {
	ctx, done := s.begin(ctx)
	defer done()
	return s.ProviderServer.ReadDataSource(ctx, req)
}

func (s *trackedServer) CallFunction(ctx context.Context, req *tfprotov6.CallFunctionRequest) (*tfprotov6.CallFunctionResponse, error) {
	ctx, done := s.begin(ctx)
	defer done()
	return s.ProviderServer.CallFunction(ctx, req)
}
