// SPDX-License-Identifier: GPL-2.0
/*
 * Test policy for application hints (sdk/include/sie/hint.h): SIE_TARGET_CALL_ARG's addend is
 * 1000 * the hint of the task that runs the code (thread, else process, else cgroup), the
 * shipped 0x1234 without one. The guest test gives hints with `sie hint` and libsie-hint
 * (sie_hint_example) and reads sie_target's results.
 */
#include <sie/policy.bpf.h>

SIE_POLICY(sie_target_call_arg, ctx)
{
	__u64 h = sie_hint(0);

	if (!h)
		return sie_default(ctx);
	return sie_value(ctx, h * 1000);
}
