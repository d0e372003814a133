// SPDX-License-Identifier: GPL-2.0
/*
 * The sdk/README.md tutorial policy: SIE_TARGET_CALL_ARG (the immediate sie_target's call_arg
 * path adds to its input) becomes input-dependent: large inputs get a bigger addend, and a
 * process listed in a map gets its own value. Compiled by the unit tests and run in the guest.
 */
#include <sie/policy.bpf.h>

/* pid -> value, filled by an application (pinned at /sys/fs/bpf/tutorial_pids). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __s64);
	__sie_shared;
} tutorial_pids SEC(".maps");

SIE_POLICY(sie_target_call_arg, ctx)
{
	__u32 pid = sie_pid();
	__s64 *mine = bpf_map_lookup_elem(&tutorial_pids, &pid);
	__u64 x = sie_arg(ctx, x);	/* the function's argument, live at the span */

	if (mine) {
		sie_count("per_process");
		return sie_value(ctx, *mine);
	}
	if (x >= 1000000) {
		sie_log("large input %llu: addend 0x10000", x);
		sie_count("large_input");
		return sie_value(ctx, 0x10000);
	}
	return sie_default(ctx);	/* 0x1234, as shipped */
}
