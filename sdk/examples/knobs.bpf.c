// SPDX-License-Identifier: GPL-2.0
/* The tutorial's decision with knobs instead of numbers in the code (sdk/README.md, "Knobs"). */
#include <sie/policy.bpf.h>

/* Start setting, fixed while the policy runs: sie-run ... --set large=500000 */
const volatile __u64 large = 1000000;

/* Live knobs, changed while it runs: sie knob large_addend 0x20000; sie knob enabled false */
SIE_KNOB(__u32, large_addend, 0x10000);
SIE_KNOB(bool, enabled, true);

SIE_POLICY(sie_target_call_arg, ctx)
{
	__u64 x = sie_arg(ctx, x);

	if (!enabled || x < large)
		return sie_default(ctx);
	sie_count("large_input");
	return sie_value(ctx, large_addend);
}
