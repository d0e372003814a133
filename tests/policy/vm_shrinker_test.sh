#!/bin/sh
# Guest test of the per-shrinker batch case study (policies/shrinker_batch; label vm).
#   $1: SHRINK_BATCH as sie synth wrote it from the guest kernel's source
# kmod/sie_shrink_observer registers two shrinkers that set no batch (scan functions
# sie_obs_scan and sie_obs_scan_b) and records the largest nr_to_scan each is asked for. Both
# are filled and the slab caches dropped: without the policy both see SHRINK_BATCH's 128; with
# it, the one it names gets its batch and the other still 128; a live knob change reaches it; the
# summary counts the decisions; after Ctrl-C both are at 128 again.
C=${1:?usage: vm_shrinker_test.sh CONSTS_DIR}
SRC=$(dirname "$0")
P=$SRC/../../policies/shrinker_batch/shrinker_batch.bpf.c
O=/sys/kernel/debug/sie_shrink_observer
W=/tmp/sie-shrinker && mkdir -p $W
. "$SRC/../runtime/lib.sh"
# Fills both shrinkers, drops the slab caches: "A B", the largest scan each was asked for.
batches() {
  echo 100000 > $O/objects && echo 100000 > $O/b/objects && echo 2 > /proc/sys/vm/drop_caches &&
    echo "$(cat $O/max_scan) $(cat $O/b/max_scan)"
}
RUN="sie-run $P --const SHRINK_BATCH --consts $C"

echo "== kernel $(uname -r), consts $C"
insmod "$(dirname "$(command -v sie)")/../kmod/sie_shrink_observer.ko" || { echo "FAIL - insmod"; exit 1; }
expect_eq "without the policy: both shrinkers' batch" "$(batches)" "128 128"

expect_fail_out=$($RUN --set shrinker=$(printf '%070d' 0) 2>&1) &&
  bad "a 70-byte shrinker name accepted" ||
  { echo "$expect_fail_out" | grep -qF "is too long" && ok "a too-long --set shrinker is refused" ||
    bad "too-long name: $expect_fail_out"; }

$RUN --set shrinker=sie_obs_scan_b --set batch=512 > $W/run.out 2> $W/run.err &
PID=$!
if wait_for $W/run.out "active on" 600 $PID; then ok "policy active"; else
  bad "policy did not become active"; cat $W/run.out $W/run.err; exit 1; fi
expect_eq "with the policy (sie_obs_scan_b: 512)" "$(batches)" "128 512"
expect_eq "again" "$(batches)" "128 512"
sie knob batch 1000 > /dev/null || bad "sie knob batch 1000"
expect_eq "live knob batch 1000" "$(batches)" "128 1000"
sie metrics | grep 'sie_policy_decisions_total{const="SHRINK_BATCH"' | head -5
kill -INT $PID
wait $PID
expect_eq "sie-run exit after SIGINT" $? 0
cat $W/run.out
grep -qE "SHRINK_BATCH: [0-9]+ decision\(s\): 128 \(default\) x[0-9]+, 512 x[0-9]+, 1000 x[0-9]+; changed" \
  $W/run.out && ok "summary: decisions by value" || bad "summary of decisions"
grep -qE "tuned_scans: [1-9]" $W/run.out && ok "summary: tuned_scans counted" || bad "tuned_scans"
expect_eq "after the policy: both shrinkers' batch" "$(batches)" "128 128"
n=$(grep -c do_shrink_slab /sys/kernel/debug/kprobes/list)
expect_eq "kprobes left in do_shrink_slab" "$n" 0
rmmod sie_shrink_observer

echo "== $FAILS failure(s)"
[ $FAILS -eq 0 ]
