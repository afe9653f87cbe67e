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
#
# HYPERVISOR=qemu (make demo HYPERVISOR=qemu; or KAYO_DEMO_HYPERVISOR=qemu)
# runs real VMs: it builds the test guest (guest/build.sh) and kayoctl,
# starts a node agent per host in the background (they run the QEMU
# processes), applies the quickstart with examples/quickstart-qemu's
# override (hypervisor = "qemu", WEB01 as the 128 MiB test guest), then
# live-migrates WEB01 by changing owner_node and shows the guest's counter
# going on. Needs Linux and qemu-system-x86, linux-image-amd64,
# busybox-static, cpio. The agents keep running afterwards (the next
# `make demo` stops them; their pids are in .demo/agents.pid).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cli_name=${DEMO_CLI:-terraform}
case "$cli_name" in
  terraform | tofu) ;;
  *) echo "demo: DEMO_CLI must be terraform or tofu, not '$cli_name'" >&2; exit 2 ;;
esac
hypervisor=${HYPERVISOR:-${KAYO_DEMO_HYPERVISOR:-simulator}}
case "$hypervisor" in
  simulator | qemu) ;;
  *) echo "demo: HYPERVISOR must be simulator or qemu, not '$hypervisor'" >&2; exit 2 ;;
esac
demo="$root/.demo"
version=0.1.0
platform="$(go env GOOS)_$(go env GOARCH)"

"$root/scripts/tools.sh" "$cli_name"
cli="$root/bin/$cli_name"

if [ "$hypervisor" = qemu ]; then
  command -v qemu-system-x86_64 >/dev/null || {
    echo "demo: HYPERVISOR=qemu needs QEMU: apt-get install qemu-system-x86 linux-image-amd64 busybox-static cpio" >&2
    exit 1
  }
  echo "demo: building the test guest (guest/build.sh)"
  "$root/guest/build.sh" "$root/guest/out"
fi

echo "demo: building the provider"
mkdir -p "$demo"
(cd "$root" && go build -o "$demo/terraform-provider-kayo" .)

# Agents a previous qemu demo left running use the data dir about to go.
if [ -f "$demo/agents.pid" ]; then
  while read -r pid; do
    kill "$pid" 2>/dev/null || true
  done <"$demo/agents.pid"
  while read -r pid; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done <"$demo/agents.pid"
  rm -f "$demo/agents.pid"
fi

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
if [ "$hypervisor" = qemu ]; then
  cp "$root/examples/quickstart-qemu/qemu_override.tf" "$demo/work/"
fi

export TF_CLI_CONFIG_FILE="$demo/cli.tfrc"
export KAYO_DATA_DIR="$demo/data"
export CHECKPOINT_DISABLE=1
export TF_IN_AUTOMATION=1
unset TF_PLUGIN_CACHE_DIR

if [ "$hypervisor" = qemu ]; then
  echo "demo: building kayoctl and starting a node agent per host (logs in .demo/agent-*.log)"
  (cd "$root" && go build -o "$demo/kayoctl" ./cmd/kayoctl)
  # The demo's hosts are the seed's fictional Xeons, all played by this one
  # machine: its agents do not report it (--report-facts=false), or
  # validation would compare the declared Xeons with this machine, and do
  # not probe each other (--probe-port=0: they share one network stack).
  for node in Y-21-2k8x64 Y-22-2k8x64; do
    KAYO_QEMU_GUEST_DIR="$root/guest/out" NO_COLOR=1 nohup "$demo/kayoctl" agent --node "$node" --interval 250ms --report-facts=false --probe-port=0 \
      >"$demo/agent-$node.log" 2>&1 </dev/null &
    echo $! >>"$demo/agents.pid"
  done
  for node in Y-21-2k8x64 Y-22-2k8x64; do # their first heartbeats
    for _ in $(seq 300); do
      grep -q "qemu: accepting VMs" "$demo/agent-$node.log" 2>/dev/null && break
      sleep 0.1
    done
    grep -q "qemu: accepting VMs" "$demo/agent-$node.log" || { echo "demo: the agent of $node did not start:" >&2; tail -20 "$demo/agent-$node.log" >&2; exit 1; }
  done
fi

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
if [ "$hypervisor" = qemu ]; then
  # The guest's serial console: "KAYO-COUNTER id=<boot> n=<n> disk=[...]"
  # every 0.2 s.
  console() { echo "$demo/data/qemu/$1/WEB01.serial.log"; }
  counters() { grep -a KAYO-COUNTER "$(console "$1")" 2>/dev/null | tr -d '\r' || true; }
  for _ in $(seq 150); do [ "$(counters Y-21-2k8x64 | wc -l)" -ge 3 ] && break; sleep 0.2; done
  echo
  echo "WEB01 runs under QEMU on Y-21-2k8x64; its console ($(console Y-21-2k8x64)):"
  counters Y-21-2k8x64 | tail -3 | sed 's/^/  /'
  echo
  echo "demo: owner_node = \"Y-22-2k8x64\": $cli_name apply live-migrates WEB01"
  cat >"$demo/work/migrate_override.tf" <<'HCL'
# Written by scripts/demo.sh (HYPERVISOR=qemu): WEB01 moves to Y-22-2k8x64.
resource "kayo_virtual_machine" "web01" {
  owner_node = "Y-22-2k8x64"
}
HCL
  if ! "$cli" apply -auto-approve -input=false -no-color >"$demo/migrate.log" 2>&1; then
    cat "$demo/migrate.log" >&2
    exit 1
  fi
  grep -E "^(Warning:|kayo_virtual_machine.web01: Modif|Apply complete)" "$demo/migrate.log" | sed 's/^/  /' || true
  for _ in $(seq 50); do [ "$(counters Y-22-2k8x64 | wc -l)" -ge 3 ] && break; sleep 0.2; done
  echo
  "$cli" state show -no-color kayo_virtual_machine.web01 | sed -n '/last_migration/,/}/p' | sed 's/^/  /'
  echo
  echo "The last counter lines on Y-21-2k8x64 (the source, its QEMU gone now):"
  counters Y-21-2k8x64 | tail -2 | sed 's/^/  /'
  echo "and the first on Y-22-2k8x64: the same boot id, the next number, the disk record written before the move:"
  counters Y-22-2k8x64 | head -3 | sed 's/^/  /'
  echo
  echo "The node agents keep WEB01 running (pids $(tr '\n' ' ' <"$demo/agents.pid")in .demo/agents.pid; the next"
  echo "make demo stops them). Watch its console with: tail -f $(console Y-22-2k8x64)"
fi
echo
echo "To keep going by hand:"
echo "  cd .demo/work"
echo "  export TF_CLI_CONFIG_FILE=$demo/cli.tfrc KAYO_DATA_DIR=$demo/data"
if [ "$hypervisor" = qemu ]; then
  echo "  ../kayoctl status; ../kayoctl events --kind vm.migration_completed"
fi
echo "  ../../bin/$cli_name plan      # no changes"
echo "  ../../bin/$cli_name destroy"
