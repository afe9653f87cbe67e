// Package release tests the release artifacts `make release-snapshot`
// builds (.goreleaser.yml): their names and checksums, the registry
// manifest, the version the binary reports, and that Terraform and OpenTofu
// install them from a packed filesystem mirror, record their checksums in
// .terraform.lock.hcl and refuse a tampered zip. `make release-test` runs it
// with KAYO_RELEASE_DIST and KAYO_VERSION set.
package release
