// SPDX-License-Identifier: GPL-2.0
/* Test policy for SIE_TARGET_CALL_ARG: the strong definition of the decision hook replaces the
 * stub's __weak default when linked (runtime_unit_test.cc, StrongPolicyReplacesWeakDefault). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

__noinline __s64 sie_decide_sie_target_call_arg(struct pt_regs *ctx, __u32 span, __s64 value)
{
	return value * 2 + 1;
}
