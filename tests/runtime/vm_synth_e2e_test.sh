#!/bin/sh
# End to end, spec to kernel: every sie_target constant as `sie synth` wrote it (not a
# hand-written fixture) takes a value never compiled, observed through the module's results,
# and unload restores the compiled behaviour exactly; a mode-1 unload waits exactly for the
# tasks inside a safe span, names them at its timeout (or ends it with --force).
# $1: the synthesized constants.
C=${1:?usage: vm_synth_e2e_test.sh CONSTS_DIR}
T=/sys/kernel/debug/sie_target
FAILS=0
ok() { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; FAILS=$((FAILS + 1)); }
expect_eq() { if [ "$2" = "$3" ]; then ok "$1 = $2"; else bad "$1: got '$2', want '$3'"; fi; }
run() { echo "$2" > "$T/$1" && cat "$T/$1"; }

insmod "$(dirname "$(command -v sie)")/../kmod/sie_target.ko" || { echo "FAIL - insmod"; exit 1; }
sie consts --consts "$C"
check() { # name value path input want_new want_orig
  expect_eq "$1 compiled $3($4)" "$(run $3 $4)" "$6"
  out=$(sie set $1 $2 --consts "$C") || bad "sie set $1 $2"
  echo "$out"
  # sie synth compiled the stub under the runtime's hash name: the guest compiles nothing.
  case "$out" in *"stub compiled"*) bad "$1: the guest compiled the stub (synth's object unused)" ;; esac
  expect_eq "$1=$2 $3($4)" "$(run $3 $4)" "$5"
  sie unload $1 || bad "sie unload $1"
  expect_eq "$1 restored $3($4)" "$(run $3 $4)" "$6"
}
check SIE_TARGET_LOOP_BOUND 3 loop 10 33 108
check SIE_TARGET_CALL_ARG 7 call_arg 100 107 4760
check SIE_TARGET_FIELD_INIT 12345 field 1 12345 23130
check SIE_TARGET_THRESHOLD 5000 cmp 2000 0 1
check SIE_TARGET_SCALE 7 mul 5 35 80
check SIE_TARGET_DIVISOR 7 div 100 14 10
check SIE_TARGET_DIVISOR 7 div 12345 1763 1234
# 15 spans at 15 addresses (sie_target_fan_0..14): fan(x) = 15 * FAN + 30 * x + 105.
check SIE_TARGET_FAN 100 fan 1 1635 139935
# Jump optimization predicted (synth's jump_windows, the live bytes): sie set places each apply
# probe where the kernel will optimize it and does not wait; the kernel then does, in the
# background. FAN: all 15 (mov; shl/lea, copied out of line); CALL_ARG: none (4 bytes before
# the function's end); JOIN: its one apply probe (add; a return thunk patched to ret).
optimized() { # function prefix: how many of its kprobes the kernel shows [OPTIMIZED]
  grep " $1" /sys/kernel/debug/kprobes/list | grep -c OPTIMIZED
}
predicted() { # name value want-note function-prefix want-optimized
  out=$(sie set $1 $2 --consts "$C" 2>&1) || bad "sie set $1 $2: $out"
  case "$out" in *"jump optimization: $3 apply probe(s) placed where the kernel optimizes them"*)
    ok "$1: $3 predicted" ;; *) bad "$1: no '$3' prediction: $out" ;; esac
  n=0; i=0
  while [ $i -lt 40 ]; do n=$(optimized $4); [ "$n" -ge "$5" ] && break; sleep 0.25; i=$((i + 1)); done
  sleep 1; n=$(optimized $4)
  expect_eq "$1: kprobes the kernel optimized" "$n" "$5"
  sie unload $1 > /dev/null || bad "sie unload $1"
}
predicted SIE_TARGET_FAN 100 "15 of 15" sie_target_fan_ 15
predicted SIE_TARGET_CALL_ARG 7 "0 of 1" sie_target_call_arg 0
predicted SIE_TARGET_JOIN 7 "1 of 1" sie_target_join 1
# Status right after the set: each placed probe is either already optimized or said to be on
# its way; with the kernel's optimizer switched off nothing is placed and nothing waited for.
sie set SIE_TARGET_FAN 100 --consts "$C" > /dev/null || bad "sie set FAN (status)"
n=$(sie status SIE_TARGET_FAN | grep -c "sie_target_fan_.*\(\[OPTIMIZED\]\|\[int3, optimizing\]\)")
expect_eq "FAN: apply probes optimized or optimizing in sie status" "$n" 15
sie unload SIE_TARGET_FAN > /dev/null || bad "sie unload FAN (status)"
echo 0 > /proc/sys/debug/kprobes-optimization
out=$(sie set SIE_TARGET_FAN 100 --consts "$C" 2>&1) || bad "sie set FAN, optimizer off: $out"
case "$out" in *"jump optimization is off (sysctl debug.kprobes-optimization = 0)"*)
  ok "optimizer off: said so" ;; *) bad "optimizer off: $out" ;; esac
