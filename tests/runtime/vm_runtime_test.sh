#!/bin/sh
# Guest test of the runtime (label vm; runs inside the QEMU guest through `sie vm`).
#   $1: constants directory with precompiled stubs (build/tests/runtime/consts, made on the host
#       by `sie consts --build` from the hand-written sie_target fixtures)
# One boot, many checks: every CS kind takes a new value (also values never compiled) and comes
# back exactly on unload; refusals (unknown constant, out of range, other release, mismatched
# code bytes) leave no kprobe and no pin; kill -9 during a load is cleaned by `unload --all`;
# per-task mode (1) and global mode (2) never show the "mixed" pair that immediate mode (0)
# produces; a global transition that cannot finish in time leaves nothing attached (set) or
# everything loaded (unload). Engines: `sie set` picks sie_native (no BPF per hit) for mode-0
# fixed-value reg/mem constants and BPF otherwise, says why with -v, and both restore on unload.
# A livepatched function is refused with nothing left attached, and one livepatched after
# `sie set` is flagged by `sie status`; another kprobe at a probe address is reported by
# `sie set` and `sie status`. Two constants at one place: auto falls back to BPF for the second.
# `sie set A=1 B=2` sets both or neither, also when any kernel step fails.
C=${1:?usage: vm_runtime_test.sh CONSTS_DIR}
T=/sys/kernel/debug/sie_target
FAILS=0
ok() { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; FAILS=$((FAILS + 1)); }
expect_eq() { # name got want
  if [ "$2" = "$3" ]; then ok "$1 = $2"; else bad "$1: got '$2', want '$3'"; fi
}
run() { # path input -> result
  echo "$2" > "$T/$1" && cat "$T/$1"
}
nothing_attached() { # context
  n=$(grep -c sie_target /sys/kernel/debug/kprobes/list 2>/dev/null)
  p=$(ls /sys/fs/bpf/sie 2>/dev/null | wc -l)
  q=$(cat /sys/kernel/debug/sie_native/control 2>/dev/null | wc -l)
  if [ "$n" = 0 ] && [ "$p" = 0 ] && [ "$q" = 0 ]; then ok "$1: no kprobe, no pin, no native probe"; else
    bad "$1: $n kprobes, $p pin dirs, $q native probes left"; cat /sys/kernel/debug/kprobes/list
    ls -R /sys/fs/bpf/sie; cat /sys/kernel/debug/sie_native/control; fi
}
refused() { # context expected-message-fragment cmd...
  ctx=$1; frag=$2; shift 2
  out=$("$@" 2>&1); rc=$?
  if [ $rc -ne 0 ] && echo "$out" | grep -q "$frag" && echo "$out" | grep -q "hint:"; then
    ok "$ctx refused: $(echo "$out" | head -1)"
  else bad "$ctx: rc=$rc out=$out"; fi
  nothing_attached "$ctx"
}
refused_keep() { out=$("$@" 2>&1) && bad "$out" || ok "refused while loaded: $(echo "$out" | head -1)"; }
# mode 2: sie_consistency's instances (numbered per load, not by ConstID)
instances() { ls -d /sys/kernel/debug/sie_consistency/[0-9]* 2>/dev/null | tr '\n' ' '; }
jget() { # json key (flat numbers)
  sed -n "s/^ *\"$2\": \([-0-9.a-z]*\),*$/\1/p" "$1" | head -1
}

echo "== kernel $(uname -r), consts $C"
# Make the modules present first so the refusal checks see the real code bytes.
insmod "$(dirname "$(command -v sie)")/../kmod/sie_target.ko" 2>/dev/null
W=/tmp/sie-rt && mkdir -p $W

# --- refusals (nothing loaded) ---
refused "unknown constant" "unknown constant" sie set NO_SUCH_CONST 1 --consts $C
refused "out of range" "outside the range" sie set SIE_TARGET_LOOP_BOUND 5000 --consts $C
cp -r $C/102 $W/rel && sed -i 's/"kernel_release": "[^"]*"/"kernel_release": "6.1.0-99-amd64"/' $W/rel/const.json
mkdir -p $W/relc && mv $W/rel $W/relc/102
refused "other kernel release" "synthesized for kernel" sie set SIE_TARGET_CALL_ARG 7 --consts $W/relc
cp -r $C/102 $W/bytes && sed -i 's/"expect_bytes": "ebd0"/"expect_bytes": "ebd1"/' $W/bytes/const.json
mkdir -p $W/bytesc && mv $W/bytes $W/bytesc/102
refused "mismatched code bytes" "expects ebd1" sie set SIE_TARGET_CALL_ARG 7 --consts $W/bytesc
refused "mode 5" "unknown mode" sie set SIE_TARGET_CALL_ARG 7 --mode 5 --consts $C

