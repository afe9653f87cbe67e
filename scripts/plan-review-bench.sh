#!/usr/bin/env bash
# The time of `kayoctl plan review` on a 1,000-VM migration plan beside that
# of `terraform show -json` of the same plan (what a pipeline runs first).
# Applies 16 hosts, a cluster and a volume, then plans PR_BENCH_VMS (1000)
# VMs pinned round-robin (for_each): their creation (PR_BENCH_MODE=create,
# the default), or, with PR_BENCH_MODE=migrate, applies them and plans every
# VM one node further on (long: 1,000 VMs are created first). Then times,
# PR_BENCH_ROUNDS (3) times each, in CPU seconds (user+sys) and wall: show
# -json, plan review with the cluster database, plan review --no-database.
# BENCH_CLI=tofu uses OpenTofu.
# Run by scripts/bench.sh; alone: scripts/plan-review-bench.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cli_name=${BENCH_CLI:-terraform}
vms=${PR_BENCH_VMS:-1000}
rounds=${PR_BENCH_ROUNDS:-3}
work=$(mktemp -d "${TMPDIR:-/tmp}/kayo-pr-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$root/scripts/tools.sh" "$cli_name"
cli="$root/bin/$cli_name"
version=0.1.0
pkgdir="$work/mirror/local/kayo/kayo/$version/$(go env GOOS)_$(go env GOARCH)"
mkdir -p "$pkgdir" "$work/tf" "$work/data"
(cd "$root" && go build -o "$pkgdir/terraform-provider-kayo_v$version" . && go build -o "$work/kayoctl" ./cmd/kayoctl)
printf 'provider_installation {\n  filesystem_mirror {\n    path = "%s"\n    include = ["local/kayo/kayo"]\n  }\n}\n' "$work/mirror" >"$work/cli.tfrc"
export TF_CLI_CONFIG_FILE="$work/cli.tfrc" KAYO_DATA_DIR="$work/data" CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1

cat >"$work/tf/main.tf" <<HCL
terraform {
  required_providers {
    kayo = { source = "local/kayo/kayo" }
  }
}
variable "shift" {
  type    = number
  default = 0
}
locals {
  hosts = [for i in range(16) : format("H%02d", i)]
}
resource "kayo_host" "h" {
  for_each         = toset(local.hosts)
  name             = each.key
  address          = "192.0.2.\${index(local.hosts, each.key) + 10}"
  os_edition       = "enterprise"
  processor_vendor = "intel"
  processor_model  = "Xeon E5440"
  processor_cores  = 8
  memory_mb        = 65536
  features         = ["Hyper-V", "Failover-Clustering"]
  network_adapters = [
    { name = "Public", network = "192.0.2.0/24", address = "192.0.2.\${index(local.hosts, each.key) + 10}" },
    { name = "Heartbeat", network = "10.10.10.0/24", address = "10.10.10.\${index(local.hosts, each.key) + 10}" },
  ]
}
resource "kayo_cluster" "c" {
  name           = "BENCH"
  nodes          = [for h in kayo_host.h : h.name]
  static_address = "192.0.2.250/24"
}
resource "kayo_shared_volume" "o" {
  cluster_id   = kayo_cluster.c.id
  lun          = "lun0"
  size_gib     = 4096
  drive_letter = "O"
  node_slots   = 16
}
resource "kayo_virtual_machine" "vm" {
  for_each   = toset([for i in range($vms) : format("VM%04d", i)])
  cluster_id = kayo_cluster.c.id
  volume_id  = kayo_shared_volume.o.id
  name       = each.key
  memory_mb  = 128
  vhd        = { size_gib = 1 }
  owner_node = local.hosts[(tonumber(substr(each.key, 2, 4)) + var.shift) % 16]
}
HCL
cd "$work/tf"
"$cli" init -input=false -no-color >/dev/null
mode=${PR_BENCH_MODE:-create}
if [ "$mode" = migrate ]; then
  "$cli" apply -auto-approve -input=false -no-color -parallelism=16 >"$work/apply.log" || { tail -30 "$work/apply.log" >&2; exit 1; }
  shift=1
else
  "$cli" apply -auto-approve -input=false -no-color -target=kayo_shared_volume.o >"$work/apply.log" || { tail -30 "$work/apply.log" >&2; exit 1; }
  shift=0
fi
"$cli" plan -input=false -no-color -var shift=$shift -out=plan.bin >"$work/plan.log"
"$cli" show -json plan.bin >plan.json
echo "plan review bench ($cli_name, $vms VMs, $mode): plan.json $(du -k plan.json | cut -f1) KiB"
cpu() { /usr/bin/time -f "%U+%S s CPU, %e s wall" "$@" 2>&1 >/dev/null | tail -1; }
for _ in $(seq "$rounds"); do
  echo "  $cli_name show -json:          $(cpu "$cli" show -json plan.bin)"
  echo "  plan review (database):     $(cpu "$work/kayoctl" plan review plan.json)"
  echo "  plan review --no-database:  $(cpu "$work/kayoctl" plan review --no-database plan.json)"
done
