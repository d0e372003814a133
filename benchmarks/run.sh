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
         "$build/kmod/sie_target.ko" "$build/kmod/sie_consistency.ko" \
         "$build/tests/runtime/consts/106/const.json"; do
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
  --benchmark_enable_random_interleaving=true --sie_markdown=/mnt/out/probe_cost.md \
  --sie_consts=$build/tests/runtime/consts" \
  >"$out/stdout" 2>"$out/stderr"
rc=$?
set -e
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
grep -v '^\[' "$out/stdout" || true
floor_ms=$(sed -n 's/^FLOOR .*median \([0-9.]*\) ms.*/\1/p' "$out/stdout" | head -1)
if [ $rc -ne 0 ] || [ ! -s "$out/probe_cost.md" ]; then
  echo "run.sh: the benchmark failed (exit $rc); docs/benchmarks.md left unchanged" >&2
  grep -E '^sie vm:|probe_cost_bench' "$out/stderr" >&2 || true
  exit 1
fi

# Load latency of `sie set` (runtime/loader), measured only when the runtime can do it:
# - 1 span: SIE_TARGET_CALL_ARG (synthesized here), with each engine;
# - 15 spans at 15 addresses: SIE_TARGET_FAN (one constant loaded in sie_target_fan_0..14),
#   synthesized here by `sie synth` from synth/specs/sie_target.yaml, with each engine;
# - 15 spans at one address: SIE_BENCH_X15, CALL_ARG's span 15 times (15 probes, one BPF program
#   each, all at sie_target_call_arg+0xe; the kernel aggregates kprobes at one address, and
#   sie_native keeps one probe per place, so this one is BPF only).
# Each cycle: first set (verify + load + attach, each apply probe placed where synth and the
# live bytes predict jump optimization; --no-optimize leaves them where they are), value change,
# unload; each result is checked through sie_target's debugfs. SIE_BENCH_X15 comes from the
# hand-written fixture (no prediction): its default set still attaches, waits and moves.
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
  # CALL_ARG as synth writes it (with its jump-optimization prediction), not the fixture's.
  rm -rf "$out/add/c/102"
  echo "run.sh: synthesizing SIE_TARGET_FAN (15 spans) and SIE_TARGET_CALL_ARG on the host"
  if "$sie" synth "$root/synth/specs/sie_target.yaml" --only SIE_TARGET_FAN \
       --only SIE_TARGET_CALL_ARG --out "$out/fan" >"$out/synth.log" 2>&1 &&
     "$sie" consts --build --consts "$out/add/c" >"$out/consts.log" 2>&1; then
    for d in "$out/fan"/*/; do cp -r "$d" "$out/add/c/"; done
    cat >"$out/add/load.sh" <<GUEST
set -e
insmod $build/kmod/sie_kfuncs.ko
insmod $build/kmod/sie_target.ko
T=/sys/kernel/debug/sie_target
check() { # path input want
  echo \$2 >\$T/\$1; got=\$(cat \$T/\$1)
  [ "\$got" = "\$3" ] || { echo "\$1(\$2) = \$got, want \$3"; exit 1; }
}
cycle() { # tag const path engine [flags]; call_arg(5) = 5 + V; fan(1) = 15 V + 135
  t=\$1; c=\$2; p=\$3; e=\$4; shift 4
  want() { if [ \$p = fan ]; then echo \$((15 * \$1 + 135)); else echo \$((5 + \$1)); fi; }
  in=5; orig=\$((0x1234)); [ \$p = fan ] && in=1 && orig=\$((0x2468))
  echo "LOAD \$t \$(sie set \$c 7 --engine \$e "\$@" --consts /mnt/add/c --json | tr -d '\n ')"
  check \$p \$in \$(want 7)
  echo "CHANGE \$t \$(sie set \$c 9 --consts /mnt/add/c)"; check \$p \$in \$(want 9)
  sie unload \$c
  check \$p \$in \$(want \$orig)
}
for i in 1 2 3; do
  cycle bpf1 SIE_TARGET_CALL_ARG call_arg bpf
  cycle native1 SIE_TARGET_CALL_ARG call_arg native
  cycle bpf15 SIE_TARGET_FAN fan bpf
  cycle native15 SIE_TARGET_FAN fan native
  cycle bpf15one SIE_BENCH_X15 call_arg bpf
  cycle bpf1noopt SIE_TARGET_CALL_ARG call_arg bpf --no-optimize
  cycle native1noopt SIE_TARGET_CALL_ARG call_arg native --no-optimize
  cycle bpf15noopt SIE_TARGET_FAN fan bpf --no-optimize
  cycle native15noopt SIE_TARGET_FAN fan native --no-optimize
  cycle bpf15onenoopt SIE_BENCH_X15 call_arg bpf --no-optimize
  # The kernel's optimizer off: what 15 perf kprobes cost when none waits for it.
  echo 0 > /proc/sys/debug/kprobes-optimization
  cycle bpf15nooptimizer SIE_TARGET_FAN fan bpf
  echo 1 > /proc/sys/debug/kprobes-optimization
done
GUEST
    echo "run.sh: load latency of sie set (1 and 15 spans, both engines, 3 cycles)"
    if "$sie" vm --timeout 1200 --add "$out/add" --out "$out/lo" -- sh /mnt/add/load.sh \
         >"$out/load.txt" 2>&1; then
      med() { sort -n | awk '{v[NR]=$1} END {if (NR) printf "%.1f\n", v[int((NR+1)/2)]}'; }
      # One JSON line per first set (sie set --json): latency_ms is "active in", the phases'
      # *_ms add up to it with the time between them.
      key() { sed -n "s/^LOAD $1 .*\"$2\":\([0-9.]*\)[,}].*/\1/p" "$out/load.txt" | med; }
      lat() { key $1 latency_ms; }
      chg() { sed -n "s/^CHANGE $1 .*updated in \([0-9.]*\) ms.*/\1/p" "$out/load.txt" | med; }
      optd() {
        # Probe counts: the median's integer part (med prints one decimal).
        a=$(key $1 apply_probes | cut -d. -f1); o=$(key $1 optimized_probes | cut -d. -f1)
        p=$(key $1 jump_placed_probes | cut -d. -f1)
        if [ "${p:-0}" -gt 0 ]; then echo "$p/$a apply probes placed for jump optimization"
        else echo "$o/$a apply probes jump-optimized"; fi
      }
      phases() { # tag label: a row of the per-phase table
        echo "| $2 | $(key $1 verify_ms) | $(key $1 build_ms) | $(key $1 load_ms) | $(key $1 attach_ms) | $(key $1 optimize_ms) | $(lat $1) |"
      }
      row() { # tag label
        echo "| $2; $(optd $1) | $(lat $1) ms | $(lat ${1}noopt) ms | $(chg $1) ms |"
      }
      load_rows="$(row bpf1 '1 span (SIE_TARGET_CALL_ARG, synthesized), BPF engine')
