#!/bin/sh
# Runs the benchmarks fully in the guest and (re)writes docs/benchmarks.md with the numbers and
# the machine they came from. Usage: benchmarks/run.sh [BUILD_DIR]   (default: build)
#
# The probe-cost cases are repeated and randomly interleaved (median reported): on a shared,
# busy host the emulator's speed drifts, and interleaving spreads that drift over every case
# instead of charging it to whichever case happened to run during a burst.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
sie=$build/bin/sie
bench=$build/bin/sie_probe_cost_bench
for f in "$sie" "$bench" "$build/kmod/sie_native.ko" "$build/kmod/sie_kfuncs.ko" \
         "$build/kmod/sie_target.ko" "$build/kmod/sie_consistency.ko"; do
  [ -e "$f" ] || { echo "run.sh: $f missing: ninja -C $build sie sie_probe_cost_bench" >&2; exit 1; }
done
min_time=${SIE_BENCH_MIN_TIME:-0.2}
reps=${SIE_BENCH_REPETITIONS:-25}

out=$(mktemp -d /tmp/sie-bench.XXXXXX)
trap 'rm -rf "$out"' EXIT
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "run.sh: probe cost, $reps interleaved repetitions of ${min_time} s per case (a few minutes under TCG)"
set +e
"$sie" vm -v --timeout 1200 --out "$out" -- sh -c "uname -r > /mnt/out/guest_kernel && exec $bench \
  --benchmark_min_time=$min_time --benchmark_repetitions=$reps \
  --benchmark_enable_random_interleaving=true --sie_markdown=/mnt/out/probe_cost.md" \
  >"$out/stdout" 2>"$out/stderr"
rc=$?
set -e
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
grep -v '^\[' "$out/stdout" || true
if [ $rc -ne 0 ] || [ ! -s "$out/probe_cost.md" ]; then
  echo "run.sh: the benchmark failed (exit $rc); docs/benchmarks.md left unchanged" >&2
  grep -E '^sie vm:|probe_cost_bench' "$out/stderr" >&2 || true
  exit 1
fi

# Load latency of `sie set` (runtime/loader), measured only when the runtime can do it: 1 span
# (SIE_TARGET_CALL_ARG) with each engine, and 15 spans: SIE_BENCH_X15, a copy of CALL_ARG's span
# 15 times (15 probes, one BPF program each, all at sie_target_call_arg+0xe: the only 15-probe
# layout on sie_target whose result stays checkable; the kernel aggregates kprobes at one
# address, and sie_native keeps one probe per place, so this one is BPF only). Each cycle: first
# set (verify + load + attach + optimizer search, or without it: --no-optimize), value change,
# unload; each result is checked through sie_target's debugfs file.
fixtures=$root/tests/runtime/fixtures/sie_target
load_rows=""
if "$sie" set --help >/dev/null 2>&1 && [ -d "$fixtures" ]; then
  mkdir -p "$out/add/c" "$out/lo"
  cp -r "$fixtures/." "$out/add/c/"
  mkdir -p "$out/add/c/199"
  python3 - "$out/add/c/102/const.json" "$out/add/c/199/const.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["id"], c["name"] = 199, "SIE_BENCH_X15"
c["description"] = "benchmark only: SIE_TARGET_CALL_ARG's span 15 times (15 probes at one address)"
c["spans"] = [c["spans"][0]] * 15
json.dump(c, open(sys.argv[2], "w"), indent=2, sort_keys=True)
PY
  if "$sie" consts --build --consts "$out/add/c" >"$out/consts.log" 2>&1; then
    cat >"$out/add/load.sh" <<GUEST
