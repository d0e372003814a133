// SPDX-License-Identifier: GPL-2.0
/* Must not compile: a plain C error, shown as clang reports it. */
#include <sie/policy.bpf.h>

SIE_POLICY(sie_target_call_arg, ctx)
{
	return sie_value(ctx, undefined_variable);
}
