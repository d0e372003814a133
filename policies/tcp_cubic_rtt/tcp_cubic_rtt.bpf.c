// SPDX-License-Identifier: GPL-2.0
/*
 * RTT-aware CUBIC HyStart (paper Fig. 7, "collective tuning").
 *
 * HyStart leaves slow start when an RTT sample exceeds
 *	delay_min + clamp(delay_min >> HYSTART_DELAY_SHIFT, HYSTART_DELAY_MIN, HYSTART_DELAY_MAX)
 * (hystart_update(), net/ipv4/tcp_cubic.c). With the shipped 3 and 16 ms, a 150 ms path exits
 * on 16 ms of queueing (11 %), long before its pipe is full. For flows whose minimum RTT is at
 * least the threshold (40 ms by default) this policy uses shift 1 and a higher cap, so the exit
 * needs delay_min/2 of extra delay; short-RTT flows keep the defaults.
 *
 * Both constants are decided in one file: sie-run switches them together (one transaction).
 *
 * Knobs (sie-run --describe lists them):
 *	sie-run ... --set long_shift=2			start setting, fixed while it runs
 *	sie knob rtt_threshold_us 20000			live: which flows are long
 *	sie knob long_delay_max_us 150000		live: their HYSTART_DELAY_MAX
 */
#include <sie/policy.bpf.h>

/* HYSTART_DELAY_SHIFT for long flows: the exit needs delay_min >> long_shift of extra delay. */
const volatile __u32 long_shift = 1;
/* Flows whose minimum RTT is at least this (usec) are long. */
SIE_KNOB(__u32, rtt_threshold_us, 40000);
/* HYSTART_DELAY_MAX for long flows (usec). */
SIE_KNOB(__u32, long_delay_max_us, 100000);

/* The flow's minimum RTT as HyStart tracks it: bictcp.delay_min, in usec (CO-RE, no offsets). */
static __always_inline __u32 flow_delay_min(struct sock *sk)
{
	struct bictcp *ca = (void *)sk + bpf_core_field_offset(struct inet_connection_sock,
							       icsk_ca_priv);

	return BPF_CORE_READ(ca, delay_min);
}

static __always_inline int long_rtt(struct sock *sk)
{
	__u32 d = flow_delay_min(sk);

	return d != ~0U && d >= rtt_threshold_us;
}

SIE_POLICY(hystart_delay_shift, ctx)
{
	struct sock *sk = sie_arg(ctx, sk);

	if (!long_rtt(sk)) {
		sie_count("shift_default_short_rtt");
		return sie_default(ctx);
	}
	sie_count("shift_1_long_rtt");
	return sie_value(ctx, long_shift);
}

SIE_POLICY(hystart_delay_max, ctx)
{
	struct sock *sk = sie_arg(ctx, sk);
	__u32 delay = sie_arg(ctx, delay);	/* the RTT sample being checked, usec */

	if (!long_rtt(sk))
		return sie_default(ctx);
	if (delay > 2 * flow_delay_min(sk))
		sie_log("sk %p: RTT sample %u us is twice delay_min %u us", sk, delay,
			flow_delay_min(sk));
	sie_count("max_raised_long_rtt");
	return sie_value(ctx, long_delay_max_us);
}