set -e
insmod $build/kmod/sie_kfuncs.ko
insmod $build/kmod/sie_target.ko
f=/sys/kernel/debug/sie_target/call_arg
check() { echo 5 >\$f; got=\$(cat \$f); [ "\$got" = "\$1" ] || { echo "call_arg(5) = \$got, want \$1"; exit 1; }; }
cycle() { # tag const engine [flags]
  t=\$1; c=\$2; e=\$3; shift 3
  echo "LOAD \$t \$(sie set \$c 7 --engine \$e "\$@" --consts /mnt/add/c)"; check 12
  echo "CHANGE \$t \$(sie set \$c 9 --consts /mnt/add/c)"; check 14
  sie unload \$c; check $((5 + 0x1234))
}
for i in 1 2 3; do
  cycle bpf1 SIE_TARGET_CALL_ARG bpf
  cycle native1 SIE_TARGET_CALL_ARG native
  cycle bpf15 SIE_BENCH_X15 bpf
  cycle bpf1noopt SIE_TARGET_CALL_ARG bpf --no-optimize
  cycle native1noopt SIE_TARGET_CALL_ARG native --no-optimize
  cycle bpf15noopt SIE_BENCH_X15 bpf --no-optimize
done
GUEST
    echo "run.sh: load latency of sie set (1 and 15 spans, both engines, 3 cycles)"
    if "$sie" vm --timeout 900 --add "$out/add" --out "$out/lo" -- sh /mnt/add/load.sh \
         >"$out/load.txt" 2>&1; then
      med() { sort -n | awk '{v[NR]=$1} END {if (NR) print v[int((NR+1)/2)]}'; }
      lat() { sed -n "s/^LOAD $1 .*active in \([0-9.]*\) ms.*/\1/p" "$out/load.txt" | med; }
      chg() { sed -n "s/^CHANGE $1 .*updated in \([0-9.]*\) ms.*/\1/p" "$out/load.txt" | med; }
      optd() { grep "^LOAD $1 " "$out/load.txt" | head -1 | grep -o '[0-9]*/[0-9]* apply probes jump-optimized' || true; }
      row() { # tag label
        echo "| $2; $(optd $1) | $(lat $1) ms | $(lat ${1}noopt) ms | $(chg $1) ms |"
      }
      load_rows="$(row bpf1 '1 span (SIE_TARGET_CALL_ARG), BPF engine')
$(row native1 '1 span (SIE_TARGET_CALL_ARG), native engine (sie_native)')
$(row bpf15 '15 spans (SIE_BENCH_X15: 15 probes at one address), BPF engine')"
    else
      echo "run.sh: sie set in the guest failed; load latency stays pending" >&2
      grep -v '^\[' "$out/load.txt" | tail -5 >&2
    fi
  fi
fi

# Transition latency, mode 2 (global) vs mode 1 (per-task), both directions, with 1/2/4
# sie_target kthreads living in SIE_TARGET_BATCH's safe span (sie_target_batch_cycle). Mode 2:
# the kernel's time from the request to the gate flip (sie set --json transition_ms; the unload's
# from the journal). Mode 1: wall time after `sie set` returns (forward) or `sie unload` starts
# (reverse) until every worker passed a clean guard (sie status' per-task transition counter),
# polled, so its resolution is one `sie status` call.
trans_rows=""
if [ -s "$out/add/c/107/const.json" ] && [ -e "$build/kmod/sie_consistency.ko" ]; then
  cat >"$out/add/trans.sh" <<GUEST
insmod $build/kmod/sie_kfuncs.ko
insmod $build/kmod/sie_target.ko
T=/sys/kernel/debug/sie_target
C=/mnt/add/c
jnum() { sed -n "s/^ *\"\$1\": \"*\([-0-9.a-z]*\)\"*,*\$/\1/p" | head -1; }
ms_since() { echo \$(( (\$(date +%s%N) - \$1) / 1000000 )); }
transitions() { t=\$(sie status --json 2>/dev/null | jnum transitions); echo \${t:-0}; }
w=\$1
echo \$w > \$T/workers
sleep 0.5
for rep in 1 2; do
    sie set SIE_TARGET_BATCH 100 --mode 1 --consts \$C >/dev/null || { echo "mode 1 set failed"; exit 1; }
    t0=\$(date +%s%N); n=0
    while [ "\$(transitions)" -lt \$w ] && [ \$n -lt 200 ]; do n=\$((n + 1)); done
    echo "TRANS 1 \$w forward \$(ms_since \$t0) polled"
    t0=\$(date +%s%N)
    sie unload SIE_TARGET_BATCH --timeout 15 &
    pid=\$!; got=
    while [ -e /sys/fs/bpf/sie/SIE_TARGET_BATCH/sie_stats ]; do
      [ "\$(transitions)" -ge \$((2 * w)) ] && { got=\$(ms_since \$t0); break; }
    done
    wait \$pid
    echo "TRANS 1 \$w reverse \${got:--} not-seen"