expect_eq "optimizer off: FAN probes not placed" "$(sie status SIE_TARGET_FAN | grep -c 'optimizing')" 0
sie unload SIE_TARGET_FAN > /dev/null || bad "sie unload FAN (optimizer off)"
echo 1 > /proc/sys/debug/kprobes-optimization
# (l) i % EVERY == 0, a flags span of `test` (test %bl,%bl at 256, test $0x7f,%bl at 128,
# test $0x1ff,%ebx at 512): set to 2048, a power of two never compiled, on both engines;
# every(x) = x / EVERY. Other values divide in the compiled code: V takes powers of two only.
check SIE_TARGET_EVERY 2048 every 10000 4 39
out=$(sie set SIE_TARGET_EVERY 2048 --engine native --consts "$C" 2>&1) || bad "sie set EVERY native: $out"
expect_eq "SIE_TARGET_EVERY=2048 native every(10000)" "$(run every 10000)" 4
grep -q "flags-test" /sys/kernel/debug/sie_native/control && ok "native probe is flags-test" ||
  bad "no flags-test probe: $(cat /sys/kernel/debug/sie_native/control)"
sie unload SIE_TARGET_EVERY || bad "sie unload SIE_TARGET_EVERY (native)"
expect_eq "SIE_TARGET_EVERY restored every(10000)" "$(run every 10000)" 39
# (n) a predicate span: the stub decides the loop's jump, `(u8)(BELOW * b) >= 256 % BELOW`
# (the compiled test is `cmp dl, 0xf; jbe` at 30; other values compare otherwise). At 45,
# never compiled: byte 6 (6 * 45 = 270: low byte 14 < 31) is rejected where 30 accepts it,
# byte 9 (9 * 30 = 270) accepted where 30 rejects it. below = tries * 256 + (BELOW * b) >> 8.
check SIE_TARGET_BELOW 45 below 6 513 256
check SIE_TARGET_BELOW 45 below 9 257 513
if out=$(sie set SIE_TARGET_EVERY 1000 --consts "$C" 2>&1); then
  bad "SIE_TARGET_EVERY=1000 accepted (not a power of two)"
  sie unload SIE_TARGET_EVERY
else
  case "$out" in *"not a power of two"*) ok "1000 refused: $out" ;;
    *) bad "EVERY=1000 refused without saying why: $out" ;; esac
