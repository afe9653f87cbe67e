package e2e

import (
	"os"
	"testing"

	"github.com/kayo-labs/terraform-provider-kayo/internal/testcli"

	// The tests run a provider binary that `go build` makes, which the test
	// cache cannot see; importing the provider makes a change to it rerun
	// these tests instead of reporting a cached result. (testcli reads
	// main.go itself for the same reason.)
	_ "github.com/kayo-labs/terraform-provider-kayo/internal/provider"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testcli.Cleanup()
	os.Exit(code)
}
