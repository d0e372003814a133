#!/bin/sh
# End-to-end overhead of a SIE probe on a real hot path (issue #14 item 2; the KernelX paper's
# Figure 16): fio, ioengine=io_uring, 1-byte writes to /dev/null, 4 jobs at iodepth 1 on the
# guest's one vCPU, with IO_SUBMIT_PLUG_THRESHOLD (io_submit_sqes: `state->need_plug = max_ios >
# 2`, evaluated once per submitting io_uring_enter(2), so once per I/O here) set to its shipped
# value 2 by (a) the native engine, (b) the BPF stub, (c) a policy (benchmarks/bpf/e2e_shipped.bpf.c,
# returns the shipped value per event), against no probe. Behaviour is unchanged in every case;
# each probed run must show its probe hit at least once per I/O (`sie status --json` hits >=
# fio's total_ios) or the case is reported as FAILED, not as a number.
#
# Usage: benchmarks/e2e_fio.sh [BUILD_DIR] [OUT_MD]        (default build; OUT_MD or $SIE_E2E_OUT)
# Prints the markdown section "## End-to-end overhead (...)" and writes it to OUT_MD when given.
# Exit 0: every case measured; 1: some case failed or was not measured (the section says which).
# run.sh should call it after its guest runs and splice the file where the section belongs:
#   "$root/benchmarks/e2e_fio.sh" "$build" "$out/e2e.md" >/dev/null || echo "run.sh: e2e: see $out/e2e.md" >&2
#   ... then `cat "$out/e2e.md"` inside the { ... } >"$tmp" block that writes docs/benchmarks.md.
# About 4-5 minutes on a 2-core host under TCG (synthesis ~20 s, one guest: boot, warm-up,
# ROUNDS x 4 runs of RUNTIME s plus sie set/unload each).
#
# Environment: SIE_E2E_ROUNDS (5), SIE_E2E_RUNTIME (8 s per fio run), SIE_E2E_CONSTS=DIR (use
# already synthesized artifacts of IO_SUBMIT_PLUG_THRESHOLD instead of running sie synth; copied,
# never written), SIE_VM_LOCK=FILE (hold flock FILE around the guest run only).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
md_out=${2:-${SIE_E2E_OUT:-}}
sie=$build/bin/sie
spec=$root/benchmarks/e2e/io_uring_submit.yaml
policy=$root/benchmarks/bpf/e2e_shipped.bpf.c
name=IO_SUBMIT_PLUG_THRESHOLD
shipped=2
rounds=${SIE_E2E_ROUNDS:-5}
runtime=${SIE_E2E_RUNTIME:-8}
for f in "$sie" "$build/bin/sie-run" "$build/kmod/sie_native.ko" "$build/kmod/sie_kfuncs.ko" \
         "$spec" "$policy" /usr/bin/fio; do
  [ -e "$f" ] || { echo "e2e_fio.sh: $f missing (ninja -C $build sie sie-run; apt install fio)" >&2; exit 1; }
done