done
for rep in 1 2; do
    if sie set SIE_TARGET_BATCH 100 --mode 2 --timeout 15 --consts \$C --json >/tmp/s.json 2>/tmp/s.err; then
      echo "TRANS 2 \$w forward \$(jnum transition_ms </tmp/s.json) \$(jnum transition_result </tmp/s.json)"
      if sie unload SIE_TARGET_BATCH --timeout 15 2>/tmp/u.err; then
        ms=\$(cat /var/log/sie/journal.jsonl /run/sie/journal.jsonl 2>/dev/null | grep '"outcome":"unloaded"' |
             tail -1 | sed -n 's/.*"transition_ms":\([0-9.e+-]*\).*/\1/p')
        echo "TRANS 2 \$w reverse \${ms:--} done"
      else
        echo "TRANS 2 \$w reverse - timeout"
        echo 0 > \$T/workers; sie unload SIE_TARGET_BATCH --timeout 60; echo \$w > \$T/workers; sleep 0.5
      fi
    else
      echo "TRANS 2 \$w forward - timeout"
    fi
done
echo 0 > \$T/workers
[ "\$(cat \$T/mixed)" = 0 ] && echo "TRANS mixed 0" || echo "TRANS mixed \$(cat \$T/mixed)"
GUEST
  # One guest per worker count (mode 1 first): a guest that dies keeps the cells it printed
  # (sie vm echoes the console), and the others still run.
  echo "run.sh: transition latency, mode 1 vs mode 2 (1/2/4 workers, 2 runs each, one guest each)"
  : >"$out/trans.txt"
  trans_crashed=""
  for w in 1 2 4; do
    mkdir -p "$out/tr$w"
    if ! "$sie" vm --timeout 600 --add "$out/add" --out "$out/tr$w" -- sh /mnt/add/trans.sh $w \
         >"$out/trans$w.txt" 2>&1; then
      trans_crashed="$trans_crashed $w"
      grep -E '^sie vm: (kernel|error)' "$out/trans$w.txt" | head -2 >&2
    fi
    # Up to sie vm's own report: after a crash it repeats the last console lines.
    awk '/^sie vm:/ { exit } /^TRANS/' "$out/trans$w.txt" >>"$out/trans.txt"
  done
  cell() { # mode workers dir -> "v1, v2" (ms, timeout, not-seen), or "-"
    awk -v m="$1" -v w="$2" -v d="$3" '$1 == "TRANS" && $2 == m && $3 == w && $4 == d {
      v = ($5 == "-") ? $6 : ($5 " ms"); s = s (s ? ", " : "") v } END { print s ? s : "-" }' \
      "$out/trans.txt"
  }
  for w in 1 2 4; do
    trans_rows="$trans_rows| $w | $(cell 2 $w forward) | $(cell 2 $w reverse) | $(cell 1 $w forward) | $(cell 1 $w reverse) |
"
  done
  trans_mixed=$(sed -n 's/^TRANS mixed //p' "$out/trans.txt" | tr '\n' ' ')
fi

