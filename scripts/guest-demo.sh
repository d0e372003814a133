#!/bin/sh
# Runs inside the guest (see scripts/demo): the chain sie stands on, shown step by step.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
echo "== guest kernel: $(uname -r)"
sie info
echo "== smoke chain: kprobe at function+offset, kfunc register write, optimized probes"
"$here/build/bin/sie_vm_smoke_test" --gtest_brief=1