t0=$(date +%s)
tmp=$(mktemp -d /tmp/sie-e2e.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/add" "$tmp/out"
section() { # writes the section (stdin) to stdout and OUT_MD
  if [ -n "$md_out" ]; then tee "$md_out"; else cat; fi
}
not_measured() { # reason: a section saying why there are no numbers, exit 1
  section <<EOF
## End-to-end overhead (fio io_uring, 1-byte writes to /dev/null)

Not measured in this run ($(date -u '+%Y-%m-%d %H:%M UTC')): $1

EOF
  exit 1
}

# 1. Artifacts on the host: synthesize the constant (or copy SIE_E2E_CONSTS) and compile the
# policy into the policy cache next to them, so the guest runs no clang.
if [ -n "${SIE_E2E_CONSTS:-}" ]; then
  cp -r "$SIE_E2E_CONSTS" "$tmp/add/c"
  rm -rf "$tmp/add/c/policy-cache"
  origin="prebuilt (SIE_E2E_CONSTS=$SIE_E2E_CONSTS)"
  echo "e2e_fio.sh: using $origin" >&2
else
  echo "e2e_fio.sh: synthesizing $name on the host (sie synth $spec)" >&2
  if ! "$sie" synth "$spec" --only "$name" --out "$tmp/add/c" >"$tmp/synth.log" 2>&1; then
    tail -5 "$tmp/synth.log" >&2
    not_measured "\`sie synth benchmarks/e2e/io_uring_submit.yaml\` failed: $(grep -m1 'error: ' "$tmp/synth.log" | sed 's/^sie synth: error: //')"
  fi
  origin="synthesized by this run (\`sie synth benchmarks/e2e/io_uring_submit.yaml\`)"
fi
"$build/bin/sie-run" "$policy" --const "$name" --consts "$tmp/add/c" --compile-only \
  >"$tmp/policy.log" 2>&1 || { cat "$tmp/policy.log" >&2; not_measured "the policy did not compile"; }
t_host=$(($(date +%s) - t0))

# 2. One guest: a warm-up run (fio and sie come over 9p, the modules get loaded), then ROUNDS
# rounds of the four cases, the order rotated each round so drift of the emulator's speed is
# spread over all cases. Every probed run: set, wait for [OPTIMIZED] (the kernel optimizes in the
# background, up to 5 s), fio, `sie status --json` and the kprobes list, unload.
cat >"$tmp/add/e2e.sh" <<GUEST
set -u
C=/mnt/add/c
O=/mnt/out
SIE=$sie
KP=/sys/kernel/debug/kprobes/list
FIO="fio --name=e2e --filename=/dev/null --ioengine=io_uring --rw=write --bs=1 --size=64M \
--iodepth=1 --numjobs=4 --group_reporting --lat_percentiles=1 --time_based --output-format=json"
uname -r > \$O/guest_kernel
fio --version > \$O/fio_version
wait_opt() {
  n=0
  while [ \$n -lt 50 ] && ! grep -q 'io_submit_sqes.*OPTIMIZED' \$KP 2>/dev/null; do
    sleep 0.1; n=\$((n + 1))
  done
}
run() { # round case
  t=\$O/\$1-\$2
  case \$2 in
    none) \$SIE status --json > \$t.status.json 2>&1; rc=0 ;;
    native|bpf) \$SIE set $name=$shipped --engine \$2 --consts \$C --json > \$t.set.json 2> \$t.err; rc=\$? ;;
    policy) \$SIE-run $policy --const $name --consts \$C --pin > \$t.set.json 2> \$t.err; rc=\$? ;;
  esac
  echo \$rc > \$t.rc
  [ \$rc -eq 0 ] || return 0
  [ \$2 = none ] || wait_opt
  cat \$KP > \$t.kprobes.before 2>/dev/null
  \$FIO --runtime=$runtime > \$t.fio.json 2> \$t.fio.err
  [ \$2 = none ] || \$SIE status --json > \$t.status.json 2>> \$t.err
  cat \$KP > \$t.kprobes.txt 2>/dev/null
  case \$2 in
    native|bpf) \$SIE unload $name >> \$t.err 2>&1 ;;
    policy) \$SIE-run --stop >> \$t.err 2>&1 ;;
  esac
  echo "e2e: round \$1 \$2 done"
}
\$SIE set $name=$shipped --engine native --consts \$C > /dev/null 2>&1 && \$SIE unload $name > /dev/null 2>&1
\$FIO --runtime=2 > /dev/null 2>&1
set -- none native bpf policy
r=1
while [ \$r -le $rounds ]; do
  for c in "\$@"; do run \$r \$c; done
  r=\$((r + 1))
  first=\$1; shift; set -- "\$@" \$first
done
GUEST
echo "e2e_fio.sh: one guest: warm-up, then $rounds rounds x 4 cases x ${runtime} s of fio" >&2
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
t1=$(date +%s)
vm() {
  if [ -n "${SIE_VM_LOCK:-}" ]; then flock "$SIE_VM_LOCK" "$@"; else "$@"; fi
}
set +e
vm "$sie" vm -v --timeout 900 --add "$tmp/add" --out "$tmp/out" -- sh /mnt/add/e2e.sh \
  >"$tmp/vm.out" 2>"$tmp/vm.err"
vm_rc=$?
set -e
t_guest=$(($(date +%s) - t1))
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
[ -s "$tmp/out/guest_kernel" ] || {
  grep -E '^sie vm:' "$tmp/vm.err" >&2 || true
  not_measured "the guest run failed (sie vm exit $vm_rc)"
}
accel=$(sed -n 's/^sie vm: accel \([a-z]*\);.*/\1/p' "$tmp/vm.err" | tail -n1 | tr a-z A-Z)
cpus=$(sed -n 's/.*-smp \([0-9]*\).*/\1/p' "$tmp/vm.err" | head -n1)

