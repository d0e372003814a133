#!/bin/sh
# Guest test of `sie set` on a constant of the running vmlinux, as `sie synth` wrote it from the
# guest kernel's source (synth/specs/shrink_batch.yaml): SHRINK_BATCH, the batch do_shrink_slab()
# scans a shrinker with when it sets none. kmod/sie_shrink_observer is such a shrinker and
# records the largest nr_to_scan it is asked for, so the value the kernel uses is observed, not
# assumed. $1: the synthesized constants.
C=${1:?usage: vm_vmlinux_test.sh CONSTS_DIR}
O=/sys/kernel/debug/sie_shrink_observer
FAILS=0
ok() { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; FAILS=$((FAILS + 1)); }
expect_eq() { if [ "$2" = "$3" ]; then ok "$1 = $2"; else bad "$1: got '$2', want '$3'"; fi; }
# The batch the kernel scans the observer with: fill it, drop the slab caches, read the maximum.
batch() { echo 100000 > $O/objects && echo 2 > /proc/sys/vm/drop_caches && cat $O/max_scan; }
probes() { grep -c do_shrink_slab /sys/kernel/debug/kprobes/list; }

insmod "$(dirname "$(command -v sie)")/../kmod/sie_shrink_observer.ko" || { echo "FAIL - insmod"; exit 1; }
sie consts --consts "$C" || bad "sie consts"
expect_eq "shipped SHRINK_BATCH seen by a shrinker" "$(batch)" 128

# 300 was never compiled (synth built 128, 64 and 256).
out=$(sie set SHRINK_BATCH 300 --consts "$C" -v 2>&1) || bad "sie set SHRINK_BATCH 300: $out"
echo "$out"
case "$out" in *"stub compiled"*) bad "the guest compiled the stub (synth's object unused)" ;; esac
expect_eq "SHRINK_BATCH=300 seen by a shrinker" "$(batch)" 300
sie status
sie set SHRINK_BATCH 1000 --consts "$C" || bad "sie set SHRINK_BATCH 1000 (update)"
expect_eq "SHRINK_BATCH=1000 seen by a shrinker" "$(batch)" 1000
if out=$(sie set SHRINK_BATCH 5000 --consts "$C" 2>&1); then bad "5000 (outside [1, 4096]) accepted"
else echo "$out"; ok "out-of-range 5000 refused"; fi
expect_eq "value kept after the refusal" "$(batch)" 1000
sie unload SHRINK_BATCH || bad "sie unload"
expect_eq "restored SHRINK_BATCH seen by a shrinker" "$(batch)" 128
expect_eq "kprobes left in do_shrink_slab" "$(probes)" 0

# The BPF engine too (sie set picks the native one for a reg span of V in mode 0).
sie set SHRINK_BATCH 64 --engine bpf --consts "$C" || bad "sie set --engine bpf"
expect_eq "SHRINK_BATCH=64 (bpf engine) seen by a shrinker" "$(batch)" 64
sie unload SHRINK_BATCH || bad "sie unload (bpf)"
expect_eq "restored after the bpf engine" "$(batch)" 128
expect_eq "kprobes left in do_shrink_slab" "$(probes)" 0
[ -z "$(ls /sys/fs/bpf/sie 2>/dev/null)" ] && ok "no pins left" || bad "pins left: $(ls /sys/fs/bpf/sie)"

# `sie apply`: the desired state in a file, changed only where it differs, all or nothing.
A=/tmp/sie-apply && mkdir -p $A
engine() { # the loaded engine (a bpf state file has no "engine")
  [ -f /run/sie/SHRINK_BATCH.json ] || return
  grep -q '"engine": "native"' /run/sie/SHRINK_BATCH.json && echo native || echo bpf; }
want() { printf 'consts: %s\nconstants:\n  shrink_batch: %s\n' "$C" "$1" > $A/10-shrink.yaml; }
want 200
out=$(sie apply $A --json --detailed-exitcode --reason "apply test"); rc=$?
expect_eq "apply exit status (changed)" $rc 2
case "$out" in *'"op": "load"'*) ok "apply planned a load" ;; *) bad "apply plan: $out" ;; esac
expect_eq "SHRINK_BATCH=200 (apply) seen by a shrinker" "$(batch)" 200
out=$(sie apply $A --detailed-exitcode); rc=$?
expect_eq "apply again: exit status (nothing to change)" $rc 0
case "$out" in *"nothing to change"*) ok "apply is idempotent" ;; *) bad "apply again: $out" ;; esac
want 500
sie apply $A --dry-run | grep -q "update SHRINK_BATCH value 200 -> 500" && ok "dry run shows the update" || bad "dry run"
expect_eq "dry run changed nothing" "$(batch)" 200
sie apply $A >/dev/null || bad "apply update"
expect_eq "SHRINK_BATCH=500 (apply update) seen by a shrinker" "$(batch)" 500
want "{value: 500, engine: bpf}"
sie apply $A | grep -q "reload SHRINK_BATCH = 500 (engine native -> bpf)" && ok "engine change reloads" || bad "engine reload"
expect_eq "engine after reload" "$(engine)" bpf
want 9000
refused=$(sie apply $A 2>&1) && bad "9000 accepted" || ok "out of range refused: $(echo "$refused" | head -1)"
case "$refused" in *"10-shrink.yaml:3: value 9000 is outside the range"*) ok "refusal names the line" ;; *) bad "refusal: $refused" ;; esac
expect_eq "value kept after the refused apply" "$(batch)" 500
# Every kernel step of a reload (bpf 500 -> native 700) fails once in turn: each failure undoes
# the unload (500 and the bpf engine are back), until the whole reload fits.
want "{value: 700, engine: native}"
n=1; while [ $n -le 30 ]; do
  if out=$(SIE_FAIL_STEP=$n sie apply $A 2>&1); then break; fi
  case "$out" in *"injected fault"*"step(s) undone"*) ;; *) bad "step $n: $out" ;; esac
  [ "$(batch)" = 500 ] && [ "$(engine)" = bpf ] || bad "step $n failed and left $(batch) ($(engine)): $out"
  n=$((n + 1))
done
[ $n -gt 2 ] && ok "apply undone at each of $((n - 1)) failing kernel steps" || bad "no step failed ($n)"
expect_eq "SHRINK_BATCH=700 (native) after the steps" "$(batch)/$(engine)" 700/native
sie apply --restore --reason "apply test done" | grep -q "unload SHRINK_BATCH" && ok "restore unloads" || bad "restore"
expect_eq "restored SHRINK_BATCH (apply --restore)" "$(batch)" 128
expect_eq "kprobes left in do_shrink_slab" "$(probes)" 0
sie log --const SHRINK_BATCH --json | grep -q '"apply":"/tmp/sie-apply"' && ok "journal names the apply" || bad "journal: $(sie log --const SHRINK_BATCH | tail -3)"

rmmod sie_shrink_observer
echo "$FAILS failed"
[ $FAILS = 0 ]
