// SPDX-License-Identifier: GPL-2.0
/*
 * Adaptive plugging from plug-merge failures (the paper's case study; the observer pattern).
 * A plug pays when the requests it holds merge; for a task whose bios keep failing to merge
 * into its plug (random I/O) it only delays them. An observer on blk_attempt_plug_merge()'s
 * return counts, per task, the merge attempts and failures of the last `window` attempts; the
 * decision gives a task whose failure rate reaches `fail_pct` a plug of `low_count` requests,
 * and every other task the shipped BLK_MAX_REQUEST_COUNT (32). No application change, no hint.
 *
 *	sie-run blk_plug_adaptive.bpf.c --const BLK_MAX_REQUEST_COUNT
 *
 * See README.md.
 */
#include <sie/policy.bpf.h>

SIE_KNOB(__u32, window, 64);    /* merge attempts per measurement */
SIE_KNOB(__u32, fail_pct, 90);  /* a task failing at least this often is "random" */
SIE_KNOB(__u32, low_count, 1);  /* its plug size */

struct merge_stat {
	__u32 attempts, failures; /* in the current window */
	__u32 last_pct;           /* failure rate of the last complete window, % */
	__u32 windows;            /* complete windows (0: no verdict yet) */
};

/* Per task, written by the observer, read by the decision (shared: pinned by name). */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct merge_stat);
	__sie_shared;
} merge_stats SEC(".maps");

SEC("kretprobe/blk_attempt_plug_merge")
int BPF_KRETPROBE(on_plug_merge, bool merged)
{
	struct merge_stat *s = bpf_task_storage_get(&merge_stats, bpf_get_current_task_btf(), 0,
						    BPF_LOCAL_STORAGE_GET_F_CREATE);

	if (!s)
		return 0;
	s->attempts++;
	if (!merged)
		s->failures++;
	if (s->attempts >= window && s->attempts) {
		s->last_pct = s->failures * 100 / s->attempts;
		s->windows++;
		s->attempts = 0;
		s->failures = 0;
	}
	return 0;
}

SIE_POLICY(blk_max_request_count, ctx)
{
	struct merge_stat *s = bpf_task_storage_get(&merge_stats, bpf_get_current_task_btf(), 0, 0);

	if (s && s->windows && s->last_pct >= fail_pct) {
		sie_count("low_plug");
		return sie_value(ctx, low_count);
	}
	return sie_default(ctx);
}
