# Shared by the guest tests (sourced, POSIX sh; tests/policy's too): result lines, the sie_target
# paths and a snapshot of everything a sie command may change in the kernel.
T=/sys/kernel/debug/sie_target
FAILS=0
ok() { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; FAILS=$((FAILS + 1)); }
expect_eq() { if [ "$2" = "$3" ]; then ok "$1 = $2"; else bad "$1: got '$2', want '$3'"; fi; }
expect_in() { case "$2" in *"$3"*) ok "$1 has '$3'" ;; *) bad "$1 lacks '$3': $2" ;; esac; }
# Builtins only (no cat): a snapshot runs this three times, and every fork is slow under TCG.
run() { echo "$2" > "$T/$1" && read -r _r < "$T/$1" && echo "$_r"; }
wait_for() { # file pattern seconds [pid]: the file holds the pattern within that time (and
  _i=0         # before process pid exits: a command that failed is not waited for)
  while [ $_i -lt $(($3 * 10)) ]; do
    grep -q "$2" "$1" && return 0
    if [ -n "$4" ] && ! kill -0 "$4" 2>/dev/null; then grep -q "$2" "$1"; return; fi
    sleep 0.1; _i=$((_i + 1))
  done
  return 1
}

# Everything a command may change, ids left out (a reload gets new ones). Few processes: the
# refusal and fault tests take one per row or step. BPF objects are listed in id order, which a
# refused or undone command leaves as it was.
snapshot() {
  echo "== kprobes"; sort /sys/kernel/debug/kprobes/list
  { echo "== progs"; bpftool prog show; echo "== maps"; bpftool map show
    echo "== links"; bpftool link show; } |
    sed -n -e '/^== /p' -e 's/^[0-9]*: \([a-z_]*\) *name \([^ ]*\).*/\1 \2/p' \
      -e 's/^[0-9]*: \([a-z_]*\).*/\1/p'
  echo "== pins"; find /sys/fs/bpf/sie 2>/dev/null | sort
  echo "== state"
  for _f in /run/sie/*.json; do
    case $_f in *journal* | '/run/sie/*.json') ;; *) echo "${_f##*/}" ;; esac
  done
  echo "== modules"; awk '/^sie_/ {print $1, $3}' /proc/modules | sort
  echo "== native"; sed 's/ hits=[0-9]*//' /sys/kernel/debug/sie_native/control 2>/dev/null
  echo "== consistency"
  for _f in /sys/kernel/debug/sie_consistency/*; do [ -e "$_f" ] && echo "${_f##*/}"; done
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
