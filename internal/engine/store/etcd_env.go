package store

import (
	"fmt"
	"strings"
	"time"
)

// Environment variables that configure the etcd store for every kayo
// program (the provider's etcd block overrides them attribute by attribute).
const (
	EnvEtcdEndpoints   = "KAYO_ETCD_ENDPOINTS" // comma-separated client URLs
	EnvEtcdPrefix      = "KAYO_ETCD_PREFIX"
	EnvEtcdUsername    = "KAYO_ETCD_USERNAME"
	EnvEtcdPassword    = "KAYO_ETCD_PASSWORD"
	EnvEtcdCAFile      = "KAYO_ETCD_CA_FILE"
	EnvEtcdCertFile    = "KAYO_ETCD_CERT_FILE"
	EnvEtcdKeyFile     = "KAYO_ETCD_KEY_FILE"
	EnvEtcdDialTimeout = "KAYO_ETCD_DIAL_TIMEOUT"
)

// EtcdOptionsFromEnv reads the KAYO_ETCD_* variables through getenv. With
// no endpoints set it returns nil: the embedded database.
func EtcdOptionsFromEnv(getenv func(string) string) (*EtcdOptions, error) {
	o := EtcdOptions{
		Prefix: getenv(EnvEtcdPrefix), Username: getenv(EnvEtcdUsername), Password: getenv(EnvEtcdPassword),
		CAFile: getenv(EnvEtcdCAFile), CertFile: getenv(EnvEtcdCertFile), KeyFile: getenv(EnvEtcdKeyFile),
	}
	o.Endpoints = SplitEndpoints(getenv(EnvEtcdEndpoints))
	if len(o.Endpoints) == 0 {
		return nil, nil
	}
	if err := CheckEndpoints(o.Endpoints); err != nil {
		return nil, fmt.Errorf("%s: %w", EnvEtcdEndpoints, err)
	}
	if s := getenv(EnvEtcdDialTimeout); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%s %q is not a positive Go duration; allowed: e.g. \"5s\", \"500ms\"", EnvEtcdDialTimeout, s)
		}
		o.DialTimeout = d
	}
	return &o, nil
}

// SplitEndpoints splits a comma-separated endpoint list.
func SplitEndpoints(s string) []string {
	var out []string
	for _, ep := range strings.Split(s, ",") {
		if ep = strings.TrimSpace(ep); ep != "" {
			out = append(out, ep)
		}
	}
	return out
}

// CheckEndpoints accepts etcd client URLs.
func CheckEndpoints(eps []string) error {
	for _, ep := range eps {
		if !strings.HasPrefix(ep, "http://") && !strings.HasPrefix(ep, "https://") {
			return fmt.Errorf("endpoint %q is not an etcd client URL; allowed: http://host:port or https://host:port", ep)
		}
	}
	return nil
}
