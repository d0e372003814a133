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

rmmod sie_shrink_observer
echo "$FAILS failed"
[ $FAILS = 0 ]
