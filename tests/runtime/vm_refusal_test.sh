#!/bin/sh
# The refusal catalogue: every bad input sie knows (refusals.tsv: spec and artifact fields,
# values, options, loaded state, unload, livepatch, foreign probes, modules, build ids,
# permissions), each with the message sie must print and a hint; after each the kernel must be
# exactly as before the command (lib.sh's snapshot). Then two commands at once: the second waits
# for the first and says so. Constants as `sie synth` wrote them.
# $1: sie_target's synthesized constants, $2: sch_fq's (FQ_DEFAULT_LIMIT).
C=${1:?usage: vm_refusal_test.sh SIE_TARGET_CONSTS SCH_FQ_CONSTS}
M=${2:?usage: vm_refusal_test.sh SIE_TARGET_CONSTS SCH_FQ_CONSTS}
. "$(dirname "$0")/lib.sh"
TABLE=$(dirname "$0")/refusals.tsv
W=/tmp/sie-refusals
rm -rf $W && mkdir -p $W || exit 1
K=$(dirname "$(command -v sie)")/../kmod
LP=/sys/kernel/livepatch/sie_lp_target
start=$(date +%s)

# --- helpers the table's cells call ---
# A consts directory holding a copy of constant $2 of directory $1 alone (its const.json and
# compiled stub: copying all of them costs a second under TCG).
copied() { # dir name
  d=$W/row$ROW; rm -rf $d; mkdir -p $d
  cp -r "$(dirname "$(grep -l "\"name\": \"$2\"" "$1"/*/const.json)")" $d/
  echo $d
}
# That copy with the const.json edited by sed expression $3.
mutated() { # dir name sed-expression
  d=$(copied "$1" "$2")
  sed -i "$3" $d/*/const.json
  echo $d
}
# A copy of $C's constant $1 with its first probe one byte further, inside an instruction.
probe_shifted() { # name
  d=$(copied "$C" "$1")
  f=$(echo $d/*/const.json)
  off=$(sed -n 's/^ *"probe_offset": \([0-9]*\).*/\1/p' "$f" | head -1)
  sed -i "s/\"probe_offset\": $off\([,]*\)$/\"probe_offset\": $((off + 1))\1/" "$f"
  echo $d
}
# sie_lp_target replaces sie_target_call_arg (kmod/sie_lp_target).
lp_settle() {
  i=0
  while [ -e $LP/transition ] && [ "$(cat $LP/transition)" = 1 ] && [ $i -lt 200 ]; do
    sleep 0.05; i=$((i + 1))
  done
}
lp_on() { insmod $K/sie_lp_target.ko && lp_settle; }
lp_off() {
  echo 0 > $LP/enabled
  i=0; while [ -e $LP ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
  rmmod sie_lp_target
}
# A trace kprobe (another tool's) at sie_target:$1.
foreign_on() {
  mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing
  echo "p:sie_other sie_target:$1" >> /sys/kernel/tracing/kprobe_events &&
    echo 1 > /sys/kernel/tracing/events/kprobes/sie_other/enable
}
foreign_off() {
  echo 0 > /sys/kernel/tracing/events/kprobes/sie_other/enable
  echo '-:sie_other' >> /sys/kernel/tracing/kprobe_events
}
# A load killed (kill -9) after its links are pinned, before it activates: its state says
# "loading". SIE_STOP_AT stops sie there (SIGSTOP), so the kill never races the load.
killed_load() { # name
  SIE_STOP_AT="activate " sie set "$1" 100 --engine bpf --consts "$C" > /dev/null 2>&1 &
  pid=$!
  i=0
  while [ "$(cut -d' ' -f3 /proc/$pid/stat 2>/dev/null)" != T ] && [ $i -lt 1500 ]; do
    sleep 0.02; i=$((i + 1))
  done
  pinned=0; [ -e /sys/fs/bpf/sie/$1/link_apply_0 ] && pinned=1
  kill -9 $pid; wait $pid 2>/dev/null
  [ $pinned = 1 ] || { echo "sie set did not stop after pinning its links"; return 1; }
  sie status | grep -q "$1.*loading"
}
# Undoes a row's setup: whatever sie loaded, the livepatch, the trace kprobe, sch_fq.
cleanup() {
  for f in /run/sie/*.json; do
    case $f in *journal* | '/run/sie/*.json') ;; *) sie unload --all > /dev/null 2>&1; break ;; esac
  done
  [ -e $LP ] && lp_off
  [ -e /sys/kernel/tracing/events/kprobes/sie_other ] && foreign_off
  [ -e /sys/module/sch_fq ] && rmmod sch_fq
  true
}

insmod $K/sie_target.ko || { echo "FAIL - insmod"; exit 1; }
# The modules sie loads on first use, loaded once, so every row's baseline has them.
sie set SIE_TARGET_CALL_ARG 3 --engine native --consts "$C" > /dev/null || bad "warm-up set (native)"
sie set SIE_TARGET_DIVISOR 3 --mode 2 --timeout 30 --consts "$C" > /dev/null || bad "warm-up set (mode 2)"
sie unload --all > /dev/null || bad "warm-up unload"
clean=$(snapshot)

ROW=0; ROWS=0
TAB=$(printf '\t')
# The table on fd 3, so no command of a row can read it from stdin.
while IFS=$TAB read -r name before cmd msg <&3; do
  case "$name" in '#'* | '') continue ;; esac
  ROW=$((ROW + 1)); ROWS=$((ROWS + 1))
  if [ "$before" != - ] && ! eval "$before" > $W/before.out 2>&1; then
    bad "$name: setup '$before' failed: $(cat $W/before.out)"; cleanup; continue
  fi
  # Rows without a setup start from the clean kernel (one snapshot less each: TCG is slow).
  if [ "$before" = - ]; then base=$clean; else base=$(snapshot); fi
  out=$(eval "$cmd" 2>&1) && { bad "$name: accepted: $cmd: $out"; cleanup; continue; }
  case "$out" in
    *"$msg"*"hint: "*) ok "$name: $(echo "$out" | head -1)" ;;
    *"$msg"*) bad "$name: no hint: $out" ;;
    *) bad "$name: '$msg' not in: $out" ;;
  esac
  same_as "$name" "$base"
  cleanup
done 3< "$TABLE"
same_as "after the catalogue" "$clean" && ok "the kernel is as at the start"
echo "     $ROWS rows in $(($(date +%s) - start)) s"

# Two commands at once: the second waits for the first (one change at a time) and says who
# holds the lock; both apply, in order.
sie set SIE_TARGET_FAN 100 --engine bpf --consts "$C" > $W/first.out 2>&1 &
first=$!
i=0
holder=
while [ "$holder" != $first ] && [ $i -lt 300 ]; do
  sleep 0.02; read -r holder < /run/sie/lock 2>/dev/null; i=$((i + 1))
done
expect_eq "the lock's holder" "$holder" $first
out=$(sie set SIE_TARGET_CALL_ARG 7 --consts "$C" 2>&1) || bad "second sie set: $out"
wait $first || bad "first sie set: $(cat $W/first.out)"
expect_in "the second sie set" "$out" "waiting for another sie command to finish (pid $first: sie set SIE_TARGET_FAN 100"
expect_eq "fan(1) with FAN=100" "$(run fan 1)" 1635
expect_eq "call_arg(100) with CALL_ARG=7" "$(run call_arg 100)" 107
sie unload --all > /dev/null || bad "unload after the concurrent sets"
same_as "after the concurrent sets" "$clean" && ok "the kernel is as at the start"
ROWS=$((ROWS + 1))

echo "refusal catalogue: $ROWS rows, $FAILS failed, $(($(date +%s) - start)) s"
rmmod sie_target
echo "$FAILS failed"
[ $FAILS = 0 ]
