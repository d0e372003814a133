// SPDX-License-Identifier: GPL-2.0
/* Must not compile: `amount` is not live at SIE_TARGET_CALL_ARG's span (only x is). */
#include <sie/policy.bpf.h>

SIE_POLICY(sie_target_call_arg, ctx)
{
	__u32 a = sie_arg(ctx, amount);

	return sie_value(ctx, a + 1);
}
