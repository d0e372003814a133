// SPDX-License-Identifier: GPL-2.0
/*
 * Test policy on the two constants sie_target's "pair" path uses around a sleep: a call that
 * runs while the policy starts or stops must see both decided values (111, 222) or both shipped
 * ones (11, 22), never one of each (sie-run --mode 2).
 */
#include <sie/policy.bpf.h>

SIE_POLICY(sie_target_pair_a, ctx)
{
	return sie_value(ctx, 111);
}

SIE_POLICY(sie_target_pair_b, ctx)
{
	return sie_value(ctx, 222);
}