fi
# (k) the loaded value is saved per task right after its load (a second save probe of the
# span), then multiplied by the new value at the apply: saved(x) = x * SAVED.
expect_eq "SIE_TARGET_SAVED compiled saved(9)" "$(run saved 9)" 63
sie set SIE_TARGET_SAVED 5 --consts "$C" > /tmp/saved.out 2>&1 || bad "sie set SIE_TARGET_SAVED 5"
cat /tmp/saved.out
expect_eq "SIE_TARGET_SAVED=5 saved(9)" "$(run saved 9)" 45
expect_eq "SIE_TARGET_SAVED=5 saved(1000003)" "$(run saved 1000003)" 5000015
sie status > /tmp/saved.st; cat /tmp/saved.st
grep -q "^  save   span 0  sie_target_saved_calc+0x" /tmp/saved.st && ok "status lists the save probe" ||
  bad "no save probe of sie_target_saved_calc in sie status"
grep -q "applied 2 .*nosave 0" /tmp/saved.st && ok "2 applied, none without a saved input" ||
  bad "saved counters: $(grep 'apply  span 0  sie_target_saved' /tmp/saved.st)"
sie unload SIE_TARGET_SAVED || bad "sie unload SIE_TARGET_SAVED"
expect_eq "SIE_TARGET_SAVED restored saved(9)" "$(run saved 9)" 63
# (o) q / FOLD folded away at 1: q is rewritten to q / V where the region starts and put back
# where it ends (the store of q after the region reads the original), i.e. two probes at the
# region start, the put-back span's save first. x = 1000 << 32 | 200; fold = c << 32 | q stored,
# c = 1000 - min(q / FOLD, 500): 800 at 1, 994 at 32 (never compiled); a q left rewritten
# would store 6 instead of 200.
check SIE_TARGET_FOLD 32 fold 4294967296200 4269197492424 3435973837000
# Unmoved (--no-optimize), both probes sit at the region start: the save must run first.
sie set SIE_TARGET_FOLD 32 --no-optimize --consts "$C" > /dev/null || bad "sie set SIE_TARGET_FOLD 32 --no-optimize"
expect_eq "SIE_TARGET_FOLD=32 unmoved fold(x)" "$(run fold 4294967296200)" 4269197492424
sie status SIE_TARGET_FOLD > /tmp/fold.st; cat /tmp/fold.st
grep -q "^  save   span 0  sie_target_fold_calc+0x5" /tmp/fold.st && ok "the put-back span saves q at +0x5" ||
  bad "no save probe at sie_target_fold_calc+0x5"
expect_eq "kprobes at the region start (save, rewrite)" \
  "$(grep -c 'sie_target_fold_calc+0x5 ' /sys/kernel/debug/kprobes/list)" 2
sie unload SIE_TARGET_FOLD || bad "sie unload SIE_TARGET_FOLD (unmoved)"
# (j) a span ending at a join (path token): while set, odd inputs (through the constant) take
# the new value, even inputs (the path jumping over it to the same probe) keep their own; status
# shows the mark probe. Both engines: sie_native registers the mark kprobe itself (auto picks
# it for a fixed value in mode 0), the BPF stub marks the frame in task storage.
expect_eq "SIE_TARGET_JOIN compiled join(5)" "$(run join 5)" 769
for engine in auto bpf; do
  sie set SIE_TARGET_JOIN 7 -v --engine $engine --consts "$C" > /tmp/join.out 2> /tmp/join.err ||
    bad "sie set SIE_TARGET_JOIN 7 --engine $engine"
  cat /tmp/join.out /tmp/join.err
  want=native; [ $engine = bpf ] && want=bpf
  sie status --json > /tmp/join.json
  grep -q "\"engine\": \"$want\"" /tmp/join.json && ok "--engine $engine uses $want" ||
    bad "--engine $engine: $(grep engine /tmp/join.json)"
  expect_eq "$engine: SIE_TARGET_JOIN=7 join(5) (marked path)" "$(run join 5)" 8
  expect_eq "$engine: SIE_TARGET_JOIN=7 join(4) (bypass path)" "$(run join 4)" 5
  expect_eq "$engine: SIE_TARGET_JOIN=7 join(1001) (marked path)" "$(run join 1001)" 8
  expect_eq "$engine: SIE_TARGET_JOIN=7 join(1000) (bypass path)" "$(run join 1000)" 1001
  sie status > /tmp/join.st; cat /tmp/join.st
  grep -q "^  mark   span 0  sie_target_join+0x12 " /tmp/join.st && ok "$engine: status lists the mark probe" ||
    bad "$engine: no mark probe in status"
  grep -q "applied 2 .* bypass 2 markfail 0" /tmp/join.st && ok "$engine: counters: 2 applied, 2 bypassed" ||
    bad "$engine: join counters: $(grep -A0 'apply  span 0  sie_target_join' /tmp/join.st)"
  sie unload SIE_TARGET_JOIN || bad "sie unload SIE_TARGET_JOIN ($engine)"
  expect_eq "$engine: SIE_TARGET_JOIN restored join(5)" "$(run join 5)" 769
  expect_eq "$engine: SIE_TARGET_JOIN restored join(4)" "$(run join 4)" 5
