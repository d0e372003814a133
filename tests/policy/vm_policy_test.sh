#!/bin/sh
# Guest test of sie-run (label vm; runs inside the QEMU guest through `sie vm`).
#   $1: sie_target constants with precompiled stubs (build/tests/policy/consts/sie_target)
# One policy file decides two sie_target constants per calling thread from a map the test
# fills; checks: decisions per event and per task, both constants switch together, an
# out-of-range decision is counted and not applied, SIGINT restores the defaults and detaches,
# a verifier refusal names the policy line and leaves nothing attached.
C=${1:?usage: vm_policy_test.sh CONSTS_DIR}
SRC=$(dirname "$0")
T=/sys/kernel/debug/sie_target
W=/tmp/sie-policy && mkdir -p $W
FAILS=0
ok() { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; FAILS=$((FAILS + 1)); }
expect_eq() { if [ "$2" = "$3" ]; then ok "$1 = $2"; else bad "$1: got '$2', want '$3'"; fi; }
# The write must come from this shell's own thread ($$): run() is called as "run ...; R=$(...)".
run() { echo "$2" > "$T/$1"; R=$(cat "$T/$1"); }
le() { # value nbytes -> decimal bytes, little endian (bpftool's key/value syntax)
  v=$1; i=0; out=""
  while [ $i -lt $2 ]; do out="$out $((v & 255))"; v=$((v >> 8)); i=$((i + 1)); done
  echo $out
}
nothing_attached() {
  n=$(grep -c sie_target /sys/kernel/debug/kprobes/list 2>/dev/null)
  p=$(ls /sys/fs/bpf/sie 2>/dev/null | wc -l)
  r=$(ls /sys/fs/bpf | grep -c -e sie_run -e tid_values -e bad_values)
  if [ "$n" = 0 ] && [ "$p" = 0 ] && [ "$r" = 0 ]; then ok "$1: no kprobe, no pin"; else
    bad "$1: $n kprobes, $p const pins, $r policy pins"; ls /sys/fs/bpf /sys/fs/bpf/sie; fi
}
wait_for() { # file pattern seconds
  i=0
  while [ $i -lt $(($3 * 10)) ]; do grep -q "$2" "$1" && return 0; sleep 0.1; i=$((i + 1)); done
  return 1
}

echo "== kernel $(uname -r), consts $C"
insmod "$(dirname "$(command -v sie)")/../kmod/sie_target.ko" 2>/dev/null
run call_arg 5; expect_eq "call_arg(5) shipped" "$R" 4665
run cmp 50; expect_eq "cmp(50) shipped" "$R" 0

# --- refusals first: nothing may stay attached ---
out=$(sie-run $SRC/bpf/bad_verifier.bpf.c --const SIE_TARGET_CALL_ARG --consts $C --no-optimize 2>&1)
rc=$?
echo "$out" | sed 's/^/    | /' | head -20
if [ $rc -ne 0 ] && echo "$out" | grep -q "bad_verifier.bpf.c:18: the kernel's verifier rejected" &&
   echo "$out" | grep -q "hint:"; then ok "verifier refusal names the policy line"; else
  bad "verifier refusal: rc=$rc"; fi
nothing_attached "after the verifier refusal"
out=$(sie-run $SRC/bpf/per_task.bpf.c --const NO_SUCH --consts $C 2>&1)
if [ $? -ne 0 ] && echo "$out" | grep -q "unknown constant 'NO_SUCH'"; then
  ok "unknown constant refused"; else bad "unknown constant: $out"; fi

# --- the policy on two constants ---
sie-run $SRC/bpf/per_task.bpf.c --const SIE_TARGET_CALL_ARG,SIE_TARGET_THRESHOLD --consts $C \
  --no-optimize -v > $W/run.out 2> $W/run.err &
PID=$!
if wait_for $W/run.out "active on" 600 $PID; then ok "sie-run active"; else
  bad "sie-run did not become active"; cat $W/run.out $W/run.err; exit 1; fi
cat $W/run.err | grep timings
run call_arg 5; expect_eq "call_arg(5), thread not in the map" "$R" 4665
run cmp 50; expect_eq "cmp(50), thread not in the map" "$R" 0
bpftool map update pinned /sys/fs/bpf/tid_values key $(le $$ 4) value $(le 100 8)
run call_arg 5; expect_eq "call_arg(5), this thread -> 100" "$R" 105
run cmp 50; expect_eq "cmp(50), this thread -> threshold 10" "$R" 1
expect_eq "call_arg(5), other process" "$(sh -c "echo 5 > $T/call_arg; cat $T/call_arg")" 4665
run call_arg 777; expect_eq "call_arg(777) per event" "$R" 877
bpftool map update pinned /sys/fs/bpf/tid_values key $(le $$ 4) value $(le 7 8)
run call_arg 5; expect_eq "call_arg(5), this thread -> 7" "$R" 12
# Out of range (SIE_TARGET_CALL_ARG is [0, 0x7fffffff]): rejected by the stub, shipped value.
bpftool map update pinned /sys/fs/bpf/tid_values key $(le $$ 4) value $(le -5 8)
run call_arg 5; expect_eq "call_arg(5), out-of-range decision" "$R" 4665
rej=$(sie status --json | python3 -c 'import json,sys
print(sum(s["rejected"] for c in json.load(sys.stdin) if c["name"] == "SIE_TARGET_CALL_ARG" for s in c["spans"]))')
if [ -n "$rej" ] && [ "$rej" -ge 1 ]; then ok "rejected counted ($rej)"; else
  bad "rejected not counted: $(sie status --json)"; fi
wait_for $W/run.out "call_arg(777) takes 100" 10 && ok "policy log line streamed" ||
  bad "no policy log line: $(cat $W/run.out)"

# --- SIGINT: every default back, everything detached ---
kill -INT $PID
wait $PID
rc=$?
expect_eq "sie-run exit after SIGINT" $rc 0
cat $W/run.out $W/run.err
grep -q "call_arg_chosen: [1-9]" $W/run.out && ok "policy counters printed" || bad "counters"
run call_arg 5; expect_eq "call_arg(5) after SIGINT" "$R" 4665
run cmp 50; expect_eq "cmp(50) after SIGINT" "$R" 0
nothing_attached "after SIGINT"

echo "== $FAILS failure(s)"
[ $FAILS -eq 0 ]
