#!/bin/sh
# Soak: set / update / unload cycles on synthesized sie_target constants, both engines and all
# three modes, while reader processes run the constant's code path (sie_target's debugfs) and
# check every result is one the kernel may give at that moment: the old or the new value of the
# transition in flight. At the end nothing may be left: BPF programs, maps, links, kprobes, pins,
# /run/sie state, sie processes or fds of BPF objects (a splat fails the run in the vm runner).
# $1: the synthesized constants. SIE_SOAK_CYCLES: cycles per engine/mode (default 4; see
# docs/soak.md for long runs), SIE_SOAK_READERS: reader processes per phase (default 2).
C=${1:?usage: vm_soak_test.sh CONSTS_DIR}
. "$(dirname "$0")/lib.sh"
CYCLES=${SIE_SOAK_CYCLES:-4}
READERS=${SIE_SOAK_READERS:-2}
W=/tmp/sie-soak
rm -rf $W && mkdir -p $W/g || exit 1
start=$(date +%s)

# The result of a path at input x for constant value v (kmod/sie_target/sie_target.c).
result() { # path x v
  case $1 in
    call_arg) echo $(($2 + $3)) ;;
    loop) echo $(($3 * $2 + $3 * ($3 - 1) / 2)) ;;
    div) echo $(($2 / $3)) ;;
  esac
}

# The results allowed at each moment, published as generations: before a transition the results
# of both its values, after it those of the new value alone. A reader accepts a result found in
# any generation published between its reads of $W/gen before and after the call.
gen=0
publish() { # results...
  gen=$((gen + 1))
  echo "$*" > $W/g/$gen
  echo $gen > $W/gen.new && mv $W/gen.new $W/gen
}
allowed() { # first-gen last-gen result
  g=$1
  while [ "$g" -le "$2" ]; do
    read -r vals < $W/g/$g
    for v in $vals; do [ "$v" = "$3" ] && return 0; done
    g=$((g + 1))
  done
  return 1
}
# Builtins only in the loop (echo, read, test): no fork per read, so the readers keep up under TCG.
reader() { # id path x
  n=0; wrong=0
  while [ ! -e $W/stop ]; do
    read -r g1 < $W/gen
    echo "$3" > "$T/$2"
    read -r r < "$T/$2"
    read -r g2 < $W/gen
    n=$((n + 1))
    if ! allowed "$g1" "$g2" "$r"; then
      wrong=$((wrong + 1))
      echo "reader $1: $2($3) = $r, not allowed by generations $g1..$g2 ($(cat $W/g/$g1) .. $(cat $W/g/$g2))" >> $W/wrong.log
    fi
  done
  echo "$n $wrong" > $W/count.$1
}

# Counts of what must not leak, compared at the end.
bpf_fds() { ls -l /proc/[0-9]*/fd 2>/dev/null | grep -c 'anon_inode:\(bpf-\|\[perf_event\]\)'; }
counts() {
  echo "progs=$(bpftool prog show | grep -c '^[0-9]*:') maps=$(bpftool map show | grep -c '^[0-9]*:')" \
    "links=$(bpftool link show | grep -c '^[0-9]*:') kprobes=$(wc -l < /sys/kernel/debug/kprobes/list)" \
    "pins=$(find /sys/fs/bpf/sie -mindepth 1 2>/dev/null | wc -l)" \
    "state=$(ls /run/sie 2>/dev/null | grep '\.json$' | grep -vc journal)" \
    "sie_procs=$(pgrep -x 'sie|sie-run' | wc -l) bpf_fds=$(bpf_fds)"
}

insmod "$(dirname "$(command -v sie)")/../kmod/sie_target.ko" || { echo "FAIL - insmod"; exit 1; }
# The modules sie loads on first use (sie_kfuncs, sie_native, sie_consistency), loaded once, so
# the baseline has them.
for e in bpf native; do
  sie set SIE_TARGET_CALL_ARG 3 --engine $e --consts "$C" > /dev/null || bad "warm-up set ($e)"
  sie unload SIE_TARGET_CALL_ARG > /dev/null || bad "warm-up unload ($e)"
done
sie set SIE_TARGET_DIVISOR 3 --mode 2 --timeout 30 --consts "$C" > /dev/null || bad "warm-up set (mode 2)"
sie unload SIE_TARGET_DIVISOR --timeout 30 > /dev/null || bad "warm-up unload (mode 2)"
base=$(snapshot)
base_counts=$(counts)
echo "     baseline: $base_counts"

