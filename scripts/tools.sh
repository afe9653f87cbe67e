#!/usr/bin/env bash
# Builds the Terraform and OpenTofu CLIs from the Go module proxy into bin/,
# reusing binaries already there. No prebuilt downloads.
set -euo pipefail
export TF_CLI_CONFIG_FILE=/dev/null CHECKPOINT_DISABLE=1
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/bin"
mkdir -p "$bin"
TERRAFORM_VERSION=${TERRAFORM_VERSION:-1.8.5}
TOFU_VERSION=${TOFU_VERSION:-1.10.10}

build_terraform() {
  if [ -x "$bin/terraform" ] && "$bin/terraform" version 2>/dev/null | head -1 | grep -qx "Terraform v$TERRAFORM_VERSION"; then
    return
  fi
  echo "tools: building Terraform v$TERRAFORM_VERSION from the Go module proxy (~3 min)"
  # dev=no: report a release version (1.8.5), not 1.8.5-dev.
  GOBIN="$bin" GOFLAGS=-buildvcs=false go install -ldflags "-X github.com/hashicorp/terraform/version.dev=no" \
    "github.com/hashicorp/terraform@v$TERRAFORM_VERSION"
}

build_tofu() {
  if [ -x "$bin/tofu" ] && "$bin/tofu" version 2>/dev/null | head -1 | grep -qx "OpenTofu v$TOFU_VERSION"; then
    return
  fi
  echo "tools: building OpenTofu v$TOFU_VERSION from the Go module proxy (~2.5 min)"
  dir=$(cd "$(mktemp -d)" && GOFLAGS=-mod=mod go mod download -json "github.com/opentofu/opentofu@v$TOFU_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -n "$dir" ] || { echo "tools: could not download OpenTofu v$TOFU_VERSION" >&2; exit 1; }
  (cd "$dir" && GOFLAGS="-mod=mod -buildvcs=false" go build -ldflags "-X github.com/opentofu/opentofu/version.dev=no" -o "$bin/tofu" ./cmd/tofu)
}

TFPLUGINDOCS_VERSION=${TFPLUGINDOCS_VERSION:-0.25.0}
GOLANGCI_VERSION=${GOLANGCI_VERSION:-2.6.2}

build_tfplugindocs() {
  [ -x "$bin/tfplugindocs" ] && "$bin/tfplugindocs" --version 2>/dev/null | grep -q "$TFPLUGINDOCS_VERSION" && return
  echo "tools: building tfplugindocs v$TFPLUGINDOCS_VERSION"
  GOBIN="$bin" GOFLAGS=-buildvcs=false go install "github.com/hashicorp/terraform-plugin-docs/cmd/tfplugindocs@v$TFPLUGINDOCS_VERSION"
}

build_golangci() {
  [ -x "$bin/golangci-lint" ] && "$bin/golangci-lint" version 2>/dev/null | grep -q "$GOLANGCI_VERSION" && return
  echo "tools: building golangci-lint v$GOLANGCI_VERSION (~70 s)"
  GOBIN="$bin" GOFLAGS=-buildvcs=false go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v$GOLANGCI_VERSION"
}

GORELEASER_VERSION=${GORELEASER_VERSION:-2.17.0}

# Only `make release-snapshot` (and the release test) needs goreleaser; it is
# not part of `all`: a cold build from the module proxy is heavy on 2 cores.
build_goreleaser() {
  [ -x "$bin/goreleaser" ] && "$bin/goreleaser" --version 2>/dev/null | grep -q "GitVersion:[[:space:]]*v\?$GORELEASER_VERSION" && return
  echo "tools: building goreleaser v$GORELEASER_VERSION from the Go module proxy"
  GOBIN="$bin" GOFLAGS=-buildvcs=false go install "github.com/goreleaser/goreleaser/v2@v$GORELEASER_VERSION"
}

case "${1:-all}" in
  tfplugindocs) build_tfplugindocs ;;
  golangci-lint) build_golangci ;;
  goreleaser) build_goreleaser ;;
  terraform) build_terraform ;;
  tofu) build_tofu ;;
  clis) build_terraform & p1=$!; build_tofu & p2=$!; wait $p1; wait $p2 ;;
  all)
    build_terraform & p1=$!
    build_tofu & p2=$!
    build_tfplugindocs & p3=$!
    build_golangci & p4=$!
    wait $p1; wait $p2; wait $p3; wait $p4 ;;
  *) echo "usage: tools.sh [all|clis|terraform|tofu|tfplugindocs|golangci-lint|goreleaser]" >&2; exit 2 ;;
esac
