# Shared by the guest tests in this folder (sourced, POSIX sh): result lines, the sie_target
# paths and a snapshot of everything a sie command may change in the kernel.
T=/sys/kernel/debug/sie_target
FAILS=0
ok() { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; FAILS=$((FAILS + 1)); }
expect_eq() { if [ "$2" = "$3" ]; then ok "$1 = $2"; else bad "$1: got '$2', want '$3'"; fi; }
expect_in() { case "$2" in *"$3"*) ok "$1 has '$3'" ;; *) bad "$1 lacks '$3': $2" ;; esac; }
run() { echo "$2" > "$T/$1" && cat "$T/$1"; }

# Everything a command may change, ids left out (a reload gets new ones).
snapshot() {
  echo "== kprobes"; sort /sys/kernel/debug/kprobes/list
  echo "== progs"; bpftool prog show | sed -n 's/^[0-9]*: \([a-z_]*\) *name \([^ ]*\).*/\1 \2/p' | sort
  echo "== maps"; bpftool map show | sed -n 's/^[0-9]*: \([a-z_]*\) *name \([^ ]*\).*/\1 \2/p' | sort
  echo "== links"; bpftool link show | sed -n 's/^[0-9]*: \([a-z_]*\).*/\1/p' | sort
  echo "== pins"; find /sys/fs/bpf/sie 2>/dev/null | sort
  echo "== state"; ls /run/sie 2>/dev/null | grep '\.json$' | grep -v journal
  echo "== modules"; lsmod | awk '/^sie_/ {print $1, $3}' | sort
  echo "== native"; sed 's/ hits=[0-9]*//' /sys/kernel/debug/sie_native/control 2>/dev/null
  echo "== consistency"; ls /sys/kernel/debug/sie_consistency 2>/dev/null
  echo "== values"; run call_arg 100; run saved 9; run fan 1
}

# Compares a snapshot with `base`; on a difference, says so under `label` and shows the diff.
same_as() { # label base
  now=$(snapshot)
  if [ "$now" = "$2" ]; then return 0; fi
  bad "$1: the kernel changed:"
  echo "$2" > /tmp/snap.base; echo "$now" > /tmp/snap.now
  diff /tmp/snap.base /tmp/snap.now
  return 1
}
