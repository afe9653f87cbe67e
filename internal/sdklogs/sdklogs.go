// Package sdklogs turns off the plugin SDK's own logs when nobody asked for
// logs. terraform-plugin-go and the framework trace every RPC and every
// attribute's plan modifier; Terraform keeps a provider's logs only when
// TF_LOG or TF_LOG_PROVIDER says so and otherwise parses and drops every
// line, so producing them costs CPU in both processes for nothing (seconds
// over a few hundred resources). Any TF_LOG* variable, or TF_ACC_LOG_PATH,
// leaves everything as the SDK would have it.
//
// The kayo provider and the benchmark's no-op provider both call it, so the
// benchmark compares like with like.
package sdklogs

import (
	"os"
	"strings"
)

// QuietUnlessAsked sets TF_LOG_SDK* to off unless a log variable is set.
func QuietUnlessAsked() {
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "TF_LOG") || strings.HasPrefix(kv, "TF_ACC_LOG_PATH=") {
			return
		}
	}
	for _, v := range []string{"TF_LOG_SDK", "TF_LOG_SDK_PROTO", "TF_LOG_SDK_FRAMEWORK"} {
		_ = os.Setenv(v, "off")
	}
}
