#!/bin/sh
# Synthesis time of the four constants the performance issue compares with the reference
# implementation, on this host, warm tree: one untimed run per spec first (V1 objects and the
# tree's build state warm), then RUNS timed runs; the median is reported with the peak RSS
# (GNU time's %M: the largest single process, sie synth or a compiler it ran). Every affected
# object is rebuilt at V2, V3 and the two check values in every run; its V1 (pristine) build
# comes from sie synth's object cache (~/.cache/sie/objects), filled by the untimed run, as the
# performance issue allows ("cache V1 objects by content across tunables and runs").
# Prints markdown table rows: | constant | sie median (runs) | reference | ratio | peak RSS |
# Usage: benchmarks/synth_time.sh [BUILD_DIR]   (RUNS=3 by default)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
sie=$build/bin/sie
runs=${RUNS:-3}
# The reference implementation's times from the issue, measured on the same kind of machine
# (2 cores, warm tree): it rebuilds one object per value where sie rebuilds every affected one.
ref() {
  case $1 in
    SHRINK_BATCH) echo 8.0 ;; HYSTART_DELAY_MAX) echo 7.7 ;;
    MAX_SOFTIRQ_RESTART) echo 8.5 ;; BLK_MAX_REQUEST_COUNT) echo 13.2 ;;
  esac
}
tmp=$(mktemp -d /tmp/sie-synth-time.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
for pair in shrink_batch:SHRINK_BATCH tcp_cubic_hystart:HYSTART_DELAY_MAX \
            max_softirq_restart:MAX_SOFTIRQ_RESTART blk_max_request_count:BLK_MAX_REQUEST_COUNT; do
  spec=$root/synth/specs/${pair%%:*}.yaml
  name=${pair#*:}
  once() { # $1: output dir -> "seconds maxrss_kb" on stdout
    rm -rf "$1"
    /usr/bin/time -f '%e %M' -o "$tmp/time" "$sie" synth "$spec" --only "$name" --out "$1" \
      >"$tmp/log" 2>&1 || { echo "synth_time.sh: sie synth $name failed:" >&2; tail -5 "$tmp/log" >&2; exit 1; }
    cat "$tmp/time"
  }
  once "$tmp/warm" >/dev/null
  : >"$tmp/runs"
  i=0
  while [ $i -lt "$runs" ]; do once "$tmp/out" >>"$tmp/runs"; i=$((i + 1)); done
  sort -n "$tmp/runs" | awk -v name="$name" -v ref="$(ref "$name")" -v n="$runs" '
    { t[NR] = $1; if ($2 > m) m = $2 }
    END {
      med = t[int((NR + 1) / 2)]
      printf "| %s | %.1f s (%d runs, %.1f-%.1f) | %.1f s | %.2fx | %.0f MiB |\n",
             name, med, n, t[1], t[NR], ref, med / ref, m / 1024
    }'
done
