#!/usr/bin/env bash
# make module-test: `terraform test` and `tofu test` of modules/hyperv-cluster
# (plan-only validation runs, apply runs, the two-cluster example). The
# provider is built and installed through a filesystem mirror of its own, as
# scripts/demo.sh does; each CLI runs in a copy of the module (init writes
# .terraform and a lock file) with a fresh cluster database (KAYO_DATA_DIR).
# MODULE_TEST_CLIS="terraform" runs one CLI.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
clis=${MODULE_TEST_CLIS:-terraform tofu}
work=$(mktemp -d "${TMPDIR:-/tmp}/kayo-module-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
version=0.1.0
platform="$(go env GOOS)_$(go env GOARCH)"

pkgdir="$work/mirror/local/kayo/kayo/$version/$platform"
mkdir -p "$pkgdir"
(cd "$root" && go build -o "$pkgdir/terraform-provider-kayo_v$version" .)
cat >"$work/cli.tfrc" <<TFRC
provider_installation {
  filesystem_mirror {
    path    = "$work/mirror"
    include = ["local/kayo/kayo"]
  }
}
TFRC
export TF_CLI_CONFIG_FILE="$work/cli.tfrc" CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1
unset TF_PLUGIN_CACHE_DIR

for cli in $clis; do
  "$root/scripts/tools.sh" "$cli"
  dir="$work/$cli/hyperv-cluster"
  mkdir -p "$dir" "$work/$cli/data"
  cp -R "$root/modules/hyperv-cluster/." "$dir/"
  rm -rf "$dir/.terraform" "$dir/.terraform.lock.hcl"
  echo "== module test: $("$root/bin/$cli" version | head -1)"
  "$root/bin/$cli" -chdir="$dir" init -input=false -no-color >"$work/$cli/init.log" || { cat "$work/$cli/init.log" >&2; exit 1; }
  KAYO_DATA_DIR="$work/$cli/data" "$root/bin/$cli" -chdir="$dir" test -no-color
done
