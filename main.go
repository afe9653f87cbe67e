// Command terraform-provider-kayo serves the kayo provider to Terraform and
// OpenTofu over plugin protocol 6.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"runtime/debug"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/provider"
	"github.com/kayo-labs/terraform-provider-kayo/internal/sdklogs"
)

// Set by the build (-ldflags "-X main.version=..."; .goreleaser.yml does).
var version = "0.1.0"

// providerMountIdle is how long the provider keeps an unused volume mount
// of a node: another process that mounts the same node meanwhile (kayoctl,
// an agent that starts) waits that long at most.
const providerMountIdle = time.Second

func main() {
	var debug, showVersion bool
	flag.BoolVar(&debug, "debug", false, "run the provider under a debugger (prints TF_REATTACH_PROVIDERS)")
	flag.BoolVar(&showVersion, "version", false, "print the provider's version and exit")
	flag.Parse()
	if showVersion {
		fmt.Println("terraform-provider-kayo v" + version)
		return
	}

	sdklogs.QuietUnlessAsked(provider.LogLevelEnv)
	lessGC()
	stopProfiles := startProfiles()
	rt := engine.NewRuntime()
	// Mounts are released at exit (below), so they may idle longer than
	// DefaultMountIdle: an apply's VM operations reach each node only
	// every few hundred milliseconds (engine.Runtime.SetMountIdle).
	rt.SetMountIdle(providerMountIdle)
	err := provider.Serve(version, provider.ServeOpts{Debug: debug, Runtime: rt})
	rt.ReleaseMounts() // detach the volume mounts cached for VM operations
	stopProfiles()
	if errors.Is(err, provider.ErrCLIGone) {
		// Nobody reads stderr any more (the CLI's end of the pipe is gone).
		os.Exit(1)
	}
	if err != nil {
		log.Fatal(err)
	}
}

// lessGC makes the garbage collector run about a quarter as often as
// Go's default unless GOGC says otherwise: the plugin lives for one
// Terraform command with a small live heap. Measured over the 200-VM
// benchmark's create, migrate and destroy (KAYO_PROFILE_GOGC, mem.txt):
// plugin CPU 13.1 s at GOGC=100, 10.4 s at 200, 8.9 s at 400, for a
// peak of 51, 84 and 117 MB taken from the OS.
func lessGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
}
