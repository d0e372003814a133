// SPDX-License-Identifier: GPL-2.0
/*
 * Test policy for knobs on two sie_target constants (two objects, one per constant):
 *	SIE_TARGET_CALL_ARG = addend  for inputs x >= min_x (else the shipped 0x1234)
 *	SIE_TARGET_THRESHOLD = threshold
 * while `enabled` (else both shipped values). min_x and mode are start settings (sie-run
 * --set); addend, threshold and enabled live knobs (sie knob): the guest test changes them
 * while it runs and reads sie_target's results. `enabled` is read by both constants'
 * decisions, so one `sie knob enabled false` must reach both.
 * bias, trace and tag exist for the unit tests' type checks (signed, bool, string).
 * Plain globals are shared too (one object per policy file): with `follow`,
 * SIE_TARGET_THRESHOLD takes the last input SIE_TARGET_CALL_ARG's decision saw (last_x).
 */
#include <sie/policy.bpf.h>

enum knob_mode { KNOB_OFF = 0, KNOB_ON = 1 };

const volatile __u64 min_x = 100;
const volatile enum knob_mode mode = KNOB_ON;
const volatile __s16 bias = -1;
const volatile bool trace = false;
const volatile char tag[8] = "none"; /* a string setting, logged with trace */

SIE_KNOB(__u32, addend, 50);
SIE_KNOB(__u32, threshold, 1000);
SIE_KNOB(bool, enabled, true);
SIE_KNOB(bool, follow, false);

__u64 last_x;

SIE_POLICY(sie_target_call_arg, ctx)
{
	__u64 x = sie_arg(ctx, x);

	last_x = x;
	if (!enabled || mode == KNOB_OFF || x < min_x)
		return sie_default(ctx);
	if (trace)
		sie_log("call_arg(%llu): addend %u (bias %d, tag %s)", x, addend, bias, tag);
	return sie_value(ctx, addend);
}

SIE_POLICY(sie_target_threshold, ctx)
{
	if (!enabled)
		return sie_default(ctx);
	return sie_value(ctx, follow ? last_x : threshold);
}
