// SPDX-License-Identifier: GPL-2.0
/*
 * The BPF side of benchmarks/probe_cost_bench.cc: the smallest SIE update a kprobe program can
 * make (one sie_set_reg kfunc call with a value from global data), plus a hit counter and an
 * error counter so the benchmark can check that every timed hit really applied the update.
 * The runtime's generated stubs (bpf/include/sie/stub.bpf.h) add a gate, per-CPU stats and
 * mode checks on top; this measures the floor of the BPF path.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "sie/kfuncs.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* Set by the benchmark through the skeleton before attaching. */
__u32 reg_idx;
__u64 reg_val;
__u32 reg_width;

__u64 hits;
__u64 errors;
__s32 last_error;

SEC("kprobe")
int sie_bench_setreg(struct pt_regs *ctx)
{
	int ret = sie_set_reg(ctx, reg_idx, reg_val, reg_width);

	if (ret) {
		last_error = ret;
		__sync_fetch_and_add(&errors, 1);
	}
	__sync_fetch_and_add(&hits, 1);
	return 0;
}

/*
 * The dispatch floor: a program that only counts its hit (plain increment: the benchmark runs
 * on one vCPU, and a kprobe handler is not preempted). Run by a perf kprobe link and by
 * sie_native's module dispatch, it measures what each dispatch costs without any update.
 */
__u64 nop_hits;

SEC("kprobe")
int sie_bench_nop(struct pt_regs *ctx)
{
	nop_hits++;
	return 0;
}
