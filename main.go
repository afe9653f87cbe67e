// Command terraform-provider-kayo serves the kayo provider to Terraform and
// OpenTofu over plugin protocol 6.
package main

import (
	"context"
	"flag"
	"log"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/provider"
	"github.com/kayo-labs/terraform-provider-kayo/internal/sdklogs"
)

// Set by the build (-ldflags "-X main.version=...").
var version = "0.1.0"

func main() {
	var debug bool
	flag.BoolVar(&debug, "debug", false, "run the provider under a debugger (prints TF_REATTACH_PROVIDERS)")
	flag.Parse()

	sdklogs.QuietUnlessAsked()
	stopProfiles := startProfiles()
	err := providerserver.Serve(context.Background(), provider.New(version), providerserver.ServeOpts{
		Address: provider.Address,
		Debug:   debug,
	})
	engine.ReleaseMounts() // detach the volume mounts cached for VM operations
	stopProfiles()
	if err != nil {
		log.Fatal(err)
	}
}
