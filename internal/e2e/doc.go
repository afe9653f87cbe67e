// Package e2e runs the kayo provider end to end on the real Terraform and
// OpenTofu CLIs (bin/terraform and bin/tofu, built by `make tools`), the way
// a user meets it: init from a filesystem mirror, apply, plan, destroy. The
// tests skip when the CLIs are missing, except with CI=true, where they fail.
package e2e
