// SPDX-License-Identifier: GPL-2.0
/* Must not compile: SIE_TARGET_LOOP_BOUND is not one of the run's constants. */
#include <sie/policy.bpf.h>

SIE_POLICY(sie_target_loop_bound, ctx)
{
	return sie_default(ctx);
}
