// SPDX-License-Identifier: GPL-2.0
/*
 * Kprobe programs for tests/consistency/consistency_test.cc: a hand-written stand-in for a
 * mode-2 sie stub. Each applies the new value only when sie_global_active() says the instance
 * switched (the gate), through the restricted sie_kfuncs writes. Knobs live in .bss.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "sie/consistency.bpf.h"
#include "sie/kfuncs.bpf.h"

char LICENSE[] SEC("license") = "GPL";

__u32 batch_instance;
__u64 batch_value;
__u32 ungated; /* control experiment: apply without the gate (what mode 0 does) */
__u64 applied1, applied2, failed;

__u32 arg_instance;
__u64 arg_value;
__u64 applied_arg;

static __always_inline int gate(__u32 instance)
{
	return ungated || sie_global_active(instance);
}

/* After use 1 of SIE_TARGET_BATCH (movl $imm, 0x8(%rdi)): memory cell 0. */
SEC("kprobe")
int batch_use1(struct pt_regs *ctx)
{
	if (!gate(batch_instance))
		return 0;
	if (sie_write_cell(ctx, 0, batch_value))
		__sync_fetch_and_add(&failed, 1);
	else
		__sync_fetch_and_add(&applied1, 1);
	return 0;
}

/* After use 2 (movl $imm, 0xc(%rbx)): memory cell 1. */
SEC("kprobe")
int batch_use2(struct pt_regs *ctx)
{
	if (!gate(batch_instance))
		return 0;
	if (sie_write_cell(ctx, 1, batch_value))
		__sync_fetch_and_add(&failed, 1);
	else
		__sync_fetch_and_add(&applied2, 1);
	return 0;
}

/* After mov $imm, %esi in sie_target_call_arg (the probe sits on the span's exit jmp). */
SEC("kprobe")
int arg_use(struct pt_regs *ctx)
{
	if (!sie_global_active(arg_instance))
		return 0;
	if (sie_set_reg(ctx, SIE_REG_SI, arg_value, 4))
		__sync_fetch_and_add(&failed, 1);
	else
		__sync_fetch_and_add(&applied_arg, 1);
	return 0;
}
