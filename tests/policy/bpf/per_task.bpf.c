// SPDX-License-Identifier: GPL-2.0
/*
 * Test policy on two sie_target constants at once (one transaction). The value is chosen per
 * calling thread through a hash map the test application fills:
 *	tid_values[tid] = v  ->  SIE_TARGET_CALL_ARG = v, SIE_TARGET_THRESHOLD = 10
 * Threads not in the map keep the shipped values (0x1234, 1000). A value outside the constant's
 * range (the test puts -5) is rejected by the stub and counted, never applied.
 */
#include <sie/policy.bpf.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __s64);
	__sie_shared;
} tid_values SEC(".maps");

SIE_POLICY(sie_target_call_arg, ctx)
{
	__u32 tid = sie_tid();
	__s64 *v = bpf_map_lookup_elem(&tid_values, &tid);
	__u64 x = sie_arg(ctx, x);

	if (!v) {
		sie_count("call_arg_default");
		return sie_default(ctx);
	}
	sie_count("call_arg_chosen");
	if (x == 777)
		sie_log("tid %u: call_arg(%llu) takes %lld", tid, x, *v);
	return sie_value(ctx, *v);
}

SIE_POLICY(sie_target_threshold, ctx)
{
	__u32 tid = sie_tid();

	if (!bpf_map_lookup_elem(&tid_values, &tid))
		return sie_default(ctx);
	sie_count("threshold_chosen");
	return sie_value(ctx, 10);
}