$(row native1 '1 span (SIE_TARGET_CALL_ARG, synthesized), native engine (sie_native)')
$(row bpf15 '15 spans at 15 addresses (SIE_TARGET_FAN, synthesized), BPF engine')
$(row native15 '15 spans at 15 addresses (SIE_TARGET_FAN, synthesized), native engine')
$(row bpf15one '15 spans at one address (SIE_BENCH_X15), BPF engine')"
      phase_rows="$(phases bpf1 '1 span, BPF')
$(phases native1 '1 span, native')
$(phases bpf15 '15 spans, BPF')
$(phases native15 '15 spans, native')
$(phases bpf1noopt '1 span, BPF, --no-optimize')
$(phases bpf15noopt '15 spans, BPF, --no-optimize')
$(phases bpf15nooptimizer '15 spans, BPF, kernel optimizer off (debug.kprobes-optimization=0)')"
    else
      echo "run.sh: sie set in the guest failed; load latency stays pending" >&2
      grep -v '^\[' "$out/load.txt" | tail -5 >&2
    fi
  else
    echo "run.sh: synthesizing SIE_TARGET_FAN or building the fixtures' stubs failed; load latency stays pending" >&2
    tail -5 "$out/synth.log" "$out/consts.log" >&2 2>/dev/null || true
  fi
fi

# Transition latency, mode 2 (global) vs mode 1 (per-task), both directions, with 1/4/16
# sie_target kthreads looping over SIE_TARGET_BATCH's safe span (sie_target_batch_cycle), in two
# workloads: "resident" (outside_us 0: a worker is inside the span almost all the time) and
# "passing" (outside_us 2000: it sleeps 2-3 ms between cycles, outside the span). Both numbers
# are the kernel's own clock: mode 2, sie_consistency's time from the request to the gate flip
# (`sie set --json` / `sie unload --json` transition_ms); mode 1, the time from the request to
# the last worker's switch at a clean guard (the stub's per-task epoch statistics: `sie status
# --json` epoch.max_ms once epoch.tasks reaches N, and `sie unload --json` reverse_max_ms).
trans_rows=""
if [ -s "$out/add/c/107/const.json" ] && [ -e "$build/kmod/sie_consistency.ko" ]; then
  cat >"$out/add/trans.sh" <<GUEST
