#!/bin/sh
# Guest test of policy knobs (label vm; runs inside the QEMU guest through `sie vm`).
#   $1: sie_target constants with precompiled stubs and the knobs policy in their policy cache
# tests/policy/bpf/knobs.bpf.c decides SIE_TARGET_CALL_ARG (addend for x >= min_x) and
# SIE_TARGET_THRESHOLD (threshold), both only while `enabled`. Checks: --describe lists the
# knobs; a bad --set name or value is refused with a hint and loads nothing; --set start
# values apply; `sie knob` lists and changes live knobs, and one change reaches both
# constants' objects, as do plain globals; bad knob names/values are refused; Ctrl-C removes
# the pins; the same with --pin and sie-run --stop; the policy as `sie apply` desired state
# (started, left alone when unchanged, restarted for a knob, stopped by --restore).
C=${1:?usage: vm_knobs_test.sh CONSTS_DIR}
SRC=$(dirname "$0")
P=$SRC/bpf/knobs.bpf.c
T=/sys/kernel/debug/sie_target
W=/tmp/sie-knobs && mkdir -p $W
FAILS=0
ok() { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; FAILS=$((FAILS + 1)); }
expect_eq() { if [ "$2" = "$3" ]; then ok "$1 = $2"; else bad "$1: got '$2', want '$3'"; fi; }
run() { echo "$2" > "$T/$1"; R=$(cat "$T/$1"); }
# expect_out NAME PATTERN CMD...: CMD's combined output contains PATTERN (fixed string).
expect_out() {
  name=$1 pat=$2; shift 2
  out=$("$@" 2>&1); rc=$?
  if echo "$out" | grep -qF -- "$pat"; then ok "$name"; else
    bad "$name: rc=$rc, no '$pat' in:"; echo "$out" | sed 's/^/    | /'; fi
}
# expect_fail NAME PATTERN CMD...: CMD fails and says PATTERN.
expect_fail() {
  name=$1 pat=$2; shift 2
  out=$("$@" 2>&1); rc=$?
  echo "$out" | sed 's/^/    | /'
  if [ $rc -ne 0 ] && echo "$out" | grep -qF -- "$pat"; then ok "$name"; else
    bad "$name: rc=$rc, want failure saying '$pat'"; fi
}
nothing_attached() {
  n=$(grep -c sie_target /sys/kernel/debug/kprobes/list 2>/dev/null)
  r=$(ls /sys/fs/bpf | grep -c sie_run)
  if [ "$n" = 0 ] && [ "$r" = 0 ]; then ok "$1: no kprobe, no pin"; else
    bad "$1: $n kprobes, $r policy pins"; ls /sys/fs/bpf; fi
}
wait_for() { # file pattern seconds
  i=0
  while [ $i -lt $(($3 * 10)) ]; do grep -q "$2" "$1" && return 0; sleep 0.1; i=$((i + 1)); done
  return 1
}
RUN="sie-run $P --const SIE_TARGET_CALL_ARG,SIE_TARGET_THRESHOLD --consts $C --no-optimize"

echo "== kernel $(uname -r), consts $C"
insmod "$(dirname "$(command -v sie)")/../kmod/sie_target.ko" 2>/dev/null

# --- describe: from the policy's BTF, no root work ---
sie-run --describe $P --consts $C > $W/describe.out 2>&1
cat $W/describe.out
for pat in "SIE_TARGET_CALL_ARG" "start settings" "min_x" "__u64" "default 100" "live knobs" \
  "addend" "default 50" "enabled" "bool"; do
  grep -qF -- "$pat" $W/describe.out || bad "describe lacks '$pat'"
done
ok "describe lists constants, settings and live knobs"
expect_out "describe --json" '"live_knobs"' sie-run --describe $P --consts $C --json

# --- bad input: refused with a hint, nothing loaded ---
expect_fail "--set unknown name" "has no knob 'nope'" $RUN --set nope=1
expect_fail "--set unknown name hint" "hint: its knobs: min_x (setting, __u64)" $RUN --set nope=1
nothing_attached "after a bad --set name"
expect_fail "--set bad value" "value 'lots' for knob min_x (__u64) is not a number" \
  $RUN --set min_x=lots
expect_fail "--set out of range" "is out of range" $RUN --set addend=4294967296
nothing_attached "after a bad --set value"
expect_fail "sie knob with no policy" "no running policy has live knobs" sie knob

# --- start settings: min_x 10, addend starts at 7 ---
$RUN --set min_x=10 --set addend=7 > $W/run.out 2> $W/run.err &
PID=$!
if wait_for $W/run.out "active on" 600 $PID; then ok "sie-run active"; else
  bad "sie-run did not become active"; cat $W/run.out $W/run.err; exit 1; fi
run call_arg 5; expect_eq "call_arg(5), below min_x=10" "$R" 4665
run call_arg 20; expect_eq "call_arg(20), --set addend=7" "$R" 27
run cmp 50; expect_eq "cmp(50), threshold 1000" "$R" 0

