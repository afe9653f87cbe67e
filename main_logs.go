package main

import (
	"os"
	"strings"
)

// quietSDKLogs turns off the plugin SDK's own logs (terraform-plugin-go and
// the framework trace every RPC and every attribute's plan modifier) when
// nothing asked for logs: Terraform keeps a provider's logs only when
// TF_LOG or TF_LOG_PROVIDER says so, and otherwise parses and drops every
// line, so producing them costs CPU in both processes for nothing (several
// seconds over 200 resources). Any TF_LOG* variable, or TF_ACC_LOG_PATH,
// leaves everything as the SDK would have it.
func quietSDKLogs() {
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "TF_LOG") || strings.HasPrefix(kv, "TF_ACC_LOG_PATH=") {
			return
		}
	}
	for _, v := range []string{"TF_LOG_SDK", "TF_LOG_SDK_PROTO", "TF_LOG_SDK_FRAMEWORK"} {
		_ = os.Setenv(v, "off")
	}
}
