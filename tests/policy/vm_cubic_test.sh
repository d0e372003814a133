#!/bin/sh
# Guest test of policies/tcp_cubic_rtt (label vm). Two network namespaces joined by two veth
# pairs with netem: a long path (100 ms, 20 mbit) and a short one (2 ms, 20 mbit). Bulk CUBIC
# transfers on both, without and with the policy; compares TcpExtTCPHystartDelayDetect and the
# sender's ssthresh (= cwnd at the HyStart exit).
#   $1: HyStart constants with precompiled stubs   $2: tcp_bulk binary   $3: flows per case
C=${1:?usage: vm_cubic_test.sh CONSTS TCP_BULK [FLOWS]}
BULK=${2:?}
N=${3:-3}
BYTES=${BYTES:-4000000}
POLICY=$(cd "$(dirname "$0")/../.." && pwd)/policies/tcp_cubic_rtt/tcp_cubic_rtt.bpf.c
W=/tmp/sie-cubic && mkdir -p $W
FAILS=0
ok() { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; FAILS=$((FAILS + 1)); }

modprobe veth && modprobe sch_netem || { echo "FAIL - veth/sch_netem modules"; exit 1; }
ip netns add snd && ip netns add rcv
for p in 0 1; do
  ip link add s$p type veth peer name r$p
  ip link set s$p netns snd && ip link set r$p netns rcv
  ip -n snd addr add 10.0.$p.1/24 dev s$p && ip -n rcv addr add 10.0.$p.2/24 dev r$p
  ip -n snd link set s$p up && ip -n rcv link set r$p up
done
ip -n snd link set lo up && ip -n rcv link set lo up
# Data flows snd -> rcv: delay and the bottleneck on the sender's side. netem's limit counts the
# packets in its delay line too: BDP plus a short queue, so the shipped 16 ms threshold exits
# slow start by delay while the policy's delay_min/2 (50 ms) should hardly be reached.
tc -n snd qdisc add dev s0 root netem delay 100ms rate 20mbit limit 240
tc -n snd qdisc add dev s1 root netem delay 2ms rate 20mbit limit 64
ip netns exec snd sysctl -qw net.ipv4.tcp_no_metrics_save=1  # no ssthresh carried over
ip netns exec rcv $BULK recv 5001 &
RPID=$!
sleep 1

detects() { ip netns exec snd awk '/^TcpExt:/ { if (!h) { split($0, k); h = 1 } else {
  split($0, v); for (i in k) if (k[i] == "TCPHystartDelayDetect") print v[i] } }' /proc/net/netstat; }
flows() { # label addr
  d0=$(detects)
  i=0; : > $W/$1.json
  while [ $i -lt $N ]; do
    timeout 120 ip netns exec snd $BULK send $2 5001 $BYTES >> $W/$1.json || bad "$1 flow $i"
    i=$((i + 1))
  done
  d1=$(detects)
  ss=$(sed -n 's/.*"ssthresh": \([0-9]*\).*/\1/p' $W/$1.json | tr '\n' ' ')
  echo "$1: HystartDelayDetect +$((d1 - d0)) in $N flows; ssthresh per flow: $ss"
  echo "$1 $((d1 - d0)) $ss" >> $W/summary
  cat $W/$1.json
}

flows long_default 10.0.0.2
flows short_default 10.0.1.2

sie-run $POLICY --const HYSTART_DELAY_SHIFT,HYSTART_DELAY_MAX --consts $C --no-optimize -v \
  > $W/run.out 2> $W/run.err &
PID=$!
i=0
while ! grep -q "active on" $W/run.out; do
  sleep 1; i=$((i + 1))
  if [ $i -gt 900 ] || ! kill -0 $PID 2>/dev/null; then
    bad "sie-run did not start"; cat $W/run.out $W/run.err; exit 1; fi
done
grep timings $W/run.err
flows long_policy 10.0.0.2
flows short_policy 10.0.1.2
# Did the stubs apply the decisions? (hits / applied / rejected / failed per span)
sie status --json | python3 -c 'import json,sys
for c in json.load(sys.stdin):
    print("stub", c["name"], [(s["hits"], s["applied"], s["rejected"], s["failed"]) for s in c["spans"]])' |
  tee $W/stubs
for c in HYSTART_DELAY_SHIFT HYSTART_DELAY_MAX; do
  grep -q "stub $c \[([1-9][0-9]*, [1-9]" $W/stubs && ok "$c: decisions applied by the stub" ||
    bad "$c: nothing applied"
done
kill -INT $PID; wait $PID; rc=$?
cat $W/run.out
[ $rc = 0 ] && ok "sie-run stopped cleanly" || { bad "sie-run exit $rc"; cat $W/run.err; }
flows long_after 10.0.0.2

# Verdicts: the long path exits slow start later (higher ssthresh) or not by delay at all;
# the short path is unchanged; the policy's counters saw both kinds of flows.
avg() { awk -v k="$1" '$1 == k { s = 0; n = 0; for (i = 3; i <= NF; i++) { s += $i; n++ }
  print (n ? int(s / n) : 0) }' $W/summary; }
det() { awk -v k="$1" '$1 == k { print $2 }' $W/summary; }
echo "== summary"; cat $W/summary
ld=$(avg long_default); lp=$(avg long_policy)
# Under TCG the RTT samples jump by far more than either threshold at once (the guest's ACK
# clock is bursty), so the exit point is measured and reported, not asserted (see README).
if [ "$(det long_policy)" -lt "$(det long_default)" ] || [ "$lp" -gt "$ld" ]; then
  ok "long RTT: fewer delay exits ($(det long_default) -> $(det long_policy)) or later exit (ssthresh $ld -> $lp)"
else echo "WARN - long RTT exit unchanged here: detects $(det long_default) -> $(det long_policy), ssthresh $ld -> $lp"; fi
sd=$(avg short_default); sp=$(avg short_policy)
[ "$(det short_policy)" = "$(det short_default)" ] && ok "short RTT: delay exits unchanged ($(det short_default)), ssthresh $sd -> $sp" ||
  bad "short RTT changed: $(det short_default) -> $(det short_policy)"
grep -q "shift_1_long_rtt: [1-9]" $W/run.out && ok "policy counted long-RTT decisions" ||
  bad "no long-RTT decisions counted"
kill $RPID
echo "== $FAILS failure(s)"
[ $FAILS -eq 0 ]