# --- live knobs ---
sie knob | tee $W/knob.out
grep -q "^addend  *__u32  *7$" $W/knob.out && grep -q "^threshold  *__u32  *1000$" $W/knob.out &&
  grep -q "^enabled  *bool  *true$" $W/knob.out && ok "sie knob lists current values" ||
  bad "sie knob list"
expect_out "sie knob addend 100" "addend: 7 -> 100" sie knob addend 100
run call_arg 20; expect_eq "call_arg(20), addend 100 live" "$R" 120
expect_out "sie knob threshold 0x0a" "threshold: 1000 -> 10" sie knob threshold 0x0a
run cmp 50; expect_eq "cmp(50), threshold 10 live" "$R" 1
# One knob read by both constants' objects: both switch back to their shipped values.
expect_out "sie knob enabled false" "enabled: true -> false" sie knob enabled false
run call_arg 20; expect_eq "call_arg(20), enabled false" "$R" 4680
run cmp 50; expect_eq "cmp(50), enabled false" "$R" 0
sie knob enabled on >/dev/null
run call_arg 20; expect_eq "call_arg(20), enabled on" "$R" 120
run cmp 50; expect_eq "cmp(50), enabled on" "$R" 1
# Plain globals are shared: with follow, the threshold object reads the last_x the call_arg
# object wrote (unshared, it would read 0: out of range, rejected, shipped 1000 -> cmp 0).
sie knob follow true >/dev/null
run call_arg 40; run cmp 50; expect_eq "cmp(50) after call_arg(40), follow: threshold 40" "$R" 1
run call_arg 60; run cmp 50; expect_eq "cmp(50) after call_arg(60), follow: threshold 60" "$R" 0
sie knob follow false >/dev/null
run cmp 50; expect_eq "cmp(50), follow false: threshold 10" "$R" 1
expect_out "sie knob --json" '"name":"addend"' sie knob --json
expect_fail "sie knob unknown" "the running policy has no live knob 'nope'" sie knob nope 1
expect_fail "sie knob unknown hint" "hint: its live knobs: addend (live, __u32)" sie knob nope 1
expect_fail "sie knob start setting" "no live knob 'min_x'" sie knob min_x 5
expect_fail "sie knob negative" "value '-1' for knob addend (__u32) is out of range" \
  sie knob addend -1
expect_fail "sie knob not a number" "is not a number" sie knob addend 12ms
expect_fail "sie knob bool" "is not a bool" sie knob enabled maybe
run call_arg 20; expect_eq "call_arg(20) after refused changes" "$R" 120

# --- Ctrl-C: defaults back, the knob pin gone ---
kill -INT $PID
wait $PID
expect_eq "sie-run exit after SIGINT" $? 0
run call_arg 20; expect_eq "call_arg(20) after SIGINT" "$R" 4680
run cmp 50; expect_eq "cmp(50) after SIGINT" "$R" 0
nothing_attached "after SIGINT"
expect_fail "sie knob after the policy stopped" "no running policy has live knobs" sie knob

# --- shadow: every hit decided and counted by value, the shipped values keep applying ---
expect_fail "--shadow with a bad --set" "has no knob 'nope'" $RUN --shadow --set nope=1
$RUN --set min_x=10 --shadow --set trace=on --set tag=shadow1 > $W/shadow.out 2> $W/shadow.err &
PID=$!
if wait_for $W/shadow.out "shadow: decisions are counted" 600 $PID; then ok "shadow run active"; else
  bad "shadow run did not become active"; cat $W/shadow.out $W/shadow.err; fi
for i in 1 2 3; do run call_arg 20; expect_eq "call_arg(20) #$i in the shadow (policy: 70)" "$R" 4680; done
run call_arg 5; expect_eq "call_arg(5) in the shadow (policy: default)" "$R" 4665
sie metrics > $W/shadow.prom
for pat in '^sie_policy_shadow 1$' \
  '^sie_policy_decisions_total{const="SIE_TARGET_CALL_ARG",id="1",kind="shadow",value="50"} 3$' \
  '^sie_policy_decisions_total{const="SIE_TARGET_CALL_ARG",id="1",kind="shadow",value="4660"} 1$' \
  '^sie_policy_shadow_differences_total{const="SIE_TARGET_CALL_ARG",id="1"} 3$'; do
  if grep -q "$pat" $W/shadow.prom; then ok "sie metrics: $pat"; else
    bad "sie metrics lacks $pat"; grep sie_policy $W/shadow.prom; fi
done
sie status > $W/shadow.st
grep -q "^policy sie-run: active, shadow (counted only, the defaults apply)$" $W/shadow.st &&
  grep -q "^  SIE_TARGET_CALL_ARG: 4 decision(s), 3 differ from the shipped 4660, 0 outside the canary$" \
    $W/shadow.st && ok "sie status shows the shadow policy and its decisions" ||
  { bad "sie status: policy"; cat $W/shadow.st; }
promtool check metrics < $W/shadow.prom && ok "promtool accepts the shadow metrics" ||
  bad "promtool check metrics"
kill -INT $PID
wait $PID
expect_eq "shadow run exit after SIGINT" $? 0
cat $W/shadow.out
grep -qF "SIE_TARGET_CALL_ARG: 4 decision(s): 50 x3, 4660 (default) x1; would have changed 3 of 4 (75.0 %)" \
  $W/shadow.out && ok "shadow summary: what the policy would have changed" || bad "shadow summary"
