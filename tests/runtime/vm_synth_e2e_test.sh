#!/bin/sh
# End to end, spec to kernel: every sie_target constant as `sie synth` wrote it (not a
# hand-written fixture) takes a value never compiled, observed through the module's results,
# and unload restores the compiled behaviour exactly. $1: the synthesized constants.
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
n=$(grep -c sie_target /sys/kernel/debug/kprobes/list)
expect_eq "kprobes left" "$n" 0
rmmod sie_target
echo "$FAILS failed"
[ $FAILS = 0 ]