done
# Mode 1 reverse, exact (the synthesized SIE_TARGET_BATCH: spans in the workers' batch cycle and
# in hold, each function a safe span). hold(ms) uses the constant, sleeps ms inside the span,
# uses it again: result use1 * 1000000 + use2. The unload waits for the tasks that hold the new
# value inside a safe span, names them at its timeout and keeps the constant loaded; tasks
# holding it outside every safe span do not delay it.
B1=SIE_TARGET_BATCH
sie set $B1 100 --mode 1 --consts "$C" > /dev/null 2> /tmp/set1.err || bad "sie set $B1 100 --mode 1"
# The value is left in the worker's object across the sleep: it outlives the safe spans, and
# mode 1 says which later readers it does not cover (synth's safe_spans_unbounded).
grep -q "warning: mode 1 keeps each run of $B1's safe spans on one value, but its value is left in a cell outside the frame at sie_target_batch_cycle+0x" \
  /tmp/set1.err && ok "mode 1 warns that the value outlives its safe spans" ||
  bad "no outlives warning: $(cat /tmp/set1.err)"
expect_eq "mode 1: hold(0), the caller took 100" "$(run hold 0)" 100000100
sh -c "echo 4000 > $T/hold" &
HP=$!
sleep 1
if sie unload $B1 --timeout 1 > /tmp/rev.out 2>&1; then bad "unload finished with a task asleep in the span"
else ok "unload refused while a task holds the new value inside the span"; fi
cat /tmp/rev.out
grep -q "did not finish within 1 s: 1 task(s) still hold the new value inside a safe span: $HP (sh)" \
  /tmp/rev.out && ok "the refusal names the task" || bad "refusal message"
grep -q "hint: run 'sie unload $B1' again once they leave" /tmp/rev.out && ok "with a hint" || bad "no hint"
sie status $B1 > /dev/null && ok "$B1 still loaded" || bad "$B1 not loaded after the refused unload"
wait $HP
expect_eq "the holder saw 100 at both uses" "$(cat $T/hold)" 100000100
sie unload $B1 > /tmp/rev.out || bad "unload once the holder left"
cat /tmp/rev.out
grep -q "reverse transition converged" /tmp/rev.out && ok "then the reverse transition converges" ||
  bad "second unload: $(cat /tmp/rev.out)"
expect_eq "restored hold(0)" "$(run hold 0)" 64000064
# An idle holder (took the new value, then sleeps outside every span) does not delay it.
sie set $B1 100 --mode 1 --consts "$C" > /dev/null || bad "sie set $B1 (idle holder)"
sh -c "echo 0 > $T/hold; sleep 5" &
IP=$!
sleep 1
t0=$(date +%s%N)
sie unload $B1 --timeout 3 > /tmp/rev.out 2>&1 || bad "unload with an idle holder: $(cat /tmp/rev.out)"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
cat /tmp/rev.out
grep -q "1 idle task(s) outside every safe span switched at once" /tmp/rev.out &&
  ok "the idle holder is switched by the kill switch ($ms ms)" || bad "idle holder summary"
