#!/usr/bin/env bash
# mkfs comparison (part of `make bench`): formats fresh sparse LUN images of
# 10 GiB, 1 TiB and 16 TiB - 1 MiB with 16 node slots, side by side:
#
#   kayofs  go build ./bench/mkfs (kayofs.Format, 4 KiB blocks, 16 slots)
#   ocfs2   mkfs.ocfs2 -q -b 4K -C 1M -N 16 -F      (Debian ocfs2-tools)
#   gfs2    mkfs.gfs2 -O -p lock_nolock -j 16        (Debian gfs2-utils)
#
# and prints the median wall time of BENCH_MKFS_ROUNDS runs (a fresh image
# each run) and the bytes written (du of the image), then our ratios.
# The tools (and kmod, without which mkfs.ocfs2 misreports) are installed
# with apt-get when missing. Images go to BENCH_MKFS_DIR (default: a
# fresh directory under /var/tmp, on disk); a size its file system refuses
# (ext4 caps a file near 16 TiB) goes to /dev/shm (tmpfs) for all three.
#
#   BENCH_MKFS_ROUNDS=3   runs per size and tool
#   BENCH_MKFS_SIZES="10G 1T 16T-1M"
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=${BENCH_MKFS_ROUNDS:-3}
sizes=${BENCH_MKFS_SIZES:-"10G 1T 16T-1M"}
export PATH="$PATH:/usr/sbin:/sbin"

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
need=()
command -v mkfs.ocfs2 >/dev/null || need+=(ocfs2-tools)
command -v mkfs.gfs2 >/dev/null || need+=(gfs2-utils)
command -v kmod >/dev/null || need+=(kmod)
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]} (apt-get)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [ -n "${BENCH_MKFS_DIR:-}" ]; then
  work=$BENCH_MKFS_DIR
  mkdir -p "$work"
  cleanup() { rm -rf "$work/lun.img" "$work/kayo-mkfs" ${shm:+"$shm"}; }
else
  work=$(mktemp -d /var/tmp/kayo-mkfs-bench.XXXXXX)
  cleanup() { rm -rf "$work" ${shm:+"$shm"}; }
fi
shm=
trap cleanup EXIT
(cd "$root" && go build -o "$work/kayo-mkfs" ./bench/mkfs)

bytes_of() { # 10G 1T 16T-1M → bytes
  case "$1" in
    10G) echo $((10 << 30)) ;;
    1T) echo $((1 << 40)) ;;
    16T-1M) echo $(((16 << 40) - (1 << 20))) ;;
    *) numfmt --from=iec "$1" ;;
  esac
}

run() { # tool image → "nanoseconds bytes"
  local tool=$1 img=$2 t0 t1
  t0=$(date +%s%N)
  case "$tool" in
    kayofs) "$work/kayo-mkfs" -slots 16 -block-size 4096 "$img" >/dev/null ;;
    ocfs2) mkfs.ocfs2 -q -b 4K -C 1M -N 16 -F "$img" >/dev/null 2>&1 ;;
    gfs2) mkfs.gfs2 -O -p lock_nolock -j 16 "$img" >/dev/null 2>&1 ;;
  esac
  sync "$img" # fsync of the image only: what each tool wrote is durable
  t1=$(date +%s%N)
  echo "$((t1 - t0)) $(du -B1 "$img" | cut -f1)"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

results=$(mktemp)
printf '%-10s %-7s %12s %16s  %s\n' SIZE TOOL "WALL (s)" "WRITTEN (bytes)" "IMAGE ON"
for size in $sizes; do
  n=$(bytes_of "$size")
  dir=$work
  if ! truncate -s "$n" "$dir/lun.img" 2>/dev/null; then
    rm -f "$dir/lun.img"
    shm=$(mktemp -d /dev/shm/kayo-mkfs-bench.XXXXXX)
    dir=$shm
  fi
  rm -f "$dir/lun.img"
  for tool in kayofs ocfs2 gfs2; do
    times=()
    written=0
    for ((r = 0; r < rounds; r++)); do
      rm -f "$dir/lun.img"
      truncate -s "$n" "$dir/lun.img"
      read -r ns written < <(run "$tool" "$dir/lun.img")
      times+=("$ns")
    done
    rm -f "$dir/lun.img"
    med=$(printf '%s\n' "${times[@]}" | median)
    printf '%-10s %-7s %12.4f %16d  %s\n' "$size" "$tool" "$(awk -v n="$med" 'BEGIN{print n/1e9}')" "$written" \
      "$(df --output=fstype "$dir" | tail -1) ($dir)"
    echo "$size $tool $med $written" >>"$results"
  done
  if [ -n "$shm" ]; then rm -rf "$shm"; shm=""; fi
done
echo
echo "kayofs ratios (time: how many times faster; bytes: fraction written)"
awk '
  { t[$1" "$2] = $3; b[$1" "$2] = $4; if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
  END {
    for (i = 1; i <= n; i++) {
      s = order[i]
      for (j = 0; j < 2; j++) {
        p = j ? "gfs2" : "ocfs2"
        printf "%-10s vs %-6s %9.0fx faster   %12.6f of the bytes (1/%.0f)\n", s, p,
          t[s" "p] / t[s" kayofs"], b[s" kayofs"] / b[s" "p], b[s" "p] / b[s" kayofs"]
      }
    }
  }' "$results"
rm -f "$results"
