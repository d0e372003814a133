// SPDX-License-Identifier: GPL-2.0
/*
 * Application-hinted plugging (the paper's case study). BLK_MAX_REQUEST_COUNT (block/blk.h,
 * 32) is how many requests a task's plug holds before the block layer flushes them to the
 * device: batching pays for sequential streams, and only adds latency to random reads that
 * never merge. An application knows which it is doing; with this policy it says so (libsie-hint,
 * or `sie hint`) and its plug follows, per thread:
 *
 *	hint 1 (random)      random_count requests per plug (1: every request goes out at once)
 *	hint 2 (sequential)  sequential_count (0: the shipped 32)
 *	no hint              the shipped 32
 *
 *	sie-run blk_plug_hint.bpf.c --const BLK_MAX_REQUEST_COUNT
 *	sie hint run 1 -- fio --thread ...	# a random-read job
 *
 * See README.md.
 */
#include <sie/policy.bpf.h>

enum io_hint { IO_HINT_NONE = 0, IO_HINT_RANDOM = 1, IO_HINT_SEQUENTIAL = 2 };

SIE_KNOB(__u32, random_count, 1);
SIE_KNOB(__u32, sequential_count, 0);

SIE_POLICY(blk_max_request_count, ctx)
{
	switch (sie_hint(IO_HINT_NONE)) {
	case IO_HINT_RANDOM:
		return sie_value(ctx, random_count);
	case IO_HINT_SEQUENTIAL:
		if (sequential_count)
			return sie_value(ctx, sequential_count);
		break;
	}
	return sie_default(ctx);
}