TOTAL_CYCLES=0; TOTAL_READS=0; TOTAL_WRONG=0; PHASES=
# One engine and mode: CYCLES times set A, update to B, unload, with READERS readers running.
phase() { # engine mode name path x shipped-value first-value
  engine=$1; mode=$2; name=$3; path=$4; x=$5; v0=$6
  case " ${SIE_SOAK_ONLY:-$engine/$mode} " in *" $engine/$mode "*) ;; *) return ;; esac
  r0=$(result $path $x $v0)
  expect_eq "$name $path($x) shipped" "$(run $path $x)" "$r0"
  rm -f $W/stop $W/count.*; publish "$r0"
  i=1
  # Niced: the sie commands come first on the one vCPU; readers take the rest.
  while [ $i -le "$READERS" ]; do reader $i $path $x & renice -n 10 $! > /dev/null; i=$((i + 1)); done
  to=; [ "$mode" = 2 ] && to="--timeout 30"
  c=0; fails=0
  while [ $c -lt "$CYCLES" ]; do
    a=$(($7 + 2 * (c % 40))); b=$((a + 1))
    ra=$(result $path $x $a); rb=$(result $path $x $b)
    publish "$r0 $ra"
    sie set $name $a --engine $engine --mode $mode $to --consts "$C" > $W/out 2>&1 ||
      { bad "$engine/$mode cycle $c: set $a: $(cat $W/out)"; fails=$((fails + 1)); }
    publish "$ra"
    # Mode 2 changes a loaded value through the original one (a reverse transition, the value
    # written while the gate is closed, a forward one: runtime/loader/set.cc UpdateGlobal).
    if [ "$mode" = 2 ]; then publish "$ra $r0 $rb"; else publish "$ra $rb"; fi
    sie set $name $b --engine $engine --mode $mode $to --consts "$C" > $W/out 2>&1 ||
      { bad "$engine/$mode cycle $c: update to $b: $(cat $W/out)"; fails=$((fails + 1)); }
    publish "$rb"
    publish "$rb $r0"
    sie unload $name $to > $W/out 2>&1 ||
      { bad "$engine/$mode cycle $c: unload: $(cat $W/out)"; fails=$((fails + 1)); }
    publish "$r0"
    c=$((c + 1))
    [ $fails -gt 3 ] && break
  done
  touch $W/stop
  wait
  reads=0; wrong=0
  for f in $W/count.*; do
    read -r n w < "$f"; reads=$((reads + n)); wrong=$((wrong + w))
  done
  [ "$wrong" = 0 ] && [ "$reads" -gt 0 ] &&
    ok "$engine/mode $mode ($name): $c cycles, $reads reads, none wrong" ||
    bad "$engine/mode $mode ($name): $c cycles, $reads reads, $wrong wrong"
  expect_eq "$name $path($x) after the cycles" "$(run $path $x)" "$r0"
  TOTAL_CYCLES=$((TOTAL_CYCLES + c)); TOTAL_READS=$((TOTAL_READS + reads))
  TOTAL_WRONG=$((TOTAL_WRONG + wrong)); PHASES="${PHASES:+$PHASES }$engine/$mode=$c"
}

# call_arg(x) = x + CALL_ARG, loop(x) = LOOP_BOUND * x + LOOP_BOUND * (LOOP_BOUND - 1) / 2,
# div(x) = x / DIVISOR. Native is mode 0 only; the per-task and global modes run the BPF stub.
# SIE_SOAK_ONLY="bpf/1 ..." runs only those. Mode 1 runs LOOP_BOUND, whose safe span is a slice
# (its guard an int3 kprobe): with a whole-function safe span (SAVED, DIVISOR) the guard sits on
# the ftrace site, and there every guard of a task in a system call finds an "unsafe" stack, so
# the readers never switch (found by this soak; kthreads do switch).
phase bpf 0 SIE_TARGET_CALL_ARG call_arg 100 4660 1000
phase native 0 SIE_TARGET_CALL_ARG call_arg 100 4660 2000
phase bpf 1 SIE_TARGET_LOOP_BOUND loop 10 8 20
phase bpf 2 SIE_TARGET_DIVISOR div 12345 10 11
[ -s $W/wrong.log ] && sort $W/wrong.log | uniq -c | sort -rn | head -20

end_counts=$(counts)
echo "     end:      $end_counts"
expect_eq "leak counts" "$end_counts" "$base_counts"
same_as "after the soak" "$base" && ok "the kernel is as before the soak"
[ -z "$(find /sys/fs/bpf/sie -mindepth 1 2>/dev/null)" ] && ok "no pins under /sys/fs/bpf/sie" ||
  bad "pins left: $(find /sys/fs/bpf/sie -mindepth 1)"
expect_eq "sie status" "$(sie status)" "no constants loaded"
# What each count grew by (leaked_progs=0 ...); sie_procs is absolute: none may run.
leaks=$(echo "$base_counts $end_counts" | awk '{ n = NF / 2; for (i = 1; i <= n; i++) {
  split($i, a, "="); split($(i + n), b, "="); printf " leaked_%s=%d", a[1], b[2] - a[2] } }')
echo "soak: cycles=$TOTAL_CYCLES reads=$TOTAL_READS wrong=$TOTAL_WRONG ($PHASES, $READERS readers)" \
  "${leaks# } duration=$(($(date +%s) - start))s"
rmmod sie_target
echo "$FAILS failed"
[ $FAILS = 0 ]