# --- every kind: new value (never compiled), then back exactly ---
check_kind() { # name value path input want_new want_orig
  before=$(run $3 $4)
  expect_eq "$1 original $3($4)" "$before" "$6"
  if sie set $1 $2 --consts $C --json > $W/set.json; then
    lat=$(jget $W/set.json latency_ms); opt=$(jget $W/set.json optimized_probes)
    ap=$(jget $W/set.json apply_probes)
    eng=$(sed -n 's/^ *"engine": "\([a-z]*\)",*$/\1/p' $W/set.json)
    echo "     $1=$2: engine $eng, load latency ${lat} ms, ${opt}/${ap} apply probes [OPTIMIZED]"
    echo "METRIC $1 engine=$eng latency_ms=$lat optimized=$opt apply=$ap"
  else bad "sie set $1 $2"; fi
  expect_eq "$1=$2 $3($4)" "$(run $3 $4)" "$5"
  sie unload $1 || bad "sie unload $1"
  expect_eq "$1 restored $3($4)" "$(run $3 $4)" "$6"
}
check_kind SIE_TARGET_LOOP_BOUND 3 loop 10 33 108
check_kind SIE_TARGET_CALL_ARG 7 call_arg 100 107 4760
check_kind SIE_TARGET_FIELD_INIT 12345 field 1 12345 23130
check_kind SIE_TARGET_THRESHOLD 5000 cmp 2000 0 1
check_kind SIE_TARGET_SCALE 7 mul 5 35 80
check_kind SIE_TARGET_DIVISOR 7 div 100 14 10
nothing_attached "after the kinds"

# --- several constants at once: all or none (every value checked first; a failing kernel step
# puts back the constants set before it) ---
refused "a bad value among several" "SIE_TARGET_DIVISOR: value 0 is outside the range" \
  sie set SIE_TARGET_SCALE=7 SIE_TARGET_DIVISOR=0 --consts $C
refused "an unknown name among several" "unknown constant" \
  sie set SIE_TARGET_SCALE=7 NO_SUCH=1 --consts $C
refused "a constant twice" "is given twice" sie set SIE_TARGET_SCALE=7 sie_target_scale=8 --consts $C
n=1; while [ $n -le 40 ]; do
  if out=$(SIE_FAIL_STEP=$n sie set SIE_TARGET_SCALE=7 SIE_TARGET_DIVISOR=7 --consts $C 2>&1); then break; fi
  case "$out" in *"injected fault"*"nothing was changed"*) ;; *) bad "load step $n: $out" ;; esac
  [ "$(run mul 5)/$(run div 100)" = 80/10 ] || bad "load step $n failed and left mul $(run mul 5) div $(run div 100)"
  [ "$(ls /sys/fs/bpf/sie 2>/dev/null | wc -l)" = 0 ] || bad "load step $n failed and left pins: $(ls /sys/fs/bpf/sie)"
  n=$((n + 1))
done
[ $n -gt 2 ] && ok "two-constant load undone at each of $((n - 1)) failing kernel steps" || bad "no step failed ($n)"
expect_eq "SCALE=7 DIVISOR=7 together: mul(5)/div(100)" "$(run mul 5)/$(run div 100)" 35/14
n=1; while [ $n -le 10 ]; do
  if out=$(SIE_FAIL_STEP=$n sie set SIE_TARGET_SCALE=3 SIE_TARGET_DIVISOR=50 --consts $C 2>&1); then break; fi
  [ "$(run mul 5)/$(run div 100)" = 35/14 ] || bad "update step $n failed and left mul $(run mul 5) div $(run div 100): $out"
  n=$((n + 1))
done
[ $n -gt 1 ] && ok "two-constant update undone at each of $((n - 1)) failing steps" || bad "no update step failed"
expect_eq "SCALE=3 DIVISOR=50 together: mul(5)/div(100)" "$(run mul 5)/$(run div 100)" 15/2
sie set SIE_TARGET_SCALE=4 SIE_TARGET_DIVISOR=20 --consts $C --json > $W/multi.json || bad "multi --json"
grep -c '"const":' $W/multi.json | grep -qx 2 && ok "--json: one object per constant" || bad "multi json: $(cat $W/multi.json)"
sie unload --all > /dev/null || bad "unload after the multi set"
nothing_attached "after several constants"

# --- a loaded constant: set again = map update; status shows counters. Every command takes the
# ConstID (102) or the name in any case. ---
# The journal says why (--reason), and each entry reaches the system log: a listener on
# /dev/log (the guest runs no syslog daemon) keeps what arrives.
python3 - "$W/syslog" <<'PY' &
import os, socket, sys
try:
    os.unlink("/dev/log")
except FileNotFoundError:
    pass
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
with open(sys.argv[1], "ab", buffering=0) as out:
    while True:
        out.write(s.recv(65536) + b"\n")
PY
SYSLOG_PID=$!
sleep 1
sie set 102 7 --consts $C --reason "journal check: call_arg to 7" > /dev/null || bad "set 7 by id"
sie log --const sie_target_call_arg --since 5m --json --consts $C > $W/log.json
python3 - $W/log.json <<'PY' && ok "sie log --const --since --json: who, old -> new, why" || bad "journal: $(cat $W/log.json)"
import json, sys
e = [json.loads(l) for l in open(sys.argv[1])][-1]
assert e["const"] == "SIE_TARGET_CALL_ARG" and e["new_value"] == 7 and "old_value" in e, e
assert e["reason"] == "journal check: call_arg to 7" and e["user"] and e["outcome"] == "loaded", e
PY
grep -q "sie\[[0-9]*\]: set SIE_TARGET_CALL_ARG .* -> 7 (mode 0.*): loaded; reason: journal check: call_arg to 7; by root" $W/syslog &&
  ok "the system log got: $(grep -o 'set SIE_TARGET_CALL_ARG.*' $W/syslog | head -1)" ||
  bad "system log: $(cat $W/syslog)"