grep -qF "call_arg(20): addend 50 (bias -1, tag shadow1)" $W/shadow.out &&
  ok "a string start setting (--set tag=shadow1) reaches the policy's log" || bad "tag in the log"
grep -qF "SIE_TARGET_THRESHOLD: 0 decision(s)" $W/shadow.out && ok "shadow summary: no threshold hit" ||
  bad "shadow summary of SIE_TARGET_THRESHOLD"
nothing_attached "after the shadow run"

# --- canary: only tasks in one cgroup get the policy's values ---
mountpoint -q /sys/fs/cgroup || mount -t cgroup2 none /sys/fs/cgroup
mkdir -p /sys/fs/cgroup/sie-canary
in_canary() { sh -c "echo \$\$ > /sys/fs/cgroup/sie-canary/cgroup.procs; echo $1 > $T/call_arg; cat $T/call_arg"; }
expect_fail "--cgroup that is not a cgroup" "--cgroup /tmp is not a cgroup v2 directory" \
  $RUN --cgroup /tmp
expect_fail "--cgroup that does not exist" "hint: give a directory under /sys/fs/cgroup" \
  $RUN --cgroup /sys/fs/cgroup/nope
nothing_attached "after refused --cgroup"
$RUN --set min_x=10 --cgroup /sys/fs/cgroup/sie-canary --json > $W/canary.out 2> $W/canary.err &
PID=$!
if wait_for $W/canary.out '"event":"active"' 600 $PID; then ok "canary run active"; else
  bad "canary run did not become active"; cat $W/canary.out $W/canary.err; fi
expect_eq "call_arg(20) in the canary cgroup" "$(in_canary 20)" 70
run call_arg 20; expect_eq "call_arg(20) outside the canary cgroup" "$R" 4680
expect_eq "call_arg(20) in the canary cgroup again" "$(in_canary 20)" 70
kill -INT $PID
wait $PID
expect_eq "canary run exit after SIGINT" $? 0
stopped=$(grep '"event":"stopped"' $W/canary.out)
echo "$stopped"
echo "$stopped" | python3 -c '
import json, sys
d = json.load(sys.stdin)["decisions"]["SIE_TARGET_CALL_ARG"]
want = {"values": {"applied": {"50": 2}, "outside": {"4660": 1}}, "outside": 1, "differ": 2,
        "total": 3, "default": 4660}
got = {k: d.get(k) for k in want}
sys.exit(0 if got == want else print("got", got) or 1)' &&
  ok "canary summary: 2 decided in the cgroup, 1 hit outside" || bad "canary summary"
nothing_attached "after the canary run"
rmdir /sys/fs/cgroup/sie-canary

# --- --pin: the knobs stay live without sie-run; sie-run --stop removes their pins ---
$RUN --set min_x=10 --set addend=3 --pin > $W/pin.out 2>&1 || bad "--pin: $(cat $W/pin.out)"
run call_arg 20; expect_eq "call_arg(20), pinned, --set addend=3" "$R" 23
expect_out "sie knob, pinned policy" "addend: 3 -> 9" sie knob addend 9
run call_arg 20; expect_eq "call_arg(20), pinned, addend 9 live" "$R" 29
sie-run --stop
run call_arg 20; expect_eq "call_arg(20) after sie-run --stop" "$R" 4680
nothing_attached "after sie-run --stop"

# --- sie apply: the policy as desired state (pinned), restarted only when it differs ---
A=$W/apply && mkdir -p $A
pol() {
  printf 'consts: %s\npolicy:\n  file: %s\n  consts: [SIE_TARGET_CALL_ARG, SIE_TARGET_THRESHOLD]\n  knobs: {min_x: 10, addend: %s}\n' \
    "$C" "$(realpath $P)" "$1" > $A/20-policy.yaml
}
pol 5
expect_out "apply starts the policy" "start policy" sie apply $A
run call_arg 20; expect_eq "call_arg(20), applied policy, addend 5" "$R" 25
expect_out "apply again: nothing to change" "nothing to change" sie apply $A
pol 6
expect_out "apply plans a restart for a knob" "knobs [addend=5 min_x=10] -> [addend=6 min_x=10]" \
  sie apply $A --dry-run
sie apply $A > /dev/null || bad "apply of the knob change"
run call_arg 20; expect_eq "call_arg(20), applied addend 6" "$R" 26
printf 'constants:\n  SIE_TARGET_THRESHOLD: 5\n' > $A/10-fixed.yaml
expect_fail "a value and a policy for one constant" "is also decided by the policy" sie apply $A
run call_arg 20; expect_eq "call_arg(20) after the refusal" "$R" 26
rm $A/10-fixed.yaml
expect_out "apply --restore stops the policy" "stop policy" sie apply --restore
run call_arg 20; expect_eq "call_arg(20) after apply --restore" "$R" 4680
nothing_attached "after apply --restore"

echo "== $FAILS failure(s)"
[ $FAILS -eq 0 ]
