#!/bin/sh
# Guest test of application hints (label vm; runs inside the QEMU guest through `sie vm`).
#   $1: sie_target constants with precompiled stubs and the hints policy in their policy cache
#   $2: sie_hint_example (sdk/examples/hint_app.c, linked with libsie-hint)
# tests/policy/bpf/hints.bpf.c gives SIE_TARGET_CALL_ARG the addend 1000 * hint of the task
# that runs sie_target's code. Checks: without a policy every hint command is refused with a
# hint; with it, a task without a hint gets the shipped value; `sie hint run` hints a command's
# process (and clears it at exit); `sie hint set/get/clear --pid` and `--cgroup`; a thread
# hint set through the C library wins over its process's; `sie hint list`; bad input refused.
C=${1:?usage: vm_hints_test.sh CONSTS_DIR HINT_APP}
APP=${2:?usage: vm_hints_test.sh CONSTS_DIR HINT_APP}
P=$(dirname "$0")/bpf/hints.bpf.c
. "$(dirname "$0")/../runtime/lib.sh"
W=/tmp/sie-hints && mkdir -p $W
# Written by this shell itself (sie_target computes at the write), so its pid's hint applies.
call_arg() { echo "$1" > $T/call_arg; R=$(cat $T/call_arg); }
expect_fail() { # name pattern cmd...: fails, says pattern, with a hint
  name=$1 pat=$2; shift 2
  out=$("$@" 2>&1); rc=$?
  if [ $rc -ne 0 ] && echo "$out" | grep -qF -- "$pat" && echo "$out" | grep -q "hint:"; then
    ok "$name: $(echo "$out" | head -1)"; else bad "$name: rc=$rc out=$out"; fi
}

echo "== kernel $(uname -r), consts $C"
insmod "$(dirname "$(command -v sie)")/../kmod/sie_target.ko" 2>/dev/null
expect_fail "hint without a policy" "no running policy reads hints" sie hint set 2 --pid $$
expect_fail "hint run without a policy" "no running policy reads hints" sie hint run 2 -- true

sie-run $P --const SIE_TARGET_CALL_ARG --consts $C --no-optimize > $W/run.out 2> $W/run.err &
PID=$!
if wait_for $W/run.out "active on" 600 $PID; then ok "sie-run active"; else
  bad "sie-run did not become active"; cat $W/run.out $W/run.err; exit 1; fi

call_arg 20; expect_eq "call_arg(20), no hint: shipped 0x1234" "$R" 4680
# A command under a process hint, cleared when it exits.
expect_eq "sie hint run 3 -- call_arg(20)" "$(sie hint run 3 -- sh -c "echo 20 > $T/call_arg; cat $T/call_arg")" 3020
call_arg 20; expect_eq "call_arg(20) after the hinted command" "$R" 4680
expect_eq "sie hint run: the command's exit status" "$(sie hint run 3 -- sh -c 'exit 7'; echo $?)" 7
# This shell's process.
sie hint set 5 --pid $$ || bad "sie hint set --pid"
expect_eq "sie hint get --pid" "$(sie hint get --pid $$)" 5
call_arg 20; expect_eq "call_arg(20), process hint 5" "$R" 5020
sie hint list > $W/list.out
grep -q "^process  *$$  *5$" $W/list.out && ok "sie hint list: $(cat $W/list.out)" || bad "list: $(cat $W/list.out)"
# A thread hint through the C library wins over the process hint of its process.
expect_eq "libsie-hint thread hint 7 over process hint 5" "$($APP 7 $T/call_arg 20)" 7020
sie hint clear --pid $$ || bad "sie hint clear"
call_arg 20; expect_eq "call_arg(20) after clear" "$R" 4680
sie hint get --pid $$ > /dev/null; expect_eq "sie hint get after clear: exit" $? 1
# A cgroup's tasks.
mountpoint -q /sys/fs/cgroup || mount -t cgroup2 none /sys/fs/cgroup
mkdir -p /sys/fs/cgroup/sie-hint
sie hint set 9 --cgroup /sys/fs/cgroup/sie-hint || bad "sie hint set --cgroup"
expect_eq "call_arg(20) in the hinted cgroup" \
  "$(sh -c "echo \$\$ > /sys/fs/cgroup/sie-hint/cgroup.procs; echo 20 > $T/call_arg; cat $T/call_arg")" 9020
call_arg 20; expect_eq "call_arg(20) outside it" "$R" 4680
sie hint clear --cgroup /sys/fs/cgroup/sie-hint
# Bad input.
expect_fail "two targets" "exactly one of --pid, --tid or --cgroup" sie hint set 1 --pid 1 --tid 1
expect_fail "not a number" "hint 'fast' is not a number" sie hint set fast --pid 1
expect_fail "bad pid" "'abc' is not a process or thread id" sie hint set 1 --pid abc
expect_fail "not a cgroup" "cannot read the cgroup id" sie hint set 1 --cgroup /nonexistent

kill -INT $PID
wait $PID
expect_eq "sie-run exit after SIGINT" $? 0
[ -e /sys/fs/bpf/sie_hints ] && bad "the hint map is still pinned" || ok "the hint map is gone with the policy"
call_arg 20; expect_eq "call_arg(20) after the policy stopped" "$R" 4680
echo "== $FAILS failure(s)"
[ $FAILS -eq 0 ]
