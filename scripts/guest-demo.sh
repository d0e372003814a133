#!/bin/sh
# Runs inside the guest (see scripts/demo): a constant changed live and restored, then a policy
# that decides per TCP flow. $1: the folder scripts/demo synthesized into.
set -eu
demo=$1
here=$(cd "$(dirname "$0")/.." && pwd)
step() { printf '\n== %s\n' "$*"; }
div() { echo "$1" > /sys/kernel/debug/sie_target/div; echo "  div($1) = $(cat /sys/kernel/debug/sie_target/div)"; }

step "guest kernel $(uname -r)"
sie info

step "sie_target divides by SIE_TARGET_DIVISOR, compiled in as 10"
insmod "$here/build/kmod/sie_target.ko"
sie consts --consts "$demo/sie_target"
div 100
div 12345

step "sie set SIE_TARGET_DIVISOR 7: the running module now divides by 7 (never compiled)"
sie set SIE_TARGET_DIVISOR 7 --consts "$demo/sie_target"
div 100
div 12345
sie status

step "sie set SIE_TARGET_DIVISOR 3: a second set only updates a map"
sie set SIE_TARGET_DIVISOR 3 --consts "$demo/sie_target"
div 100

step "sie unload: back to the compiled 10, nothing left attached"
sie unload SIE_TARGET_DIVISOR
div 100
grep -c sie_target /sys/kernel/debug/kprobes/list || true
sie log

step "a constant of the running vmlinux: SHRINK_BATCH (mm/shrinker.c, compiled in as 128)"
# sie_shrink_observer is a shrinker with no batch of its own: do_shrink_slab() scans it in
# batches of SHRINK_BATCH, and it records the largest one it is asked for.
obs=/sys/kernel/debug/sie_shrink_observer
batch() { echo 100000 > $obs/objects; echo 2 > /proc/sys/vm/drop_caches; echo "  the kernel scans a shrinker $(cat $obs/max_scan) objects at a time"; }
insmod "$here/build/kmod/sie_shrink_observer.ko"
batch
sie set SHRINK_BATCH 300 --consts "$demo/shrink"
batch
sie unload SHRINK_BATCH
batch
rmmod sie_shrink_observer

step "the RTT-aware CUBIC policy on the real kernel's HyStart constants (sie-run)"
# A 150 ms, 5 mbit path (netem, the testbed of tests/policy/vm_cubic_test.sh). HyStart (shipped:
# HYSTART_DELAY_SHIFT 3, HYSTART_DELAY_MAX 16 ms) ends slow start after 16 ms of queueing; the
# policy waits for delay_min/2 (75 ms) on long-RTT flows, which this queue (300 packets) does not
# reach: they leave slow start later, when netem drops, with a higher ssthresh.
modprobe veth && modprobe sch_netem
ip netns add snd && ip netns add rcv
ip link add s0 type veth peer name r0
ip link set s0 netns snd && ip link set r0 netns rcv
ip -n snd addr add 10.0.0.1/24 dev s0 && ip -n rcv addr add 10.0.0.2/24 dev r0
ip -n snd link set s0 gso_max_segs 1 && ip -n snd link set s0 up && ip -n rcv link set r0 up
tc -n snd qdisc add dev s0 root netem delay 150ms rate 5mbit limit 300
ip netns exec snd sysctl -qw net.ipv4.tcp_no_metrics_save=1
ip netns exec rcv "$here/build/bin/tcp_bulk" recv 5001 &
rpid=$!
delay_exits() { ip netns exec snd awk '/^TcpExt:/ { if (!h) { split($0, k); h = 1 } else {
  split($0, v); for (i in k) if (k[i] == "TCPHystartDelayDetect") print v[i] } }' /proc/net/netstat; }
flow() { # label: one 1.5 MB transfer, and where it left slow start
  d0=$(delay_exits)
  # (no guest-side timeout: under --icount sleep=off the clock jumps while the guest waits for
  # the host; sie vm --timeout bounds the run)
  r=$(ip netns exec snd "$here/build/bin/tcp_bulk" send 10.0.0.2 5001 1500000)
  d=$(($(delay_exits) - d0))
  get() { echo "$r" | sed -n "s/.*\"$1\": \([0-9.-]*\).*/\1/p"; }
  printf '  %-20s slow start ended after %6s ms, ssthresh %3s packets, by HyStart delay: %s\n' \
    "$1" "$(get exit_ms)" "$(get exit_ssthresh)" "$([ $d -gt 0 ] && echo yes || echo no)"
}
flow "shipped constants:"
log=/tmp/sie-run.log
sie-run "$here/policies/tcp_cubic_rtt/tcp_cubic_rtt.bpf.c" \
  --const HYSTART_DELAY_SHIFT,HYSTART_DELAY_MAX --consts "$demo/cubic" -v > $log 2>&1 &
spid=$!
i=0
until grep -q "active on" $log; do
  sleep 1; i=$((i + 1))
  if [ $i -gt 240 ] || ! kill -0 $spid 2>/dev/null; then cat $log; echo "sie-run did not start"; exit 1; fi
done
grep -e "probe(s)" -e "active on" -e "cache" -e "timings" $log | sed 's/^/  /'
flow "with the policy:"
kill -INT $spid
wait $spid
grep -v -e "probe(s)" -e "active on" -e "cache" -e "timings" -e "^policy: .*: sk " $log | sed 's/^/  /'
echo "  ($(grep -c "^policy: .*: sk " $log) policy log lines: RTT samples above 2 x delay_min)"

step "after sie-run: HyStart constants back to their shipped values, nothing attached"
echo "  kprobes on cubictcp: $(grep -c -e cubictcp /sys/kernel/debug/kprobes/list || true)"
flow "restored:"
kill $rpid 2>/dev/null || true
echo "sie demo: done"
