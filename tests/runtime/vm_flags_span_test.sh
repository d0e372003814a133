#!/bin/sh
# Guest test of flags spans of `add` on the running vmlinux: TCP_METRICS_TIMEOUT_MIN as sie synth
# wrote it (synth/specs/tcp_metrics_timeout.yaml; time_after(jiffies, stamp + V * 60 * HZ) is
# `add rax, imm; js`). sie set checks the live bytes, loads the stub (sie_set_flags_op recomputes
# the add's flags and rax) and attaches every probe; loopback TCP connections then look up the
# metrics entry the first one left, so the probes run: every hit must apply, none fail.
# $1: the synthesized constants.
C=${1:?usage: vm_flags_span_test.sh CONSTS_DIR}
FAILS=0
ok() { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; FAILS=$((FAILS + 1)); }
probes() { grep -c -E 'tcp_get_metrics|tcp_peer_is_proven' /sys/kernel/debug/kprobes/list; }
counters() { sie status --json | python3 -c 'import json,sys
s=[x for c in json.load(sys.stdin) if c["name"] == "TCP_METRICS_TIMEOUT_MIN" for x in c["spans"]]
print(sum(x["hits"] for x in s), sum(x["applied"] for x in s), sum(x["failed"] for x in s))'; }
connect() {
  python3 - <<'PY'
import socket
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(8)
for _ in range(6):
    c = socket.create_connection(srv.getsockname()); a, _ = srv.accept()
    c.sendall(b"x" * 1000); a.recv(1000); a.sendall(b"y"); c.recv(1)
    c.close(); a.close()
PY
}

ip link set lo up 2>/dev/null
sie consts --consts "$C" || bad "sie consts"
grep -q '"flags_op": "add"' "$C"/*/const.json && ok "const.json has flags spans of add" ||
  bad "no flags span of add in $C"
out=$(sie set TCP_METRICS_TIMEOUT_MIN 1 --consts "$C" -v 2>&1) || bad "sie set 1: $out"
echo "$out"
[ "$(probes)" -ge 1 ] && ok "probes attached ($(probes))" || bad "no probe attached"
connect
set -- $(counters)
echo "hits $1 applied $2 failed $3"
[ "${1:-0}" -ge 1 ] && ok "flags spans hit ($1)" || bad "no hit: $(sie status)"
[ "${2:-0}" = "${1:-x}" ] && ok "every hit applied ($2)" || bad "applied $2 of $1 hits"
[ "${3:-1}" = 0 ] && ok "no failed apply" || bad "$3 applies failed (sie_set_flags_op/sie_set_reg)"
sie unload TCP_METRICS_TIMEOUT_MIN || bad "sie unload"
[ "$(probes)" = 0 ] && ok "no probe left" || bad "probes left: $(probes)"
connect && ok "TCP still works after the unload" || bad "TCP after the unload"
echo "$FAILS failed"
[ $FAILS = 0 ]
