#!/bin/sh
# The guest must have every kernel feature sie relies on; a missing one fails the vm suite.
fail=0
need() { if eval "$2"; then echo "ok: $1"; else echo "MISSING: $1"; fail=1; fi; }
need "kprobes (debugfs kprobes/list)" '[ -r /sys/kernel/debug/kprobes/list ]'
need "optprobes enabled" '[ "$(cat /proc/sys/debug/kprobes-optimization)" = 1 ]'
need "vmlinux BTF" '[ -r /sys/kernel/btf/vmlinux ]'
need "module BTF (9p module)" '[ -r /sys/kernel/btf/9p ]'
need "bpffs mounted" 'grep -q " /sys/fs/bpf bpf " /proc/mounts'
need "tracefs mounted" 'grep -q " /sys/kernel/tracing tracefs " /proc/mounts'
need "clang runs in the guest" 'clang --version >/dev/null'
need "bpftool sees the kernel" 'bpftool prog list >/dev/null'
need "modules of the guest kernel are loadable" 'modprobe veth && modprobe sch_netem'
exit $fail