kill $SYSLOG_PID; rm -f /dev/log
# Metrics for node_exporter's textfile collector: the live value, the shipped one, counters.
mkdir -p $W/prom && sie metrics --textfile $W/prom || bad "sie metrics --textfile"
grep -q '^sie_const_value{const="SIE_TARGET_CALL_ARG",id="102"} 7$' $W/prom/sie.prom &&
  grep -q '^sie_const_shipped_value{const="SIE_TARGET_CALL_ARG",id="102"} 4660$' $W/prom/sie.prom &&
  grep -q '^sie_const_probes{const="SIE_TARGET_CALL_ARG",id="102"} [1-9]' $W/prom/sie.prom &&
  ok "sie metrics: value 7, shipped 4660, probes" || bad "metrics: $(cat $W/prom/sie.prom)"
promtool check metrics < $W/prom/sie.prom > $W/promtool.out 2>&1 &&
  ok "promtool check metrics accepts it" || bad "promtool: $(cat $W/promtool.out)"
sie set sie_target_call_arg 4000000000 --consts $C --json > $W/upd.json || bad "set 4e9 by name"
expect_eq "update only" "$(jget $W/upd.json updated_only)" "true"
echo "     value update latency $(jget $W/upd.json latency_ms) ms"
expect_eq "call_arg(1) with 4000000000" "$(run call_arg 1)" "4000000001"
refused_keep sie set SIE_TARGET_CALL_ARG 5000000000 --consts $C
expect_eq "value kept after a refusal" "$(run call_arg 1)" "4000000001"
sie status
sie status --json | grep -q '"applied": [1-9]' && ok "status shows applied counters" || bad "status counters"
sie status 102 > $W/st102 || bad "sie status 102"
grep -q "^SIE_TARGET_CALL_ARG (id 102): value 4000000000, mode 0, loaded" $W/st102 &&
  ok "sie status 102: $(head -1 $W/st102)" || bad "sie status 102: $(cat $W/st102)"
refused_keep sie unload 999
sie unload 102 || bad "sie unload 102 (by id)"
expect_eq "call_arg restored" "$(run call_arg 100)" "4760"

# --- engines: native by default where it covers every span, BPF otherwise, -v says why ---
engine_of() { sie status --json | tr -d ' \n' | grep -o "\"engine\":\"[a-z]*\"" | head -1 | cut -d'"' -f4; }
sie set SIE_TARGET_CALL_ARG 7 -v --consts $C > $W/e.out 2> $W/e.err || bad "set CALL_ARG (auto)"
grep -q "engine native: sie_native covers every span" $W/e.err && ok "auto picks native for CALL_ARG" ||
  bad "auto engine for CALL_ARG: $(cat $W/e.err $W/e.out)"
expect_eq "status engine (CALL_ARG)" "$(engine_of)" "native"
grep -q "sie_target_call_arg" /sys/kernel/debug/sie_native/control && ok "sie_native lists the probe" ||
  bad "sie_native control: $(cat /sys/kernel/debug/sie_native/control)"
[ -e /sys/fs/bpf/sie/SIE_TARGET_CALL_ARG ] && bad "native load left BPF pins" || ok "native load has no BPF pins"
expect_eq "native call_arg(100) with 7" "$(run call_arg 100)" "107"
sie set SIE_TARGET_CALL_ARG 9 --consts $C > $W/e.out || bad "native value update"
grep -q "native probes updated" $W/e.out && ok "native update: $(cat $W/e.out)" || bad "native update: $(cat $W/e.out)"
expect_eq "native call_arg(100) with 9" "$(run call_arg 100)" "109"
sie status | sed 's/^/     /'
sie status --json | tr -d ' \n' | grep -q '"applied":[1-9]' && ok "native status counts applied hits" ||
  bad "native status counters: $(sie status --json)"
refused_keep sie set SIE_TARGET_CALL_ARG 9 --engine bpf --consts $C
sie unload SIE_TARGET_CALL_ARG || bad "native unload"
expect_eq "native call_arg restored" "$(run call_arg 100)" "4760"
nothing_attached "native unload"
sie set SIE_TARGET_CALL_ARG 7 --engine bpf -v --consts $C > $W/e.out 2> $W/e.err || bad "set --engine bpf"
grep -q "engine bpf: forced by --engine bpf" $W/e.err && ok "--engine bpf forces BPF" || bad "forced bpf: $(cat $W/e.err)"
[ -e /sys/fs/bpf/sie/SIE_TARGET_CALL_ARG/sie_ctl ] && ok "BPF engine pinned its maps" || bad "no BPF pins"
expect_eq "bpf call_arg(100) with 7" "$(run call_arg 100)" "107"
expect_eq "status engine (forced bpf)" "$(engine_of)" "bpf"
sie unload SIE_TARGET_CALL_ARG || bad "bpf unload"
expect_eq "bpf call_arg restored" "$(run call_arg 100)" "4760"
sie set SIE_TARGET_FIELD_INIT 77 -v --consts $C > $W/e.out 2> $W/e.err || bad "set FIELD_INIT (auto)"
grep -q "engine native" $W/e.err && ok "auto picks native for a mem span" || bad "mem engine: $(cat $W/e.err)"
expect_eq "native field(1) with 77" "$(run field 1)" "77"
sie unload SIE_TARGET_FIELD_INIT || bad "unload FIELD_INIT"
expect_eq "native field restored" "$(run field 1)" "23130"
sie set SIE_TARGET_LOOP_BOUND 3 -v --consts $C > $W/e.out 2> $W/e.err || bad "set LOOP_BOUND (auto)"
grep -q "engine native" $W/e.err && ok "auto picks native for a cmp flags span" ||
  bad "LOOP_BOUND engine: $(cat $W/e.err)"
