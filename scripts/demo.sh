#!/usr/bin/env bash
# make demo: build the provider (and the Terraform CLI if bin/ lacks it),
# install the provider through a filesystem mirror named by a CLI config file
# of its own, then `init` + `apply` examples/quickstart: two identical hosts,
# Y-21-2k8x64 and Y-22-2k8x64, formed into the cluster HVCLUSTER, and print
# the cluster with its validation report.
#
# Everything it writes lives in the git-ignored .demo/ directory; each run
# starts afresh (new work dir, state and cluster database), so it can be
# re-run at will. DEMO_CLI=tofu runs OpenTofu instead of Terraform.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cli_name=${DEMO_CLI:-terraform}
case "$cli_name" in
  terraform | tofu) ;;
  *) echo "demo: DEMO_CLI must be terraform or tofu, not '$cli_name'" >&2; exit 2 ;;
esac
demo="$root/.demo"
version=0.1.0
platform="$(go env GOOS)_$(go env GOARCH)"

"$root/scripts/tools.sh" "$cli_name"
cli="$root/bin/$cli_name"

echo "demo: building the provider"
mkdir -p "$demo"
(cd "$root" && go build -o "$demo/terraform-provider-kayo" .)

# A fresh start: the lock file pins the provider's checksum, which changes
# with every rebuild, and the state belongs with its database.
rm -rf "$demo/mirror" "$demo/work" "$demo/data"
pkgdir="$demo/mirror/local/kayo/kayo/$version/$platform"
mkdir -p "$pkgdir" "$demo/work" "$demo/data"
cp "$demo/terraform-provider-kayo" "$pkgdir/terraform-provider-kayo_v$version"
cat >"$demo/cli.tfrc" <<TFRC
# Written by scripts/demo.sh: install local/kayo/kayo from the local mirror.
provider_installation {
  filesystem_mirror {
    path    = "$demo/mirror"
    include = ["local/kayo/kayo"]
  }
}
TFRC
cp "$root"/examples/quickstart/*.tf "$demo/work/"

export TF_CLI_CONFIG_FILE="$demo/cli.tfrc"
export KAYO_DATA_DIR="$demo/data"
export CHECKPOINT_DISABLE=1
export TF_IN_AUTOMATION=1
unset TF_PLUGIN_CACHE_DIR

cd "$demo/work"
echo "demo: $cli_name init"
"$cli" init -input=false -no-color >/dev/null
echo "demo: $cli_name apply"
# The outputs follow below as a table: leave them out of the apply log.
"$cli" apply -auto-approve -input=false -no-color | sed '/^Outputs:/,$d'

echo
echo "================================================================================"
"$cli" output -raw summary
echo
echo "================================================================================"
echo
echo "To keep going by hand:"
echo "  cd .demo/work"
echo "  export TF_CLI_CONFIG_FILE=$demo/cli.tfrc KAYO_DATA_DIR=$demo/data"
echo "  ../../bin/$cli_name plan      # no changes"
echo "  ../../bin/$cli_name destroy"
