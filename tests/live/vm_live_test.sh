#!/bin/sh
# Guest test: one synthesized kernel constant set live to a value never compiled (neither the
# spec's three values nor the formula-check values), its effect observed from user space through
# the interface that exposes it, then restored by `sie unload`. The shipped behaviour is observed
# first, so each expectation is derived from the kernel's own rule for the constant, not assumed.
# $1: the constant; $2: the fixture's output root (one `sie synth --out` directory per spec).
NAME=${1:?usage: vm_live_test.sh NAME CONSTS_ROOT}
ROOT=${2:?usage: vm_live_test.sh NAME CONSTS_ROOT}
PY=/usr/bin/python3
FAILS=0
ok() { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; FAILS=$((FAILS + 1)); }
expect_eq() { if [ "$2" = "$3" ]; then ok "$1 = $2"; else bad "$1: got '$2', want '$3'"; fi; }
ip link set lo up

# Deepest chain of epoll instances, each watching the previous one (EP_MAX_NESTS bounds it).
epoll_depth() {
  $PY -c '
import select
eps = [select.epoll()]
while len(eps) < 32:
    e = select.epoll()
    try:
        e.register(eps[-1].fileno(), select.EPOLLIN)
    except OSError:
        break
    eps.append(e)
print(len(eps))'
}
# Pages of a new pipe of an unprivileged user over pipe-user-pages-soft (PIPE_MIN_DEF_BUFFERS).
pipe_pages() {
  old=$(cat /proc/sys/fs/pipe-user-pages-soft)
  echo 1 > /proc/sys/fs/pipe-user-pages-soft
  setpriv --reuid=65534 --regid=65534 --clear-groups $PY -c '
import fcntl, os
r, w = os.pipe()
print(fcntl.fcntl(w, fcntl.F_GETPIPE_SZ) // os.sysconf("SC_PAGE_SIZE"))'
  echo "$old" > /proc/sys/fs/pipe-user-pages-soft
}
# First pid handed out after the pid counter wraps (it restarts at RESERVED_PIDS).
wrapped_pid() {
  $PY -c '
import os
top = int(open("/proc/sys/kernel/pid_max").read())
open("/proc/sys/kernel/ns_last_pid", "w").write(str(top - 3))
pids = []
for _ in range(4):
    p = os.fork()
    if p == 0:
        os._exit(0)
    os.waitpid(p, 0)
    pids.append(p)
print(min(pids))'
}
# Most UDP GSO segments one send may carry (gso_size << UDP_MAX_SEGMENTS_SHIFT bytes).
udp_max_segments() {
  $PY -c '
import socket
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); rx.bind(("127.0.0.1", 0))
tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
tx.setsockopt(socket.IPPROTO_UDP, 103, 100)  # UDP_SEGMENT: 100-byte segments
best = 0
for n in (2, 4, 8, 16, 32, 64, 128, 256, 512):
    try:
        tx.sendto(b"x" * (100 * n), rx.getsockname()); best = n
    except OSError:
        pass
print(best)'
}
# Send buffer of a fresh loopback TCP connection (tcp_sndbuf_expand: factor * cwnd * per-mss).
tcp_sndbuf() {
  $PY -c '
import socket
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
c = socket.create_connection(srv.getsockname()); a, _ = srv.accept()
print(c.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))'
}
# A field of a new qdisc ($1) with its defaults, as `tc` reports it ($2).
qdisc_field() {
  tc qdisc replace dev lo root "$1" || { echo "tc failed"; return; }
  tc qdisc show dev lo | tr ' ' '\n' | grep -A1 -x "$2" | tail -1
  tc qdisc del dev lo root
}

# NAME: the value set live, the observation, and the effect expected from the shipped one ($S).
case "$NAME" in
  EP_MAX_NESTS) LIVE=2; obs() { epoll_depth; }; want() { echo $(($1 - 4 + LIVE)); } ;;
  PIPE_MIN_DEF_BUFFERS) LIVE=5; obs() { pipe_pages; }; want() { echo $LIVE; } ;;
  RESERVED_PIDS) LIVE=500; obs() { wrapped_pid; }; want() { echo $LIVE; } ;;
  UDP_MAX_SEGMENTS_SHIFT) LIVE=4; obs() { udp_max_segments; }; want() { echo $((1 << LIVE)); } ;;
  TCP_SNDBUF_EXPAND_FACTOR) LIVE=1; obs() { tcp_sndbuf; }; want() { echo $(($1 / 2)); } ;;
  FQ_CODEL_FLOWS) LIVE=100; obs() { qdisc_field fq_codel flows; }; want() { echo $LIVE; } ;;
  FQ_CODEL_DROP_BATCH) LIVE=10; obs() { qdisc_field fq_codel drop_batch; }; want() { echo $LIVE; } ;;
  # In modules (sch_fq.ko, sch_cake.ko): loaded first, `sie set` refuses otherwise.
  FQ_DEFAULT_LIMIT) MOD=sch_fq LIVE=777; obs() { qdisc_field fq limit; }; want() { echo ${LIVE}p; } ;;
  FQ_FLOW_PLIMIT) MOD=sch_fq LIVE=42; obs() { qdisc_field fq flow_limit; }; want() { echo ${LIVE}p; } ;;
  CAKE_INTERVAL_US) MOD=sch_cake LIVE=30000; obs() { qdisc_field cake rtt; }
    want() { echo $((LIVE / 1000))ms; } ;;
  *) echo "FAIL - vm_live_test.sh knows no observation of $NAME"; exit 1 ;;
esac

[ -n "${MOD:-}" ] && { modprobe "$MOD" || bad "modprobe $MOD"; }
D=$(grep -l "\"$NAME\"" "$ROOT"/*/index.json | head -1)
[ -n "$D" ] || { echo "FAIL - $NAME is not in any index.json under $ROOT"; exit 1; }
D=$(dirname "$D")
S=$(obs)
echo "shipped $NAME: observed $S"
[ -n "$S" ] && [ "$S" != 0 ] || bad "no shipped observation of $NAME"
out=$(sie set "$NAME" "$LIVE" --consts "$D" 2>&1) || bad "sie set $NAME $LIVE: $out"
echo "$out"
sie status | grep -A3 "$NAME" || bad "$NAME not in sie status"
expect_eq "$NAME=$LIVE observed" "$(obs)" "$(want "$S")"
sie unload "$NAME" || bad "sie unload $NAME"
expect_eq "$NAME restored, observed" "$(obs)" "$S"
sie status --json | grep -q "\"$NAME\"" && bad "$NAME still listed after unload"
echo "$FAILS failed"
[ $FAILS = 0 ]
