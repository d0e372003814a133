#!/bin/sh
# Guest test of `sie set` on a constant of an in-tree module, as `sie synth` wrote it from the
# guest kernel's source (synth/specs/sch_fq.yaml): FQ_DEFAULT_LIMIT, the packet limit fq_init()
# gives a new fq qdisc, mapped onto Debian's sch_fq.ko. The value the kernel uses is read back
# from a qdisc created on lo (tc qdisc show: "limit 10000p"). Then the module goes away under the
# constant: `sie status` must say so, a new value is refused, `sie unload` cleans up.
# $1: the synthesized constants.
C=${1:?usage: vm_module_test.sh CONSTS_DIR}
FAILS=0
ok() { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; FAILS=$((FAILS + 1)); }
expect_eq() { if [ "$2" = "$3" ]; then ok "$1 = $2"; else bad "$1: got '$2', want '$3'"; fi; }
expect_in() { case "$2" in *"$3"*) ok "$1 has '$3'" ;; *) bad "$1 lacks '$3': $2" ;; esac; }
# The limit a new fq qdisc gets (fq_init), the qdisc removed again so the module can go.
limit() {
  tc qdisc add dev lo root fq || return
  tc qdisc show dev lo | sed -n 's/.* limit \([0-9]*\)p.*/\1/p'
  tc qdisc del dev lo root
}
state() { sie status --json | sed -n 's/^ *"state": "\(.*\)",*$/\1/p' | head -1; }
gone_kprobes() { grep -c GONE /sys/kernel/debug/kprobes/list; }
loaded() { [ -d /sys/module/sch_fq ] && echo yes || echo no; }

rmmod sch_fq 2>/dev/null
sie consts --consts "$C" || bad "sie consts"

# Without the module: refused with the way out, and nothing loaded or left behind.
if out=$(sie set FQ_DEFAULT_LIMIT 777 --consts "$C" 2>&1); then bad "set without sch_fq accepted"
else echo "$out"; expect_in "refusal" "$out" "modprobe sch_fq"; fi
expect_eq "sie status after the refusal" "$(sie status)" "no constants loaded"
[ -z "$(ls /sys/fs/bpf/sie 2>/dev/null)" ] && ok "no pins" || bad "pins left: $(ls /sys/fs/bpf/sie)"
expect_eq "sch_fq loaded by sie" "$(loaded)" no

modprobe sch_fq || bad "modprobe sch_fq"
expect_eq "shipped limit of a new fq qdisc" "$(limit)" 10000
out=$(sie set FQ_DEFAULT_LIMIT 10000 --consts "$C" -v 2>&1) || bad "sie set 10000 (shipped): $out"
echo "$out"
expect_eq "limit with the shipped value set" "$(limit)" 10000
# 777 was never compiled (synth built 10000, 5000 and 20000).
sie set FQ_DEFAULT_LIMIT 777 --consts "$C" || bad "sie set 777 (update)"
expect_eq "limit of a new fq qdisc" "$(limit)" 777
sie status
expect_eq "status while sch_fq is loaded" "$(state)" loaded

# The module goes: the probes went with it.
rmmod sch_fq || bad "rmmod sch_fq"
out=$(sie status)
echo "$out"
expect_in "sie status" "$out" "module unloaded"
expect_in "sie status" "$out" "sie unload FQ_DEFAULT_LIMIT"
expect_eq "status --json state" "$(state)" "module unloaded"
if out=$(sie set FQ_DEFAULT_LIMIT 555 --consts "$C" 2>&1); then bad "set on an unloaded module accepted"
else echo "$out"; expect_in "refusal" "$out" "module sch_fq was unloaded"; fi
out=$(sie unload FQ_DEFAULT_LIMIT 2>&1) || bad "sie unload after rmmod: $out"
echo "$out"
expect_eq "status after unload" "$(sie status)" "no constants loaded"
expect_eq "GONE kprobes left" "$(gone_kprobes)" 0

# Unloaded and loaded again (BPF engine this time): the new copy runs without the probes.
modprobe sch_fq || bad "modprobe sch_fq (2)"
sie set FQ_DEFAULT_LIMIT 4321 --engine bpf --consts "$C" || bad "sie set 4321 --engine bpf"
expect_eq "limit (bpf engine)" "$(limit)" 4321
rmmod sch_fq && modprobe sch_fq || bad "reloading sch_fq"
expect_eq "limit after the reload (probes gone)" "$(limit)" 10000
expect_eq "status --json state after the reload" "$(state)" "module reloaded"
sie unload FQ_DEFAULT_LIMIT || bad "sie unload after the reload"
expect_eq "status after unload" "$(sie status)" "no constants loaded"
expect_eq "GONE kprobes left" "$(gone_kprobes)" 0
[ -z "$(ls /sys/fs/bpf/sie 2>/dev/null)" ] && ok "no pins left" || bad "pins left: $(ls /sys/fs/bpf/sie)"

rmmod sch_fq
echo "$FAILS failed"
[ $FAILS = 0 ]
