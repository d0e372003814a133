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

step "the RTT-aware CUBIC policy on the real kernel's HyStart constants (sie-run, 20 s)"
modprobe veth && modprobe sch_netem
ip netns add snd && ip netns add rcv
ip link add s0 type veth peer name r0
ip link set s0 netns snd && ip link set r0 netns rcv
ip -n snd addr add 10.0.0.1/24 dev s0 && ip -n rcv addr add 10.0.0.2/24 dev r0
ip -n snd link set s0 up && ip -n rcv link set r0 up
tc -n snd qdisc add dev s0 root netem delay 100ms rate 20mbit limit 240
ip netns exec rcv "$here/build/bin/tcp_bulk" recv 5001 &
rpid=$!
log=/tmp/sie-run.log
sie-run "$here/policies/tcp_cubic_rtt/tcp_cubic_rtt.bpf.c" \
  --const HYSTART_DELAY_SHIFT,HYSTART_DELAY_MAX --consts "$demo/cubic" --duration 20 -v \
  > $log 2>&1 &
spid=$!
# The policy compiles in the guest first (clang under TCG); send once it is active.
i=0
until grep -q "active on" $log; do
  sleep 1; i=$((i + 1))
  if [ $i -gt 240 ] || ! kill -0 $spid 2>/dev/null; then cat $log; echo "sie-run did not start"; exit 1; fi
done
echo "  policy active after ${i} s; sending 2 MB over the 100 ms path"
timeout 60 ip netns exec snd "$here/build/bin/tcp_bulk" send 10.0.0.2 5001 2000000 || true
wait $spid
kill $rpid 2>/dev/null || true
cat $log
step "after sie-run: HyStart constants back to their shipped values, nothing attached"
grep -c -e cubictcp /sys/kernel/debug/kprobes/list || true
echo "sie demo: done"
