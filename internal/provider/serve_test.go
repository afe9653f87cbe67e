package provider

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
)

// blockingServer's applies run until their context ends.
type blockingServer struct {
	tfprotov6.ProviderServer
	started chan struct{}
}

func (b blockingServer) ApplyResourceChange(ctx context.Context, _ *tfprotov6.ApplyResourceChangeRequest) (*tfprotov6.ApplyResourceChangeResponse, error) {
	b.started <- struct{}{}
	<-ctx.Done()
	return &tfprotov6.ApplyResourceChangeResponse{}, nil
}

// TestTrackedServerDrain: once the CLI is gone (root cancelled) the calls
// in flight are cancelled and drain sees them all return; with a call that
// ignores root, drain gives up after its limit.
func TestTrackedServerDrain(t *testing.T) {
	root, cancel := context.WithCancel(context.Background())
	s := &trackedServer{ProviderServer: blockingServer{started: make(chan struct{}, 3)}, root: root}
	if !s.drain(time.Millisecond) {
		t.Fatal("drain with no call in flight reported calls left")
	}
	for range 3 {
		go func() { _, _ = s.ApplyResourceChange(context.Background(), nil) }()
		<-s.ProviderServer.(blockingServer).started
	}
	if s.drain(20 * time.Millisecond) {
		t.Fatal("drain returned true while 3 applies run and root is not cancelled")
	}
	cancel()
	if !s.drain(5 * time.Second) {
		t.Fatal("drain: the applies did not return after root was cancelled")
	}
}

// LogLevelEnv is the variable terraform-plugin-go reads for the level of
// the logger of a provider served at Address (ProviderLoggerName: the
// type, "-" as "_", upper-cased after TF_LOG_PROVIDER_).
func TestProviderLogLevelEnv(t *testing.T) {
	typ := Address[strings.LastIndex(Address, "/")+1:]
	if want := "TF_LOG_PROVIDER_" + strings.ToUpper(strings.ReplaceAll(typ, "-", "_")); LogLevelEnv != want {
		t.Fatalf("LogLevelEnv %q, want %q", LogLevelEnv, want)
	}
}