insmod $build/kmod/sie_kfuncs.ko
insmod $build/kmod/sie_target.ko
T=/sys/kernel/debug/sie_target
C=/mnt/add/c
jnum() { sed -n "s/^ *\"\$1\": \"*\([-0-9.a-z]*\)\"*,*\$/\1/p" | head -1; }
w=\$1; load=\$2; outside=\$3
echo \$outside > \$T/outside_us
echo \$w > \$T/workers
sleep 0.5
for rep in 1 2; do
    sie set SIE_TARGET_BATCH 100 --mode 1 --consts \$C >/dev/null || { echo "mode 1 set failed"; exit 1; }
    n=0; tasks=0
    while [ \$n -lt 100 ]; do
      sie status --json >/tmp/st.json 2>/dev/null
      tasks=\$(jnum tasks </tmp/st.json); [ "\${tasks:-0}" -ge \$w ] && break
      n=\$((n + 1)); sleep 0.1
    done
    if [ "\${tasks:-0}" -ge \$w ]; then echo "TRANS \$load 1 \$w forward \$(jnum max_ms </tmp/st.json)"
    else echo "TRANS \$load 1 \$w forward - \${tasks:-0}/\$w-moved"; fi
    sie unload SIE_TARGET_BATCH --timeout 15 --json >/tmp/u.json
    t=\$(jnum reverse_tasks </tmp/u.json)
    if [ "\${t:-0}" -ge \$w ]; then echo "TRANS \$load 1 \$w reverse \$(jnum reverse_max_ms </tmp/u.json)"
    else echo "TRANS \$load 1 \$w reverse - \${t:-0}/\$w-moved"; fi
done
for rep in 1 2; do
    if sie set SIE_TARGET_BATCH 100 --mode 2 --timeout 15 --consts \$C --json >/tmp/s.json 2>/tmp/s.err; then
      echo "TRANS \$load 2 \$w forward \$(jnum transition_ms </tmp/s.json) \$(jnum transition_result </tmp/s.json)"
      if sie unload SIE_TARGET_BATCH --timeout 15 --json >/tmp/u.json 2>/tmp/u.err; then
        echo "TRANS \$load 2 \$w reverse \$(jnum transition_ms </tmp/u.json) \$(jnum reverse_transition </tmp/u.json)"
      else
        echo "TRANS \$load 2 \$w reverse - timeout"
        echo 0 > \$T/workers; sie unload SIE_TARGET_BATCH --timeout 60; echo \$w > \$T/workers; sleep 0.5
      fi
    else
      echo "TRANS \$load 2 \$w forward - timeout"
    fi
done
echo 0 > \$T/workers
echo "TRANS mixed \$load \$w \$(cat \$T/mixed)"
GUEST
  # One guest per workload and worker count: a guest that dies keeps the cells it printed (sie vm
  # echoes the console), and the others still run.
  echo "run.sh: transition latency, mode 1 vs mode 2 (2 workloads x 1/4/16 workers, 2 runs each, one guest each)"
  : >"$out/trans.txt"
  trans_crashed=""
  for load in resident:0 passing:2000; do
    for w in 1 4 16; do
      tag=${load%%:*}$w
      mkdir -p "$out/tr$tag"
      if ! "$sie" vm --timeout 600 --add "$out/add" --out "$out/tr$tag" -- \
           sh /mnt/add/trans.sh $w ${load%%:*} ${load#*:} >"$out/trans$tag.txt" 2>&1; then
        trans_crashed="$trans_crashed ${load%%:*}/$w"
        grep -E '^sie vm: (kernel|error)' "$out/trans$tag.txt" | head -2 >&2
      fi
      # Up to sie vm's own report: after a crash it repeats the last console lines.
      awk '/^sie vm:/ { exit } /^TRANS/' "$out/trans$tag.txt" >>"$out/trans.txt"
    done
  done
  cell() { # workload mode workers dir -> "v1, v2" (ms, timeout, k/N-moved), or "-"
    awk -v l="$1" -v m="$2" -v w="$3" -v d="$4" '$1 == "TRANS" && $2 == l && $3 == m && $4 == w && $5 == d {
      v = ($6 == "-") ? $7 : sprintf("%.1f ms", $6); s = s (s ? ", " : "") v } END { print s ? s : "-" }' \
      "$out/trans.txt"
  }
  for load in resident passing; do
    for w in 1 4 16; do
      trans_rows="$trans_rows| $load | $w | $(cell $load 2 $w forward) | $(cell $load 2 $w reverse) | $(cell $load 1 $w forward) | $(cell $load 1 $w reverse) |