grep -q "flags-cmp" /sys/kernel/debug/sie_native/control && ok "sie_native recomputes the flags" ||
  bad "no flags-cmp probe: $(cat /sys/kernel/debug/sie_native/control)"
expect_eq "native loop(10) with 3" "$(run loop 10)" "33"
sie unload SIE_TARGET_LOOP_BOUND || bad "unload LOOP_BOUND"
expect_eq "native loop restored" "$(run loop 10)" "108"
sie set SIE_TARGET_SCALE 7 -v --consts $C > $W/e.out 2> $W/e.err || bad "set SCALE (auto)"
grep -q "engine bpf: sie_native cannot: span 0 .*kind recompute" $W/e.err && ok "recompute span falls back: $(grep engine $W/e.err)" ||
  bad "SCALE engine: $(cat $W/e.err)"
expect_eq "bpf mul(5) with 7" "$(run mul 5)" "35"
sie unload SIE_TARGET_SCALE || bad "unload SCALE"
sie set SIE_TARGET_CALL_ARG 7 --mode 1 -v --consts $C > $W/e.out 2> $W/e.err || bad "set CALL_ARG mode 1"
grep -q "engine bpf: sie_native cannot: mode 1 needs per-task guards" $W/e.err && ok "mode 1 falls back to BPF" ||
  bad "mode 1 engine: $(cat $W/e.err)"
sie unload SIE_TARGET_CALL_ARG || bad "unload CALL_ARG mode 1"
refused "--engine native on a recompute span" "cannot use the native engine" sie set SIE_TARGET_SCALE 7 --engine native --consts $C
refused "unknown engine" "unknown engine" sie set SIE_TARGET_CALL_ARG 7 --engine jit --consts $C
nothing_attached "after the engines"

# --- two constants at one place: sie_native keeps one probe per place, so `--engine auto` uses BPF
# for the second one (seen up front in the module's listing, or on EEXIST in a race, after
# removing what it had added) and --engine native is refused with nothing added. The twins are
# copies of 102 and of 107's second span under other ids and names (no stub: they load natively).
TW=$W/twins && mkdir -p $TW/902 $TW/907
sed -e 's/"id": 102,/"id": 902,/' -e 's/"name": "SIE_TARGET_CALL_ARG"/"name": "SIE_TARGET_CALL_ARG_TWIN"/' \
  $C/102/const.json > $TW/902/const.json
sed -e 's/"id": 107,/"id": 907,/' -e 's/"name": "SIE_TARGET_BATCH"/"name": "SIE_TARGET_BATCH_TWIN"/' \
  -e '/"spans": \[/,/^    },$/{/"spans": \[/!d}' $C/107/const.json > $TW/907/const.json
kprobes_at() { grep -c "$1 " /sys/kernel/debug/kprobes/list; }
native_lines() { wc -l < /sys/kernel/debug/sie_native/control; }
sie set SIE_TARGET_CALL_ARG_TWIN 5 -v --consts $TW > $W/t.out 2> $W/t.err || bad "set CALL_ARG_TWIN: $(cat $W/t.err)"
grep -q "engine native" $W/t.err && ok "the twin loads natively" || bad "twin engine: $(cat $W/t.err)"
expect_eq "call_arg(100) with the twin's 5" "$(run call_arg 100)" "105"
out=$(sie set SIE_TARGET_CALL_ARG 7 --engine native --consts $C 2>&1) && bad "--engine native at a taken place: $out" ||
  { echo "$out" | grep -q "cannot use the native engine: span 0 (sie_target:sie_target_call_arg+0xe) is already probed natively by SIE_TARGET_CALL_ARG_TWIN" &&
    echo "$out" | grep -q "hint:" && ok "--engine native refused: $(echo "$out" | head -1)" || bad "--engine native refusal: $out"; }
expect_eq "kprobes at call_arg+0xe after the refusal" "$(kprobes_at sie_target_call_arg+0xe)" "1"
expect_eq "native probes after the refusal" "$(native_lines)" "1"
[ -e ${SIE_RUN_DIR:-/run/sie}/SIE_TARGET_CALL_ARG.json ] || [ -e /sys/fs/bpf/sie/SIE_TARGET_CALL_ARG ] &&
  bad "state or pins left by the refusal" || ok "no state, no pin left by the refusal"