kill $IP 2>/dev/null; wait $IP 2>/dev/null
# --force: ends it at the timeout; the task inside the span then sees both values.
sie set $B1 100 --mode 1 --consts "$C" > /dev/null || bad "sie set $B1 (force)"
run hold 0 > /dev/null
sh -c "echo 3000 > $T/hold" &
HP=$!
sleep 1
sie unload $B1 --timeout 0.5 --force > /tmp/rev.out 2>&1 || bad "unload --force: $(cat /tmp/rev.out)"
grep -q "reverse transition timed out" /tmp/rev.out && ok "--force: timed out, unloaded" || bad "--force: $(cat /tmp/rev.out)"
wait $HP
expect_eq "--force: the task in the span saw the new then the old value" "$(cat $T/hold)" 100000064

# Modes on the synthesized SIE_TARGET_BATCH, whose safe spans synth derived through memory (the
# value is stored into a worker's fields around a sleep): mode 0 may show the mixed pair, modes
# 1 and 2 never. Mode 2 needs an instant with no worker in the span: 2 workers and 60 s.
for mode in 0 1 2; do
  if [ $mode = 2 ]; then echo 2 > $T/workers; to="--timeout 60"; else echo 4 > $T/workers; to=; fi
  sleep 0.3
  echo 0 > $T/mixed
  sie set $B1 100 --mode $mode $to --consts "$C" > /dev/null || bad "mode $mode: sie set $B1 100"
  sleep 1
  sie set $B1 200 --mode $mode $to --consts "$C" > /dev/null || bad "mode $mode: update to 200"
  sleep 1
  last=$(cat $T/batch_last)
  sie unload $B1 $to > /tmp/modes.out 2>&1 || bad "mode $mode: unload: $(cat /tmp/modes.out)"
  sleep 0.5
  mixed=$(cat $T/mixed)
  echo "METRIC synthesized mode$mode mixed=$mixed batch_last=$last ops=$(cat $T/ops)"
  expect_eq "synthesized, mode $mode: the workers used 200" "$last" 200
  if [ $mode = 0 ]; then
    [ "$mixed" -gt 0 ] && ok "mode 0 shows mixed pairs ($mixed)" || echo "note - mode 0 saw no mixed pair"
  else
    expect_eq "synthesized, mode $mode: mixed pairs" "$mixed" 0
  fi
done
echo 0 > $T/workers

# An artifact of another build of the module (same release, another build id): refused with
# both ids and a hint, nothing attached (the kprobe count below), the compiled code unchanged.
B=/tmp/sie-badid; rm -rf $B; cp -r "$C" $B
f=$(grep -l '"name": "SIE_TARGET_CALL_ARG"' $B/*/const.json)
sed -i 's/"build_id": "[0-9a-f]*"/"build_id": "00000000000000000000000000000000deadbeef"/' "$f"
if sie set SIE_TARGET_CALL_ARG 7 --consts $B > /tmp/badid.out 2>&1; then
  bad "sie set accepted an artifact of another build"
else
  ok "an artifact of another build is refused"
fi
cat /tmp/badid.out
grep -q "build id 00000000000000000000000000000000deadbeef, but the running module has [0-9a-f]" /tmp/badid.out &&
  ok "the refusal names both build ids" || bad "build id refusal: $(head -c 300 /tmp/badid.out)"
grep -q "hint: run 'sie synth' against the running module" /tmp/badid.out && ok "with a hint" ||
  bad "no hint in the build id refusal"
expect_eq "after the refusal call_arg(100)" "$(run call_arg 100)" 4760
n=$(grep -c sie_target /sys/kernel/debug/kprobes/list)
expect_eq "kprobes left" "$n" 0
rmmod sie_target
echo "$FAILS failed"
[ $FAILS = 0 ]
