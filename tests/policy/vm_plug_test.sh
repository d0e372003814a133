#!/bin/sh
# Guest test of the plugging case studies (label vm): policies/blk_plug_hint (hints from
# applications) and policies/blk_plug_adaptive (an observer on blk_attempt_plug_merge) on
# BLK_MAX_REQUEST_COUNT, with fio on a null_blk device. Measured per run from the block layer's
# own tracepoint: requests per plug flush (block:block_unplug's depth), averaged.
#   $1: BLK_MAX_REQUEST_COUNT's constants directory (stubs and both policies precompiled)
C=${1:?usage: vm_plug_test.sh CONSTS_DIR}
SRC=$(dirname "$0")
HINT=$SRC/../../policies/blk_plug_hint/blk_plug_hint.bpf.c
ADAPT=$SRC/../../policies/blk_plug_adaptive/blk_plug_adaptive.bpf.c
TR=/sys/kernel/tracing
W=/tmp/sie-plug && mkdir -p $W
. "$SRC/../runtime/lib.sh"
# fio on /dev/nullb0: RW (randread/read), 4 KiB direct reads, io_uring submitting 32 at a time,
# its job as a thread of the process (so a process hint covers it).
FIO="fio --name=plug --filename=/dev/nullb0 --bs=4k --direct=1 --ioengine=io_uring --iodepth=32
  --iodepth_batch_submit=32 --iodepth_batch_complete_min=32 --size=16m --thread --output=/dev/null"
fio_job() { $FIO --rw=$1; }
# Average requests per plug flush (block_unplug) of the last measure, "flushes avg".
measure() { # cmd...
  echo > $TR/trace
  echo 1 > $TR/events/block/block_unplug/enable
  "$@" || bad "workload: $*"
  echo 0 > $TR/events/block/block_unplug/enable
  awk '/block_unplug:/ { n++; s += $NF } END { if (n) printf "%d %.1f\n", n, s / n; else print "0 0" }' $TR/trace
}
avg() { echo "$1" | cut -d' ' -f2; }
# expect_range NAME VALUE LO HI (decimals allowed)
expect_range() {
  if awk -v v="$2" -v lo="$3" -v hi="$4" 'BEGIN { exit !(v >= lo && v <= hi) }'; then
    ok "$1: $2 in [$3, $4]"; else bad "$1: $2 not in [$3, $4]"; fi
}

echo "== kernel $(uname -r), consts $C"
modprobe null_blk queue_mode=2 nr_devices=1 || { echo "FAIL - modprobe null_blk"; exit 1; }
echo 16384 > $TR/buffer_size_kb

# --- without a policy: the shipped 32 for everyone ---
base_rand=$(measure fio_job randread); base_seq=$(measure fio_job read)
echo "METRIC no-policy randread flushes/avg $base_rand, read $base_seq"
expect_range "no policy, random reads: requests per flush" "$(avg "$base_rand")" 16 32

# --- application-hinted plugging ---
sie-run $HINT --const BLK_MAX_REQUEST_COUNT --consts $C > $W/hint.out 2> $W/hint.err &
PID=$!
if wait_for $W/hint.out "active on" 600 $PID; then ok "blk_plug_hint active"; else
  bad "blk_plug_hint did not become active"; cat $W/hint.out $W/hint.err; fi
hinted=$(measure sie hint run 1 -- $FIO --rw=randread)
plain=$(measure fio_job randread)
echo "METRIC hint randread(hint random) flushes/avg $hinted, randread(no hint) $plain"
expect_range "hinted random reader: requests per flush" "$(avg "$hinted")" 1 1
expect_range "unhinted random reader: requests per flush" "$(avg "$plain")" 16 32
kill -INT $PID; wait $PID || bad "blk_plug_hint exit"
cat $W/hint.out
after=$(measure fio_job randread)
expect_range "after blk_plug_hint: requests per flush" "$(avg "$after")" 16 32

# --- adaptive plugging: the observer measures merge failures per task ---
sie-run $ADAPT --const BLK_MAX_REQUEST_COUNT --consts $C > $W/adapt.out 2> $W/adapt.err &
PID=$!
if wait_for $W/adapt.out "active on" 600 $PID; then ok "blk_plug_adaptive active"; else
  bad "blk_plug_adaptive did not become active"; cat $W/adapt.out $W/adapt.err; fi
rand=$(measure fio_job randread); seq=$(measure fio_job read)
echo "METRIC adaptive randread flushes/avg $rand, read $seq"
expect_range "adaptive, random reads (merges fail): requests per flush" "$(avg "$rand")" 1 2
[ "$(avg "$seq")" = "$(avg "$base_seq")" ] &&
  ok "adaptive, sequential reads (merges succeed): $(avg "$seq") per flush, as without the policy" ||
  bad "adaptive, sequential reads: $(avg "$seq") per flush, $(avg "$base_seq") without the policy"
kill -INT $PID; wait $PID || bad "blk_plug_adaptive exit"
cat $W/adapt.out
grep -qE "low_plug: [1-9]" $W/adapt.out && ok "adaptive: low plugs counted" || bad "low_plug counter"
n=$(grep -c -E "blk_add_rq_to_plug|blk_start_plug_nr_ios|blk_attempt_plug_merge" /sys/kernel/debug/kprobes/list)
[ "$n" = 0 ] && ok "no kprobe left" || bad "$n kprobes left"
rmmod null_blk

echo "== $FAILS failure(s)"
[ $FAILS -eq 0 ]
