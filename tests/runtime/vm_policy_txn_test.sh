#!/bin/sh
# A policy's constants switch together (issue: transactions asserted), on synthesized
# sie_target constants: one policy file decides SIE_TARGET_PAIR_A and _B, which sie_target's
# pair path uses around a sleep. The policy is one BPF object (both stubs and the policy: one
# BTF). Mode 2: a call asleep between the two uses while the policy starts or stops sees both
# shipped or both decided values; mode 0 (the control): the same calls see one of each.
# $1: the synthesized constants (with the pair policy and its stubs precompiled on the host).
C=${1:?usage: vm_policy_txn_test.sh CONSTS_DIR}
. "$(dirname "$0")/lib.sh"

insmod "$(dirname "$(command -v sie)")/../kmod/sie_target.ko" || { echo "FAIL - insmod"; exit 1; }
expect_eq "pair(0) as compiled" "$(run pair 0)" 11000022

# One policy over the two constants of the pair path, used around a sleep (pair(ms): A * 1000000
# + B; shipped 11, 22, decided 111, 222), as one BPF object. In mode 2 the constants share one
# sie_consistency instance (their safe spans are the same function: one span), so its gate opens
# and closes at an instant with no task inside: a call asleep between its uses while the policy
# starts or stops sees both values of one side. In mode 0 the same calls see one of each.
PAIR=$(dirname "$0")/../policy/bpf/pair.bpf.c
for mode in 0 2; do
  # Start while a call sleeps between A and B (10 s: mode 0 is active well before it wakes).
  sh -c "echo 10000 > $T/pair" &
  SP=$!
  sleep 0.5
  sie-run $PAIR --const SIE_TARGET_PAIR_A,SIE_TARGET_PAIR_B --consts "$C" --mode $mode \
    --timeout 20 -v > /tmp/pair.out 2> /tmp/pair.err &
  RP=$!
  if ! wait_for /tmp/pair.out "active on" 300 $RP; then
    bad "mode $mode: sie-run did not become active"; cat /tmp/pair.out /tmp/pair.err; kill $RP; continue
  fi
  grep timings /tmp/pair.err
  kill -0 $SP 2>/dev/null && sleeper=asleep || sleeper=done
  wait $SP
  start=$(cat $T/pair)
  echo "METRIC pair mode$mode start=$start (the sleeper was $sleeper when sie-run became active)"
  expect_eq "mode $mode: pair(0) with the policy" "$(run pair 0)" 111000222
  # One object: both constants' apply programs and the policy were loaded together (one BTF).
  nbtf=$(bpftool prog show --json | python3 -c 'import json,sys
print(len({p.get("btf_id") for p in json.load(sys.stdin) if p.get("name","").startswith("sie_apply_")}))')
  expect_eq "mode $mode: BTF objects of the policy's stub programs" "$nbtf" 1
  if [ $mode = 2 ]; then
    inst=$(sie status --json | python3 -c 'import json,sys
print(sorted({c.get("instance") for c in json.load(sys.stdin) if c["name"].startswith("SIE_TARGET_PAIR")}))')
    id=$(echo "$inst" | tr -d '[]')
    case "$id" in *,*|'') bad "mode 2: the constants' instances: $inst" ;; *)
      ok "mode 2: both constants in sie_consistency instance $id"
      expect_eq "mode 2: spans of the shared instance" \
        "$(grep '^spans' /sys/kernel/debug/sie_consistency/$id/status)" "spans 1" ;; esac
  fi
  # Stop while a call sleeps between A and B.
  sh -c "echo 3000 > $T/pair" &
  SP=$!
  sleep 1
  kill -INT $RP; wait $RP
  wait $SP
  stop=$(cat $T/pair)
  echo "METRIC pair mode$mode stop=$stop"
  expect_eq "mode $mode: pair(0) after sie-run stopped" "$(run pair 0)" 11000022
  if [ $mode = 2 ]; then
    expect_eq "mode 2: a call asleep while the policy started saw the shipped pair" "$start" 11000022
    expect_eq "mode 2: the policy became active once that call had left the span" "$sleeper" done
    expect_eq "mode 2: a call asleep while the policy stopped saw the decided pair" "$stop" 111000222
  else
    # Mode 0 switches under the sleeping call: one of each (unless sie-run started too late).
    if [ "$sleeper" = asleep ]; then expect_eq "mode 0: the call asleep at the start mixed" "$start" 11000222
    else echo "note - mode 0: sie-run became active after the sleeping call (no start check)"; fi
    expect_eq "mode 0: the call asleep at the stop mixed" "$stop" 111000022
  fi
done
n=$(grep -c sie_target /sys/kernel/debug/kprobes/list)
expect_eq "kprobes left after the pair policy" "$n" 0

rmmod sie_target
echo "$FAILS failed"
[ $FAILS = 0 ]
