#!/bin/sh
# Fault injection: SIE_FAIL_STEP=N fails the N-th kernel-facing step of a command (program load,
# each kprobe / link / pin, map updates, sie_native and sie_consistency commands, activation).
# For every N until the command succeeds, the kernel must be exactly as before the command:
# kprobes, sie's BPF programs, maps and links, pins, /run/sie state, module reference counts and
# the value the code computes. Constants as `sie synth` wrote them for sie_target.
# $1: the synthesized constants.
C=${1:?usage: vm_fault_test.sh CONSTS_DIR}
. "$(dirname "$0")/lib.sh"

insmod "$(dirname "$(command -v sie)")/../kmod/sie_target.ko" || { echo "FAIL - insmod"; exit 1; }
# The modules sie loads on first use, loaded once, so the baseline has them.
for e in bpf native; do
  sie set SIE_TARGET_LOOP_BOUND 3 --engine $e --consts "$C" > /dev/null || bad "warm-up set ($e)"
  sie unload SIE_TARGET_LOOP_BOUND || bad "warm-up unload ($e)"
done
sie set SIE_TARGET_BATCH 100 --mode 2 --timeout 30 --consts "$C" > /dev/null || bad "warm-up set (mode 2)"
sie unload SIE_TARGET_BATCH || bad "warm-up unload (mode 2)"

# Fails step 1, 2, ... of `sie set ARGS` until it succeeds; after each failure the kernel must
# be as in `base`. Prints the number of steps of the successful run.
STEPS_TOTAL=0
fail_each_step() { # label, fewest steps expected, then the sie set arguments
  label=$1; least=$2; shift 2
  base=$(snapshot)
  n=1
  while [ $n -le 200 ]; do
    if out=$(SIE_FAIL_STEP=$n sie set "$@" --consts "$C" 2>&1); then break; fi
    case "$out" in
      *"injected fault at kernel step $n "*) ;;
      *) bad "$label: step $n failed without the injected fault: $out" ;;
    esac
    same_as "$label: failing step $n" "$base"
    n=$((n + 1))
  done
  steps=$((n - 1))
  [ $steps -ge $least ] && ok "$label: each of $steps kernel steps failed, kernel unchanged each time" ||
    bad "$label: only $steps kernel steps before the set succeeded"
  STEPS_TOTAL=$((STEPS_TOTAL + steps))
}

# Fails step N of `sie unload NAME`; the constant stays reported and a plain unload completes.
fail_unload_steps() { # name
  n=1
  while [ $n -le 50 ]; do
    if out=$(SIE_FAIL_STEP=$n sie unload "$1" 2>&1); then break; fi
    expect_in "unload $1 failing step $n" "$out" "injected fault at kernel step $n"
    sie status | grep -q "$1" || bad "unload $1 failing step $n: $1 no longer listed"
    n=$((n + 1))
  done
  ok "unload $1: $((n - 1)) kernel steps failed one at a time, then it completed"
  STEPS_TOTAL=$((STEPS_TOTAL + n - 1))
}

clean=$(snapshot)
expect_eq "call_arg(100) shipped" "$(run call_arg 100)" 4760
# BPF engine, mode 0: the stub's load, safe ranges, control words, map pins, kprobe, link and
# link pin, activation.
fail_each_step "set CALL_ARG bpf" 8 SIE_TARGET_CALL_ARG 7 --engine bpf
expect_eq "call_arg(100) after the set that succeeded" "$(run call_arg 100)" 107
# A value change of a loaded constant: one control-word write.
fail_each_step "update CALL_ARG bpf" 1 SIE_TARGET_CALL_ARG 9
expect_eq "call_arg(100) after the update" "$(run call_arg 100)" 109
fail_unload_steps SIE_TARGET_CALL_ARG
expect_eq "call_arg(100) after unload" "$(run call_arg 100)" 4760

# Native engine: sie_native add (inert) and value, per probe.
fail_each_step "set CALL_ARG native" 2 SIE_TARGET_CALL_ARG 7 --engine native
expect_eq "call_arg(100) native" "$(run call_arg 100)" 107
fail_each_step "update CALL_ARG native" 1 SIE_TARGET_CALL_ARG 9
expect_eq "call_arg(100) native after the update" "$(run call_arg 100)" 109
fail_unload_steps SIE_TARGET_CALL_ARG
expect_eq "call_arg(100) after unload (native)" "$(run call_arg 100)" 4760

# Per-task mode with saved inputs (a save and an apply program, a new epoch).
fail_each_step "set SAVED mode 1" 8 SIE_TARGET_SAVED 5 --mode 1
fail_unload_steps SIE_TARGET_SAVED
expect_eq "saved(9) after unload" "$(run saved 9)" 63
# Global mode: the sie_consistency instance and its spans, then the switch.
fail_each_step "set BATCH mode 2" 8 SIE_TARGET_BATCH 100 --mode 2 --timeout 30
sie status | grep -q "SIE_TARGET_BATCH (id [0-9]*): value 100, mode 2" && ok "BATCH loaded in mode 2" ||
  bad "BATCH not loaded in mode 2: $(sie status)"
fail_unload_steps SIE_TARGET_BATCH

same_as "at the end" "$clean" && ok "the kernel is as at the start"
echo "fault injection: $STEPS_TOTAL kernel steps failed one at a time"
rmmod sie_target
echo "$FAILS failed"
[ $FAILS = 0 ]
