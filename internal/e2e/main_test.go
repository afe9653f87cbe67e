package e2e

import (
	"os"
	"testing"

	"github.com/kayo-labs/terraform-provider-kayo/internal/testcli"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testcli.Cleanup()
	os.Exit(code)
}