# 3. The table, from fio's JSON and sie's status files.
t_total=$(($(date +%s) - t0))
python3 - "$tmp/out" "$rounds" "$name" "$shipped" >"$tmp/table.md" <<'PY' || table_rc=$?
import json, os, statistics, sys

out, rounds, name, shipped = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
cases = [("none", "no probe"), ("native", "native engine (`sie set --engine native`)"),
         ("bpf", "BPF stub (`sie set --engine bpf`)"),
         ("policy", "policy (`sie-run benchmarks/bpf/e2e_shipped.bpf.c`)")]


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def text(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


res = {}
for case, _ in cases:
    runs, errs = {}, []
    for r in range(1, rounds + 1):
        t = os.path.join(out, f"{r}-{case}")
        if text(t + ".rc").strip() != "0":
            errs.append(f"round {r}: set failed: {text(t + '.err').strip().splitlines()[-1:] or ['?']}")
            continue
        fio = load(t + ".fio.json")
        if not fio or fio["jobs"][0].get("error"):
            errs.append(f"round {r}: fio failed: {text(t + '.fio.err').strip()[:200]}")
            continue
        w = fio["jobs"][0]["write"]
        run = {"iops": w["iops"], "lat": w["lat_ns"]["percentile"]["50.000000"],
               "ios": w["total_ios"]}
        st = [s for s in (load(t + ".status.json") or []) if s.get("name") == name]
        kp = [l for l in text(t + ".kprobes.txt").splitlines() if "io_submit_sqes" in l]
        if case == "none":
            if st or kp:
                errs.append(f"round {r}: a probe was loaded in the no-probe case")
                continue
        else:
            if not st:
                errs.append(f"round {r}: {name} not in sie status after the run")
                continue
            s = st[0]
            applies = [p for p in s.get("probes", []) if p.get("role") == "apply"]
            hits = sum(x.get("hits", 0) for x in s.get("spans", []))
            want_engine = "native" if case == "native" else "bpf"
            if s.get("value") != shipped or s.get("engine") != want_engine or \
                    (case == "policy") != bool(s.get("policy")):
                errs.append(f"round {r}: status shows value {s.get('value')}, engine "
                            f"{s.get('engine')}, policy {s.get('policy')}")
                continue
            if hits < run["ios"] or not kp:
                errs.append(f"round {r}: probe hit {hits} times for {run['ios']} I/Os "
                            f"(kprobes listed: {len(kp)})")
                continue
            bad = sum(x.get(k, 0) for x in s.get("spans", []) for k in ("rejected", "failed"))
            if bad:
                errs.append(f"round {r}: {bad} hits rejected or failed")
                continue
            run.update(hits=hits, applies=len(applies),
                       optimized=sum(1 for p in applies if p.get("optimized")),
                       kp_opt=sum(1 for l in kp if "[OPTIMIZED]" in l), kp=len(kp))
        runs[r] = run
    res[case] = (runs, errs)

base = res["none"][0]
fmt_k = lambda v: f"{v / 1000:.1f}k"
pct = lambda v: f"{v * 100:+.1f} %"
rows, failed = [], False
for case, label in cases:
    runs, errs = res[case]
    if errs or len(runs) < rounds:
        failed = True
        rows.append(f"| {label} | FAILED: {'; '.join(errs)[:300]} | | | | |")
        continue
    iops = [x["iops"] for x in runs.values()]
    lat = [x["lat"] / 1000 for x in runs.values()]
    if case == "none":
        probes = "none (no kprobe at io_submit_sqes)"
    else:
        hits = statistics.median(x["hits"] / x["ios"] for x in runs.values())
        nhits = statistics.median(x["hits"] for x in runs.values())
        opt = sum(x["optimized"] for x in runs.values())
        app = sum(x["applies"] for x in runs.values())
        probes = (f"{app // len(runs)} apply probe at io_submit_sqes+0x64; {nhits / 1e6:.2f}M hits a run, "
                  f"{hits:.2f} per I/O; [OPTIMIZED] {opt}/{app} ({100 * opt / app:.0f} %)")
    iops_c = f"{fmt_k(statistics.median(iops))} ({fmt_k(min(iops))}-{fmt_k(max(iops))})"
    lat_c = f"{statistics.median(lat):.2f} us ({min(lat):.2f}-{max(lat):.2f})"
    if case == "none" or not base or len(base) < rounds:
        thr_c = lat_s = "-"
    else:
        # Paired per round (the same emulator speed), then the median over the rounds.
        thr = [1 - runs[r]["iops"] / base[r]["iops"] for r in runs]
        ls = [runs[r]["lat"] / base[r]["lat"] - 1 for r in runs]
        thr_c = f"{pct(statistics.median(thr))} ({pct(min(thr))} .. {pct(max(thr))})"
        lat_s = f"{pct(statistics.median(ls))} ({pct(min(ls))} .. {pct(max(ls))})"
    rows.append(f"| {label} | {probes} | {iops_c} | {lat_c} | {thr_c} | {lat_s} |")
print("| case | probes (hits, [OPTIMIZED] share) | IOPS, median (range) | median latency, median "
      "(range) | throughput slowdown vs no probe | latency slowdown vs no probe |")
print("|---|---|---:|---:|---:|---:|")
print("\n".join(rows))
sys.exit(1 if failed else 0)
PY
table_rc=${table_rc:-0}
{
cat <<EOF
## End-to-end overhead (fio io_uring, 1-byte writes to /dev/null)

Written by \`benchmarks/e2e_fio.sh\`. A syscall-heavy workload with a real kernel constant
probed on its per-I/O path: \`$name\` (io_uring/io_uring.c, \`io_submit_state_start\` inlined
into \`io_submit_sqes\`: \`state->need_plug = max_ios > 2\`, one \`cmp \$0x2,%r12d\` ... \`seta\`,
a flags span) set to its shipped value $shipped, so the kernel behaves as without sie and only
the probe's cost shows. Each submitting \`io_uring_enter(2)\` runs it once, so at iodepth 1 the
probe fires once per I/O. Artifacts: $origin.

| | |
|---|---|
| date | $(date -u '+%Y-%m-%d %H:%M UTC') |
| host CPUs (\`nproc\`) | $(nproc), $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1) |
| host kernel | $(uname -r) |
| guest | $(cat "$tmp/out/guest_kernel"), ${accel:-unknown} (from \`sie vm -v\`), ${cpus:-?} vCPU |
| workload | $(cat "$tmp/out/fio_version"): \`fio --ioengine=io_uring --filename=/dev/null --rw=write --bs=1 --iodepth=1 --numjobs=4 --group_reporting --lat_percentiles=1 --time_based --runtime=$runtime\` |
| runs | $rounds rounds x 4 cases, the case order rotated each round; one warm-up run first |
| host load average (1/5/15 min) | before $load_before, after $load_after |
| wall time | ${t_total} s (host artifacts ${t_host} s, guest ${t_guest} s) |

EOF
cat "$tmp/table.md"
cat <<EOF

**IOPS** is fio's aggregate over the 4 jobs, **median latency** fio's 50th percentile of the total
latency (submission to completion, \`lat_ns\`), each the median over the rounds with the range.
The **slowdowns** are paired per round (the case against the no-probe run of the same round:
\`1 - IOPS/IOPS_none\` and \`lat/lat_none - 1\`), median over the rounds with the range; a range
that includes 0 is within the noise of this host. **probes**: apply probes and where, hits per
run from \`sie status --json\` and per I/O (hits / fio's total_ios: a run with fewer hits than
I/Os fails the case), and how many of them the kernel had jump-optimized
(\`/sys/kernel/debug/kprobes/list\` shows [OPTIMIZED]) after each run. Every probed run was set,
measured and unloaded on its own (\`sie set $name=$shipped --engine native|bpf\`,
\`sie-run ... --pin\` / \`sie-run --stop\`).

EOF
if [ "$accel" = TCG ]; then
  cat <<'EOF'
Under TCG every instruction is emulated: absolute IOPS and latencies are far below bare metal,
and a probe's share of the path is not what it is on real hardware. Compare the cases with each
other, not with other machines.

EOF
fi
} | section
echo "e2e_fio.sh: done in ${t_total} s (host ${t_host} s, guest ${t_guest} s)" >&2
[ "$table_rc" -eq 0 ] && [ "$vm_rc" -eq 0 ] || exit 1