expect_eq "call_arg(100) still the twin's" "$(run call_arg 100)" "105"
sie set SIE_TARGET_CALL_ARG 7 -v --consts $C > $W/t.out 2> $W/t.err || bad "set CALL_ARG next to the twin: $(cat $W/t.err)"
grep -q "engine bpf: sie_native cannot: span 0 (sie_target:sie_target_call_arg+0xe) is already probed natively by SIE_TARGET_CALL_ARG_TWIN" $W/t.err &&
  ok "auto falls back: $(grep engine $W/t.err)" || bad "fallback: $(cat $W/t.out $W/t.err)"
expect_eq "status engines (CALL_ARG, twin)" \
  "$(sie status --json | tr -d ' \n' | grep -o '"engine":"[a-z]*"' | cut -d'"' -f4 | tr '\n' ' ')" "bpf native "
expect_eq "kprobes at call_arg+0xe" "$(kprobes_at sie_target_call_arg+0xe)" "2"
# Both handlers run on each hit (kprobes runs the newer first): the twin's value lands last.
v=$(run call_arg 100)
[ "$v" = 105 ] || [ "$v" = 107 ] && ok "call_arg(100) with both: $v" || bad "call_arg(100) with both: $v"
expect_eq "constants with applied hits" \
  "$(sie status --json | tr -d ' \n' | grep -o '"applied":[0-9]*' | grep -c '"applied":[1-9]')" "2"
sie unload SIE_TARGET_CALL_ARG_TWIN || bad "unload the twin"
expect_eq "call_arg(100) with CALL_ARG's BPF alone" "$(run call_arg 100)" "107"
sie unload SIE_TARGET_CALL_ARG || bad "unload CALL_ARG after the twin"
expect_eq "call_arg restored after both" "$(run call_arg 100)" "4760"
nothing_attached "two constants at one place"
# The race: SIE_NATIVE_NO_PRECHECK skips the listing check, so sie_native refuses BATCH's second
# place (EEXIST) after its first was added: that one is removed again and BPF takes both.
sie set SIE_TARGET_BATCH_TWIN 100 --consts $TW > /dev/null || bad "set BATCH_TWIN"
expect_eq "native probes (BATCH_TWIN)" "$(native_lines)" "1"
SIE_NATIVE_NO_PRECHECK=1 sie set SIE_TARGET_BATCH 100 -v --consts $C > $W/t.out 2> $W/t.err || bad "set BATCH in the race: $(cat $W/t.err)"
grep -q "engine bpf: sie_native refused a place taken meanwhile (.*File exists.*); its probes of this load were removed" $W/t.err &&
  ok "EEXIST falls back: $(grep engine $W/t.err)" || bad "EEXIST fallback: $(cat $W/t.out $W/t.err)"
expect_eq "native probes after the fallback (the twin's)" "$(native_lines)" "1"
expect_eq "kprobes at batch_cycle+0x1a (BPF)" "$(kprobes_at sie_target_batch_cycle+0x1a)" "1"
expect_eq "kprobes at batch_cycle+0x2b (twin, BPF)" "$(kprobes_at sie_target_batch_cycle+0x2b)" "2"
[ -e /sys/fs/bpf/sie/SIE_TARGET_BATCH/sie_ctl ] && ok "BATCH pinned by BPF" || bad "BATCH not on BPF"
sie unload SIE_TARGET_BATCH || bad "unload BATCH"
sie unload SIE_TARGET_BATCH_TWIN || bad "unload BATCH_TWIN"
nothing_attached "the EEXIST fallback"
refused "--engine native in the race" "sie_native refused" env SIE_NATIVE_NO_PRECHECK=1 sh -c \
  "sie set SIE_TARGET_CALL_ARG_TWIN 5 --consts $TW >/dev/null && sie set SIE_TARGET_CALL_ARG 7 --engine native --consts $C; rc=\$?; sie unload SIE_TARGET_CALL_ARG_TWIN; exit \$rc"

# --- another kprobe at a probe address: reported by sie set and sie status ---
mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing
if echo 'p:sie_other sie_target:sie_target_call_arg+14' >> /sys/kernel/tracing/kprobe_events; then
  sie set SIE_TARGET_CALL_ARG 7 --consts $C > $W/o.out 2> $W/o.err || bad "set next to another kprobe"
  grep -q "warning: apply probe of span 0 at sie_target_call_arg+0xe: 1 other kprobe" $W/o.err &&
    ok "sie set warns: $(grep warning $W/o.err)" || bad "no warning: $(cat $W/o.err)"
  sie status > $W/o.st
  grep -q "warning: 1 other kprobe(s) at this address" $W/o.st && ok "sie status lists the other kprobe" ||
    bad "status: $(cat $W/o.st)"
  expect_eq "value applied next to another kprobe" "$(run call_arg 100)" "107"
  sie unload SIE_TARGET_CALL_ARG || bad "unload next to another kprobe"
  # Armed, its int3 covers the first byte of the instruction (a jmp: never jump-optimized), so
  # only the other bytes can be checked, and are; both engines.
  E=/sys/kernel/tracing/events/kprobes/sie_other/enable
  echo 1 > $E || bad "enable the trace kprobe"
  for e in bpf native; do
    sie set SIE_TARGET_CALL_ARG 7 --engine $e --consts $C > $W/o.out 2> $W/o.err ||
      bad "$e: set under another kprobe's int3: $(cat $W/o.err)"
    grep -q "note: span 0: the first byte at sie_target_call_arg+0xe is another kprobe's int3" $W/o.err &&
      ok "$e: bytes checked under another kprobe's int3" || bad "$e: no int3 note: $(cat $W/o.err)"
    expect_eq "$e: value applied under another kprobe's int3" "$(run call_arg 100)" "107"
    sie unload SIE_TARGET_CALL_ARG || bad "$e: unload under another kprobe's int3"
  done
  expect_eq "restored under another kprobe's int3" "$(run call_arg 100)" "4760"
  echo 0 > $E
  echo '-:sie_other' >> /sys/kernel/tracing/kprobe_events || bad "remove the trace kprobe"
