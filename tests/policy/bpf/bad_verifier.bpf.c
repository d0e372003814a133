// SPDX-License-Identifier: GPL-2.0
/* Compiles, but the verifier refuses it: the lookup result is used without a NULL check. */
#include <sie/policy.bpf.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __s64);
	__sie_shared;
} bad_values SEC(".maps");

SIE_POLICY(sie_target_call_arg, ctx)
{
	__u32 tid = sie_tid();
	__s64 *v = bpf_map_lookup_elem(&bad_values, &tid);

	return sie_value(ctx, *v); /* BAD_LINE */
}