"
    done
  done
  trans_mixed=$(awk '$1 == "TRANS" && $2 == "mixed" { s = s (s ? ", " : "") $3 "/" $4 ": " $5 } END { print s }' "$out/trans.txt")
fi

# End-to-end overhead on a real hot path (fio io_uring, a constant on the per-I/O path).
echo "run.sh: end-to-end overhead (benchmarks/e2e_fio.sh, about 5 minutes)"
"$root/benchmarks/e2e_fio.sh" "$build" "$out/e2e.md" >"$out/e2e.log" 2>&1 ||
  echo "run.sh: end-to-end overhead: a case failed or was not measured: $(tail -3 "$out/e2e.log")" >&2

# Synthesis time on the host (warm tree), after the guest runs so the host is quiet.
echo "run.sh: synthesis time of four constants (benchmarks/synth_time.sh, a few minutes)"
synth_rows=$("$root/benchmarks/synth_time.sh" "$build" 2>"$out/synth_time.err") || {
  synth_rows=""
  echo "run.sh: synthesis time not measured: $(tail -3 "$out/synth_time.err")" >&2
}

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
`sie_set_reg` kfunc (sie_kfuncs) and counts hits: the floor of the BPF path. The native cases use
`sie_native` (`probe sie_target_div OFF reg-set ax 8 MAGIC20`): a module kprobe whose pre_handler
applies a fixed value with no BPF program per hit, the fast path for constants set to a plain
number. **Module dispatch** runs the same BPF program from sie_native's own kprobe handler
(`probe sie_target_div OFF bpf PROG_FD`: bpf_prog_run under the kernel's contract for tracing
programs, without the perf-event layer); the two **dispatch floor** rows run a program that
only counts its hit, through each dispatch (no update: the result stays x / 10). The **stub** cases are what `sie set SIE_TARGET_DIVISOR 20 --engine bpf` really loads
(through runtime/loader, in the benchmark's process): the runtime's generated stub for the
constant's span as described by its const.json, a recompute span `X / V` with two probes per
path run (save X before the multiply, apply after the shift) and the full stub per hit (gate,
mode check, per-CPU counters, the formula); the apply place (before a `jmp` to the return thunk)
cannot be jump-optimized, so the optimized case has 1 of its 2 probes [OPTIMIZED].

## Load latency

Each runs in the guest against sie_target constants (under TCG: absolute numbers are
inflated).

TAIL
if [ -n "$load_rows" ]; then
cat <<LOAD
Every step's result is checked through sie_target's debugfs files (\`call_arg\`, \`fan\`).
Medians of 3 cycles of \`sie set\`'s own "active in" (from its start to the new value being
active; \`sie set --json\` latency_ms). By default each apply probe is placed where synth and the
live bytes predict the kernel will jump-optimize it, and nothing waits for the optimizer (it
works in the background); \`--no-optimize\` leaves the probes at their synthesized places.
SIE_TARGET_CALL_ARG and SIE_TARGET_FAN are synthesized by this run (\`sie synth
synth/specs/sie_target.yaml --only SIE_TARGET_FAN --only SIE_TARGET_CALL_ARG\`): CALL_ARG's
place is 4 bytes before its function's end (never optimized), FAN is one constant loaded in 15
functions, so 15 spans, 15 probes at 15 addresses. SIE_BENCH_X15 comes from a hand-written
const.json without the prediction: its default set still waits 1.5 s for the optimizer and
moves what stayed int3. A value change of a loaded constant is one map update (BPF) or one
control write per probe (native).

| constant | first set (default) | first set, --no-optimize | value change |
|---|---|---|---|
$load_rows

Per phase, medians in ms (\`sie set --json\`): verify (artifacts read, bytes of every span and
probe place compared with the live kernel, symbols), build (stub object: reused from synth),
load (programs loaded and verified), attach (every probe attached and pinned), optimize (the
wait for the optimizer, when a probe has no prediction); the total includes the activation.
Attaching many probes: registering an armed kprobe kicks the kernel's optimizer, which holds
kprobe_mutex across a tasks-RCU grace period, so the next registration waits for it. The native
engine registers a constant's probes disarmed and arms them with one command (sie_native
\`arm\`); a perf kprobe event arms at perf_event_open, so the BPF engine opens all of a
constant's events at once (one thread each) and links the programs after: registrations queued
on kprobe_mutex go before the optimizer's next pass. The last row shows the same load with the
optimizer off.
The floor is libbpf opening, loading and attaching one trivial kprobe program at
sie_target_div's probe place in the same guest (sie_probe_cost_bench, median of 5):
**$floor_ms ms**.

| case | verify | build | load | attach | optimize | total |
|---|---:|---:|---:|---:|---:|---:|
$phase_rows

LOAD
else
  echo "Not measured in this run (\`sie set\` missing or failing in the guest: see run.sh's output)."
  echo
fi
if [ -s "$out/e2e.md" ]; then cat "$out/e2e.md"; echo; else
  printf '## End-to-end overhead (fio io_uring, 1-byte writes to /dev/null)\n\nNot measured in this run (see run.sh output).\n\n'
fi
cat <<'SYN'
## Synthesis time (`benchmarks/synth_time.sh`, host)

`sie synth SPEC --only NAME` on this host with the guest kernel's tree warm (one untimed run
first), every affected object rebuilt at V2, V3 and the two check values (its pristine V1 build
comes from sie synth's object cache, filled by the untimed run); median of the timed runs, their range,
and the peak resident set of the largest process (sie synth or a compiler it ran). The
reference's times are the performance issue's (same kind of machine, warm tree; it rebuilds one
object per value and misses a site); the target is at most 0.5x.

| constant | sie | reference | sie / reference | peak RSS |
|---|---|---|---|---|
SYN
if [ -n "$synth_rows" ]; then echo "$synth_rows"; else echo "| not measured in this run (no kernel tree?) | | | | |"; fi
echo
cat <<'TR'
## Transition latency (mode 1 vs mode 2)

Constant SIE_TARGET_BATCH (stored twice around a 100–200 µs sleep; one safe span, all of
`sie_target_batch_cycle`), N sie_target kthreads looping over it, in two workloads:
**resident** (a worker is inside the span almost all the time: it sleeps there) and
**passing** (`outside_us` 2000: it also sleeps 2–3 ms between cycles, outside the span). Two
runs per cell, one guest per row (mode 1 runs first in it). All times are the kernel's clock:
- **mode 2** (global, sie_consistency): from the transition request to the gate flip
  (`sie set --json` / `sie unload --json` `transition_ms`), timeout 15 s ("timeout": no instant
  with nobody inside was found; nothing was applied and everything was detached).
- **mode 1** (per-task): from the request (the loader stamps it into the stub) to the last of
  the N workers switching at a guard with a clean stack (the stub's per-task epoch statistics:
  `sie status --json` `epoch.max_ms` once `epoch.tasks` reaches N; `sie unload --json`
  `reverse_max_ms`). "k/N-moved": only k workers switched within 10 s.

TR
if [ -n "$trans_rows" ]; then
cat <<TR
| workload | workers | mode 2 forward | mode 2 reverse | mode 1 forward | mode 1 reverse |
|---|---|---|---|---|---|
$trans_rows
Mixed pairs (a worker seeing the old and the new value in one span) per guest (workload/workers:
count): ${trans_mixed:-none finished}. Guests that died: ${trans_crashed:-none}. "-": not
measured (the guest died first, or, for a mode 2 reverse, the forward transition never happened).

TR
else
  echo "Not measured in this run (the guest run failed or \`sie set --mode 2\` is missing)."
  echo
fi
cat <<'TR'
Why mode 2 fails on the resident workload from 4 workers on: it needs one instant with **no**
task inside any span (entrants are counted while the count is non-zero); when every thread lives
in the span that instant gets exponentially rarer with N. Mode 1 moves each task on its own at
its next clean guard, so its latency is about one cycle of the slowest worker whatever N is.
With spans short compared to the time threads spend outside them (the passing workload, and
most kernel code), mode 2 converges too.

TR
} >"$tmp"
mv "$tmp" "$doc"
echo "run.sh: wrote $doc"