else bad "cannot add a trace kprobe at sie_target_call_arg+14"; fi
nothing_attached "other kprobe"

# --- a livepatched function: refused, nothing attached (kmod/sie_lp_target) ---
K=$(dirname "$(command -v sie)")/../kmod
LP=/sys/kernel/livepatch/sie_lp_target
lp_settle() { i=0; while [ -e $LP/transition ] && [ "$(cat $LP/transition)" = 1 ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done; }
if insmod $K/sie_lp_target.ko; then
  lp_settle
  expect_eq "livepatched call_arg(100)" "$(run call_arg 100)" "1000100"
  refused "livepatched function" "replaced by livepatch 'sie_lp_target' (enabled)" sie set SIE_TARGET_CALL_ARG 7 --consts $C
  refused "livepatched function (bpf)" "replaced by livepatch" sie set SIE_TARGET_CALL_ARG 7 --engine bpf --consts $C
  sie status | grep -q SIE_TARGET_CALL_ARG && bad "state left after the livepatch refusal" || ok "no state left"
  echo 0 > $LP/enabled
  i=0; while [ -e $LP ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
  [ -e $LP ] && bad "livepatch did not disable" || ok "livepatch disabled"
  rmmod sie_lp_target || bad "rmmod sie_lp_target"
  expect_eq "call_arg after the livepatch" "$(run call_arg 100)" "4760"
  sie set SIE_TARGET_CALL_ARG 7 --consts $C > /dev/null || bad "set after the livepatch"
  expect_eq "call_arg with 7 after the livepatch" "$(run call_arg 100)" "107"
  sie unload SIE_TARGET_CALL_ARG || bad "unload after the livepatch"
else bad "insmod sie_lp_target (CONFIG_LIVEPATCH)"; fi
nothing_attached "livepatch"
# A livepatch enabled AFTER `sie set` bypasses the probe: `sie status` flags it (text and json)
# until the patch is disabled.
sie set SIE_TARGET_CALL_ARG 7 --consts $C > /dev/null || bad "set before the livepatch"
expect_eq "call_arg with 7 before the livepatch" "$(run call_arg 100)" "107"
if insmod $K/sie_lp_target.ko; then
  lp_settle
  expect_eq "call_arg(100) runs the patch, not the probe" "$(run call_arg 100)" "1000100"
  sie status > $W/lp.st
  grep -q "^         bypassed: function replaced by livepatch 'sie_lp_target'$" $W/lp.st &&
    ok "status flags the bypassed probe" || bad "status after the livepatch: $(cat $W/lp.st)"
  grep -q "^  warning: livepatch 'sie_lp_target' replaces sie_target_call_arg (sie_target)" $W/lp.st &&
    grep -q "^  hint: sie unload SIE_TARGET_CALL_ARG, or disable the patch (echo 0 > $LP/enabled)" $W/lp.st &&
    ok "status warns with a hint" || bad "status warning: $(cat $W/lp.st)"
  sed 's/^/     /' $W/lp.st
  sie status --json | tr -d ' \n' > $W/lp.json
  grep -q '"livepatched_by":"sie_lp_target"' $W/lp.json && ok "status --json: livepatched_by" ||
    bad "json livepatched_by: $(cat $W/lp.json)"
  grep -q "\"warnings\":\[{\"hint\":\"sieunloadSIE_TARGET_CALL_ARG,ordisablethepatch.*\"message\":\"livepatch'sie_lp_target'replacessie_target_call_arg" $W/lp.json &&
    ok "status --json: the constant's warning" || bad "json warning: $(cat $W/lp.json)"
  echo 0 > $LP/enabled
  i=0; while [ -e $LP ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
  [ -e $LP ] && bad "livepatch did not disable" || ok "livepatch disabled"
  sie status > $W/lp.st
  grep -q "bypassed\|warning" $W/lp.st && bad "status after disabling: $(cat $W/lp.st)" || ok "status clean again"
  sie status --json | tr -d ' \n' | grep -q '"livepatched_by":null.*"warnings":\[\]' &&
    ok "status --json clean again" || bad "json after disabling: $(sie status --json)"
  expect_eq "call_arg with 7 once the patch is off" "$(run call_arg 100)" "107"
  rmmod sie_lp_target || bad "rmmod sie_lp_target (after set)"
else bad "insmod sie_lp_target after sie set"; fi
sie unload SIE_TARGET_CALL_ARG || bad "unload after the late livepatch"
expect_eq "call_arg restored after the late livepatch" "$(run call_arg 100)" "4760"
nothing_attached "livepatch after set"

# --- jump optimization: SIE_TARGET_OPT_ADD's first probe place (+0xe) is a short jmp in its 5-byte
# window, which optprobes refuse; the next candidate (+0x10) can be optimized. Both engines move
# the probe there while inert (same program, no recompilation); --no-optimize stays put ---
expect_eq "opt(1) original" "$(run opt 1)" "1922"
for eng in bpf native; do
  sie set SIE_TARGET_OPT_ADD 7 --engine $eng --consts $C --json > $W/opt.json 2>&1 || bad "set OPT_ADD ($eng)"
  expect_eq "$eng: jump-optimized apply probes" "$(jget $W/opt.json optimized_probes)" "1"
  grep -q "probe moved to sie_target_opt+0x10 (jump-optimized)" $W/opt.json &&
    ok "$eng: probe moved from +0xe to +0x10 (jump-optimized)" || bad "$eng: no move: $(cat $W/opt.json)"
  grep "sie_target_opt+0x10" /sys/kernel/debug/kprobes/list | grep -q OPTIMIZED &&
    ok "$eng: kprobes/list shows +0x10 [OPTIMIZED]" || bad "$eng: $(cat /sys/kernel/debug/kprobes/list)"
  grep -q "sie_target_opt+0xe " /sys/kernel/debug/kprobes/list && bad "$eng: +0xe still probed" || ok "$eng: +0xe released"
  expect_eq "$eng: opt(1) with 7" "$(run opt 1)" "18"
  sie status | grep -q "sie_target_opt+0x10 .*\[OPTIMIZED\]" && ok "$eng: status shows the moved probe" ||
    bad "$eng status: $(sie status)"
  sie unload SIE_TARGET_OPT_ADD || bad "unload OPT_ADD ($eng)"
  expect_eq "$eng: opt(1) restored" "$(run opt 1)" "1922"
done
sie set SIE_TARGET_OPT_ADD 7 --no-optimize --consts $C --json > $W/opt.json 2>&1 || bad "set OPT_ADD --no-optimize"
expect_eq "--no-optimize: jump-optimized apply probes" "$(jget $W/opt.json optimized_probes)" "0"
expect_eq "--no-optimize: opt(1) with 7" "$(run opt 1)" "18"
sie unload SIE_TARGET_OPT_ADD || bad "unload OPT_ADD --no-optimize"
nothing_attached "jump optimization"

# --- kill -9 during a load ---
sie set SIE_TARGET_BATCH 100 --engine bpf --consts $C > $W/killed.out 2>&1 &
pid=$!
i=0
while [ ! -e /sys/fs/bpf/sie/SIE_TARGET_BATCH/link_apply_0 ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done
kill -9 $pid; wait $pid 2>/dev/null
sie status | grep -q SIE_TARGET_BATCH && ok "status shows the killed load" || bad "status after kill -9"
sie unload --all || bad "unload --all"
nothing_attached "kill -9 then unload --all"

# --- mode 0 vs 1 vs 2 with the mixed kthreads (constant used twice around a sleep) ---
# Mode 2 needs an instant with no worker inside the span: 2 workers, who sleep there most of the
# time, already take up to seconds under TCG (see docs/benchmarks.md), so it gets 2 and 60 s.
for mode in 0 1 2; do
  if [ $mode = 2 ]; then echo 2 > $T/workers; to="--timeout 60"; else echo 4 > $T/workers; to=; fi
  sleep 0.3
  echo 0 > $T/mixed
  sie set SIE_TARGET_BATCH 100 --mode $mode $to --consts $C > $W/m$mode.out || bad "mode $mode set"
  sed 's/^/     /' $W/m$mode.out
  sleep 1
  last=$(cat $T/batch_last)
  sie set SIE_TARGET_BATCH 200 --mode $mode $to --consts $C > $W/m$mode.out || bad "mode $mode update"
  sed 's/^/     /' $W/m$mode.out
  sleep 1
  last2=$(cat $T/batch_last)
  sie status | grep -E "per-task|apply|global" | sed 's/^/     /'
  if [ $mode = 2 ]; then
    sie status | grep -q "global: state active, last forward transition" &&
      ok "status shows the global state" || bad "status: global state"
  fi
  if [ $mode = 1 ]; then
    # Per-task latency statistics of the last request (the update to 200): every worker moved.
    sie status --json > $W/st1.json
    expect_eq "mode 1 tasks moved to 200" "$(sed -n 's/^ *"tasks": \([0-9]*\).*/\1/p' $W/st1.json | head -1)" 4
    grep -q '"max_ms": [1-9]\|"max_ms": 0\.[0-9]*[1-9]' $W/st1.json && ok "mode 1 epoch max_ms > 0" ||
      bad "mode 1 epoch max_ms: $(grep max_ms $W/st1.json)"
  fi
  sie unload SIE_TARGET_BATCH $to > $W/u$mode.out || bad "mode $mode unload"
  sed 's/^/     /' $W/u$mode.out
  grep -q "^SIE_TARGET_BATCH: unloaded from value 200 after [0-9]* s (mode $mode, engine [a-z]*): [0-9]* probe(s), [1-9][0-9]* hits" $W/u$mode.out &&
    ok "mode $mode unload summary" || bad "mode $mode unload summary"
  if [ $mode = 1 ]; then
    grep -q "reverse transition converged, 4 task(s) moved back" $W/u$mode.out &&
      ok "mode 1 reverse: 4 tasks moved back" || bad "mode 1 reverse summary"
  fi
  sleep 0.5
  mixed=$(cat $T/mixed)
  echo "METRIC mode$mode mixed=$mixed batch_last=$last,$last2 ops=$(cat $T/ops)"
  expect_eq "mode $mode new value used" "$last,$last2" "100,200"
  if [ $mode = 0 ]; then
    [ "$mixed" -gt 0 ] && ok "mode 0 shows mixed pairs ($mixed)" || echo "note - mode 0 saw no mixed pair"
  else
    expect_eq "mode $mode mixed pairs" "$mixed" "0"
  fi
done
[ -n "$(instances)" ] && bad "sie_consistency instance(s) left: $(instances)" ||
  ok "no sie_consistency instance left"

# --- mode 1: a task with a safe-span frame on its stack keeps the old value and is named ---
# Fixture 109 adds a safe span around the workers' loop: each worker reaches the batch guard
# with that frame on its stack, so none may switch, and sie status names them as blocking.
echo 2 > $T/workers
sleep 0.3
sie set SIE_TARGET_BATCH_NESTED 100 --mode 1 --consts $C > $W/nested.out || bad "nested set"
sleep 1
expect_eq "nested: workers keep the old value" "$(cat $T/batch_last)" "64"
sie status > $W/nested.st
sed 's/^/     /' $W/nested.st
grep -q "blocking: 2 task(s) had a safe-span frame on the stack at their last guard: [0-9]* (sie_target/[01]," $W/nested.st &&
  ok "status names the 2 blocked workers" || bad "status: blocked workers"
sie status --json | grep -q '"comm": "sie_target/1"' && ok "status --json lists blocking tasks" ||
  bad "status --json: blocking"
sie unload SIE_TARGET_BATCH_NESTED --json > $W/nested.json || bad "nested unload"
grep -q '"const": "SIE_TARGET_BATCH_NESTED"' $W/nested.json && grep -q '"outcome": "unloaded"' $W/nested.json &&
  grep -q '"reverse_transition": "converged"' $W/nested.json && ok "unload --json: the journal entry" ||
  bad "unload --json: $(cat $W/nested.json)"
# sie_target's outside_us (the benchmark's "passing" workload) refuses more than 1 s.
echo 2000000 > $T/outside_us 2>/dev/null && bad "outside_us accepted 2 s" || ok "outside_us > 1 s refused"
echo 2000 > $T/outside_us && expect_eq "outside_us" "$(cat $T/outside_us)" "2000"
echo 0 > $T/outside_us
echo 0 > $T/workers
nothing_attached "mode 1 nested"

# --- mode 2 timeouts: 8 workers live in the span, so a 0.3 s global transition cannot find an
# instant with none inside (retried when one slips through) ---
echo 8 > $T/workers
sleep 0.5
i=0
while [ $i -lt 5 ]; do
  out=$(sie set SIE_TARGET_BATCH 100 --mode 2 --timeout 0.3 --consts $C 2>&1) && rc=0 || rc=$?
  [ $rc -ne 0 ] && break
  echo "note - a 0.3 s global transition finished with 8 workers; again"
  sie unload SIE_TARGET_BATCH --timeout 30 > /dev/null 2>&1
  i=$((i + 1))
done
if [ $rc -ne 0 ] && echo "$out" | grep -q "did not finish" && echo "$out" | grep -q "hint:"; then
  ok "mode 2 set timeout refused: $(echo "$out" | head -1)"
else bad "mode 2 set timeout: rc=$rc out=$out"; fi
nothing_attached "mode 2 set timeout"
[ -n "$(instances)" ] && bad "instance left after a set timeout: $(instances)" ||
  ok "no sie_consistency instance after a set timeout"
expect_eq "batch value after a set timeout" "$(cat $T/batch_last)" "64"
# The reverse direction: loaded while nobody is inside, then a 0.3 s unload under 8 workers is
# refused and keeps everything (the new value stays: detaching would switch mid-span).
echo 0 > $T/workers
sleep 0.3
sie set SIE_TARGET_BATCH 100 --mode 2 --timeout 30 --consts $C > /dev/null || bad "mode 2 set idle"
echo 8 > $T/workers
sleep 0.5
if out=$(sie unload SIE_TARGET_BATCH --timeout 0.3 2>&1); then
  echo "note - a 0.3 s reverse transition finished with 8 workers"
else
  echo "$out" | grep -q "hint:" && ok "mode 2 unload timeout refused: $(echo "$out" | head -1)" ||
    bad "mode 2 unload timeout: $out"
  sie status | grep -q "SIE_TARGET_BATCH (id 107): value 100, mode 2, loaded" &&
    ok "still loaded after the refused unload" || { bad "state after a refused unload"; sie status; }
  expect_eq "new value kept" "$(cat $T/batch_last)" "100"
  echo 0 > $T/workers
  sie unload SIE_TARGET_BATCH --timeout 30 || bad "mode 2 unload once idle"
fi
echo 1 > $T/workers
sleep 0.5
echo 0 > $T/workers
expect_eq "batch restored" "$(cat $T/batch_last)" "64"
nothing_attached "end"
sie log | tail -5

echo "== $FAILS failure(s)"
[ $FAILS -eq 0 ]
