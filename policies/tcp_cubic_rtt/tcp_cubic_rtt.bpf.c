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
 * Tuning from user space, while it runs (shared map, pinned by name):
 *	bpftool map update pinned /sys/fs/bpf/cubic_rtt_cfg key 0 0 0 0 value hex <u64 LE>
 *   key 0: RTT threshold in usec (0: 40000)      key 1: cap for long flows in usec (0: 100000)
 */
#include <sie/policy.bpf.h>

#define RTT_THRESHOLD_US 40000
#define LONG_DELAY_MAX_US 100000
#define LONG_SHIFT 1

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
	__sie_shared;
} cubic_rtt_cfg SEC(".maps");

static __always_inline __u64 cfg(__u32 key, __u64 def)
{
	__u64 *v = bpf_map_lookup_elem(&cubic_rtt_cfg, &key);

	return v && *v ? *v : def;
}

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

	return d != ~0U && d >= cfg(0, RTT_THRESHOLD_US);
}

SIE_POLICY(hystart_delay_shift, ctx)
{
	struct sock *sk = sie_arg(ctx, sk);

	if (!long_rtt(sk)) {
		sie_count("shift_default_short_rtt");
		return sie_default(ctx);
	}
	sie_count("shift_1_long_rtt");
	return sie_value(ctx, LONG_SHIFT);
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
	return sie_value(ctx, cfg(1, LONG_DELAY_MAX_US));
}
