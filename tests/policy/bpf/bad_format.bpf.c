// SPDX-License-Identifier: GPL-2.0
/* Must not compile (-Werror): sie_log's format does not match its argument. */
#include <sie/policy.bpf.h>

SIE_POLICY(sie_target_call_arg, ctx)
{
	sie_log("x is %s", sie_arg(ctx, x));
	return sie_default(ctx);
}
