// Package sdklogs turns off the plugin SDK's own logs, and a provider's
// when it says so, when nobody asked for logs. terraform-plugin-go and the
// framework trace every RPC and every attribute's plan modifier;
// Terraform keeps a provider's logs only when TF_LOG or TF_LOG_PROVIDER
// says so and otherwise parses and drops every line, so producing them
// costs CPU in both processes for nothing (seconds over a few hundred
// resources). Any TF_LOG* variable, or TF_ACC_LOG_PATH, leaves everything
// as the SDK would have it.
//
// The kayo provider and the benchmark's no-op provider both call it, so the
// benchmark compares like with like.
package sdklogs

import (
	"os"
	"strings"
)

// QuietUnlessAsked sets TF_LOG_SDK* and providerLevels (the variables
// of a provider's own logger: TF_LOG_PROVIDER_<NAME>, the only level its
// plugin reads) to off unless a log variable is set.
func QuietUnlessAsked(providerLevels ...string) {
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "TF_LOG") || strings.HasPrefix(kv, "TF_ACC_LOG_PATH=") {
			return
		}
	}
	for _, v := range append([]string{"TF_LOG_SDK", "TF_LOG_SDK_PROTO", "TF_LOG_SDK_FRAMEWORK"}, providerLevels...) {
		_ = os.Setenv(v, "off")
	}
}
