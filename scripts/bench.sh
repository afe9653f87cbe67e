#!/usr/bin/env bash
# make bench: time plan + apply + destroy of 16 kayo_host + 1 kayo_cluster
# against two floors in the same run (17 terraform_data resources: the CLI
# alone; 17 resources of the no-op provider in bench/noop: the CLI plus a
# plugin), then run the engine's own Go benchmarks.
#
#   BENCH_ROUNDS=5            rounds of the lifecycle benchmark (each round
#                             runs all three scenarios, interleaved)
#   BENCH_CLI=terraform|tofu  the CLI to time (bin/terraform by default)
#   BENCH_SCENARIOS=a,b       the VM benchmark's scenarios to run (default:
#                             all; kayo_agents and kayo_etcd_agents time the
#                             node work done by 16 agents: bench/doc.go)
#   BENCH_KAYO_BEFORE=path    time that build of the provider too (kayo_before),
#                             e.g. of main, beside this one in the same rounds
#   BENCH_ENGINE_TIME=1s      -benchtime of the engine benchmarks
#   BENCH_ENGINE=0            skip the engine benchmarks
#   BENCH_QEMU_ROUNDS=5       timed rounds of the qemu live-migration benchmark
#                             (each: one raw-QMP floor move and one kayo move)
#   BENCH_QEMU=0              skip it
#   BENCH_BOOT_ROUNDS=5       timed rounds of the template boot benchmark (each:
#                             one plain-QEMU raw-file boot, one kayo boot)
#   BENCH_BOOT=0              skip it
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=${BENCH_ROUNDS:-5}
export BENCH_CLI=${BENCH_CLI:-terraform}
cd "$root"
"$root/scripts/tools.sh" "$BENCH_CLI"

echo "== lifecycle benchmarks: $rounds rounds with $BENCH_CLI (the VM one with 200 resource blocks)"
go test -count=1 -run '^$' -bench Lifecycle -benchtime="${rounds}x" -timeout 60m ./bench/...
echo
echo "== VM lifecycle again, the 200 resources as one block with for_each"
BENCH_VM_LAYOUT=for_each go test -count=1 -run '^$' -bench VMLifecycle -benchtime="${rounds}x" -timeout 60m ./bench/

if [ "${BENCH_ENGINE:-1}" != 0 ]; then
  echo
  echo "== engine benchmarks"
  # Every package under internal/ but the CLI-driving test support.
  pkgs=$(go list ./internal/... | grep -v -e '/internal/e2e$' -e '/internal/testcli$')
  # shellcheck disable=SC2086
  go test -count=1 -run '^$' -bench . -benchmem -benchtime="${BENCH_ENGINE_TIME:-1s}" -timeout 30m $pkgs
fi

if [ "${BENCH_QEMU:-1}" != 0 ]; then
  echo
  echo "== qemu driver: live migration of 128 MiB and 1 GiB guests with a TCP stream running, raw QMP floor vs engine + agents (bench/qemu_test.go; root: hosts are network namespaces)"
  # A round moves each side once: ~4-8 s on 2 TCG cores (TLS), plus each size's boot.
  go test -count=1 -run '^$' -bench QEMUMigration -benchtime="${BENCH_QEMU_ROUNDS:-15}x" -timeout 60m ./bench/
fi

if [ "${BENCH_BOOT:-1}" != 0 ]; then
  echo
  echo "== qemu driver: the template disk booted to its ready line, plain QEMU on a raw file (floor) vs UpdateVM + agent + NBD (bench/qemu_boot_test.go)"
  go test -count=1 -run '^$' -bench QEMUTemplateBoot -benchtime="${BENCH_BOOT_ROUNDS:-5}x" -timeout 30m ./bench/
fi

if [ "${BENCH_MKFS:-1}" != 0 ]; then
  echo
  echo "== mkfs: Kayo FS next to mkfs.ocfs2 and mkfs.gfs2, 16 slots (bench/mkfs.sh)"
  "$root/bench/mkfs.sh"
fi

if [ "${BENCH_PLAN_REVIEW:-1}" != 0 ]; then
  echo
  echo "== kayoctl plan review beside show -json, 1,000 VMs (scripts/plan-review-bench.sh)"
  "$root/scripts/plan-review-bench.sh"
fi
