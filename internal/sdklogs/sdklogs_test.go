package sdklogs

import (
	"os"
	"strings"
	"testing"
)

// clearLogEnv unsets every TF_LOG* variable for the test.
func clearLogEnv(t *testing.T) {
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "TF_LOG") || k == "TF_ACC_LOG_PATH" {
			t.Setenv(k, v) // restored after the test
			if err := os.Unsetenv(k); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, k := range []string{"TF_LOG_SDK", "TF_LOG_SDK_PROTO", "TF_LOG_SDK_FRAMEWORK", "TF_LOG_PROVIDER_KAYO"} {
		t.Setenv(k, "")
		if err := os.Unsetenv(k); err != nil {
			t.Fatal(err)
		}
	}
}

// Nobody asked for logs: the SDK's and the provider's are off. TF_LOG
// set: nothing changes. (TestProviderLogLevelEnv in package provider
// checks the provider's variable is the one its plugin reads.)
func TestQuietUnlessAsked(t *testing.T) {
	clearLogEnv(t)
	QuietUnlessAsked("TF_LOG_PROVIDER_KAYO")
	for _, k := range []string{"TF_LOG_SDK", "TF_LOG_SDK_PROTO", "TF_LOG_SDK_FRAMEWORK", "TF_LOG_PROVIDER_KAYO"} {
		if v := os.Getenv(k); v != "off" {
			t.Errorf("%s=%q, want off", k, v)
		}
	}
	clearLogEnv(t)
	t.Setenv("TF_LOG", "INFO")
	QuietUnlessAsked("TF_LOG_PROVIDER_KAYO")
	for _, k := range []string{"TF_LOG_SDK", "TF_LOG_PROVIDER_KAYO"} {
		if v, ok := os.LookupEnv(k); ok {
			t.Errorf("with TF_LOG set, %s=%q, want it unset", k, v)
		}
	}
}