accel=$(sed -n 's/^sie vm: accel \([a-z]*\);.*/\1/p' "$out/stderr" | tail -n1)
accel_up=$(echo "${accel:-unknown}" | tr a-z A-Z)
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
probe_line=$(sed -n 's/^probe \(.*\) in sie_target.*/\1/p' "$out/stdout" | head -n1)
doc=$root/docs/benchmarks.md
tmp=$doc.tmp
{
cat <<HDR
# Benchmarks

Written by \`benchmarks/run.sh\` (do not edit by hand; rerun it). The ctest \`sie_vm_probe_cost_bench\`
(label \`vm\`) runs the same program briefly, with every correctness check, to keep it working.

## Machine

| | |
|---|---|
| date | $(date -u '+%Y-%m-%d %H:%M UTC') |
| host CPUs (\`nproc\`) | $(nproc) |
| CPU model | $cpu |
| host kernel | $(uname -r) |
| guest kernel | $(cat "$out/guest_kernel") |
| accelerator | $accel_up (from \`sie vm -v\`) |
| guest | $(sed -n 's/.*-smp \([0-9]*\).*/\1/p' "$out/stderr" | head -n1) vCPUs; the benchmark pinned to vCPU 0 |
| host load average (1/5/15 min) | before $load_before, after $load_after |

HDR
if [ "$accel_up" = TCG ]; then
cat <<'TCG'
**TCG inflates every absolute number** (each guest instruction is translated and emulated; an
int3 trap is a full emulated exception). Compare the cases by their ratios and differences only,
and expect far smaller absolute costs under KVM or on bare metal. The host is shared (other
builds and guests run beside it), which shows up as run-to-run noise: see the ± column.

TCG
fi
cat <<SEC
## Per-hit cost of a SIE update (\`sie_probe_cost_bench\`)

The probed path is sie_target's unsigned division by \`SIE_TARGET_DIVISOR\` (10): one write(2) of
an input to \`/sys/kernel/debug/sie_target/div\` (an fd kept open) runs it 1000 times in the
kernel (sie_target's \`repeat\`), so one trigger is 1000 path runs and 1000 probe hits. The probe sits at \`$probe_line\`, right after
\`movabs \$0xcccccccccccccccd, %rax\` (the constant's Critical Span), and rewrites %rax to the magic
number for 20, so the path returns x / 20. Every case uses the same address; only the probe
kind changes (int3 cases set \`/proc/sys/debug/kprobes-optimization\` to 0; optimized cases fail
unless \`/sys/kernel/debug/kprobes/list\` shows \`[OPTIMIZED]\`). After each case the result is read
back (x / 20 with a probe, x / 10 without) and the probe's hit counter must equal 1000 times the
trigger count, with no kfunc error.

**ns per path run** is a trigger's time over 1000 (the syscall is amortized over 1000 hits);
**added ns per hit** is that minus the no-probe time; **ratio** is it over the no-probe time. Times are medians over ${reps} randomly interleaved
repetitions (± standard deviation), each at least ${min_time} s.

SEC
cat "$out/probe_cost.md"
cat <<'TAIL'

On a busy shared host the spread is wide (± is the standard deviation over repetitions), so
read differences smaller than the ± column as noise. The ordering (native optimized < BPF
optimized < int3 cases) matches the quieter getppid measurements in the guest notes
(/work/shared/reference/guest-vm-notes.md section 7), where an optimized native probe added
about 0.2 us, an optimized BPF probe about 0.5 us and int3 probes 1.2 to 1.5 us under TCG.

Cases: the BPF cases run a kprobe program (`benchmarks/bpf/probe_cost.bpf.c`) that calls the
`sie_set_reg` kfunc (sie_kfuncs) and counts hits: the floor of the BPF path (the runtime's
generated stubs add a gate, per-CPU stats and mode checks). The native cases use `sie_native`
(`probe sie_target_div OFF reg-set ax 8 MAGIC20`): a module kprobe whose pre_handler applies a
fixed value with no BPF program per hit, the fast path for constants set to a plain number.

## Load latency

Each runs in the guest against sie_target constants (under TCG: absolute numbers are
inflated).

TAIL
if [ -n "$load_rows" ]; then
cat <<LOAD
Measured now (the runtime's hand-written sie_target fixtures; every step's result checked
through sie_target's debugfs file). Medians of 3 cycles of \`sie set\`'s own "active in" (from
its start to the new value being active). The default first set includes the jump-optimization
search: one wait of 1.5 s for the kernel's delayed optimizer, then a move to another candidate
offset if the probe is not \`[OPTIMIZED]\` (SIE_TARGET_CALL_ARG's probe is a short \`jmp\`, which
optprobes never copy, and it has no other candidate); \`--no-optimize\` skips it. A value change
of a loaded constant is one map update (BPF) or one control write per probe (native).

| constant | first set (default) | first set, --no-optimize | value change |
|---|---|---|---|
$load_rows

LOAD
fi
cat <<'TAIL'
Still pending:

| measurement | what | why pending |
|---|---|---|
TAIL
[ -n "$load_rows" ] || echo '| load latency, 1 and 15 spans | wall time of the first `sie set` until the new value applies | `sie set` missing or failing in the guest |'
cat <<'TAIL'
| load latency, 15 spans at 15 addresses | the 15-span row above probes one address 15 times | a 15-span constant of a real kernel function (`sie synth` output) |
| transition latency with 8 and 16 threads | below with 1/2/4 sie_target kthreads; 8 makes mode 2 time out (see the kernel test's table), 16 needs user threads (sie_target caps at 8) | a user-thread load generator |
TAIL
cat <<'TR'

## Transition latency (mode 1 vs mode 2)

Constant SIE_TARGET_BATCH (used twice around a 100–200 µs sleep; one safe span, all of
`sie_target_batch_cycle`); N sie_target kthreads loop over it and sleep inside it almost all
the time. Two runs per cell, one guest per worker count (mode 1 runs first in it).
- **mode 2** (global, sie_consistency): the kernel's `ktime_get_ns()` time from the transition
  request to the gate flip (`sie set --json` `transition_ms`; the unload's from the journal),
  timeout 15 s ("timeout": it did not find an instant with no worker inside; nothing applied).
- **mode 1** (per-task): wall time after `sie set` returns (forward) or `sie unload` starts
  (reverse) until all N workers passed a guard with a clean stack (the per-task transition
  counter of `sie status`, polled: resolution is one `sie status` call, ~100 ms under TCG).

TR
if [ -n "$trans_rows" ]; then
cat <<TR
| workers | mode 2 forward | mode 2 reverse | mode 1 forward | mode 1 reverse |
|---|---|---|---|---|
$trans_rows
Mixed pairs (a worker seeing the old and the new value in one span), per finished guest:
${trans_mixed:-none finished}. "-": not measured because the guest died before (a kernel
Oops/panic in kprobe handling: an int3 or a NULL ip in a sie_target worker while kprobes in
\`sie_target_batch_cycle\` are armed, disarmed or unregistered under load; seen under TCG in
every mode, most often around mode-2 transitions). Guests that died: ${trans_crashed:-none} (workers).

TR
else
  echo "Not measured in this run (the guest run failed or \`sie set --mode 2\` is missing)."
  echo
fi
cat <<'TR'
Why mode 2 degrades with more workers: it needs one moment with **no** task inside any span
(new entrants are counted while the count is non-zero); with N threads that live in the span
that moment gets exponentially rarer. Mode 1 moves each task on its own at its next clean
guard. A constant whose spans are short compared to the time threads spend outside them
converges quickly in mode 2.

### Kernel-side detail (sie_vm_consistency_test, earlier run; not rewritten by run.sh)

`TransitionLatency` in tests/consistency drives sie_consistency directly (no `sie set`),
timeout 15 s per transition, 2 vCPUs under TCG. (a) counting kprobes registered per
transition (first version), (b) registered once per instance and enabled per transition
(current).

| workers | forward (to new) | reverse (to original) | frames found by the scan |
|---|---|---|---|
| 0 (nobody inside) | instant: (a) 109–171 ms, (b) 139 ms — arming the probes + 1 stop_machine scan | — | 0 |
| 1 | (a) 186–290 ms, (b) 73–104 ms (all done) | (a) 148–203 ms, (b) 50–86 ms | 1 |
| 2 | (b) 72 ms | (b) 131 ms | 2 |
| 4 | (a) 3.0, 3.7, 4.7, 13.5 s and 1 timeout; (b) 2/2 timeouts at 15 s | (a) 0.48, 5.6, 6.6, 20.2 s | 3–4 |
| 8 | timeout, 4/4 runs (15–30 s limits) | — | 8 |

Mixed pairs: 0 in every run; an ungated switch under the same load (the control in
`WaitsForSleepersAndNeverMixes`) gives 4–7.
TR
} >"$tmp"
mv "$tmp" "$doc"
echo "run.sh: wrote $doc"
