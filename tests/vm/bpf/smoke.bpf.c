// SPDX-License-Identifier: GPL-2.0
/*
 * Kprobe programs for tests/vm/smoke_test.cc. Each is attached by the test at function+offset
 * inside sie_target; the knobs below live in .bss and are set by the test through the skeleton.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "sie/kfuncs.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* Counts hits of its probe. */
__u64 hits;

SEC("kprobe")
int sie_count(struct pt_regs *ctx)
{
	__sync_fetch_and_add(&hits, 1);
	return 0;
}

/* Writes register reg_idx (SIE_REG_*) of the probed frame. */
__u32 reg_idx;
__u64 reg_val;
__u32 reg_width;
__s32 reg_ret;
__u64 reg_calls;

SEC("kprobe")
int sie_setreg(struct pt_regs *ctx)
{
	reg_ret = sie_set_reg(ctx, reg_idx, reg_val, reg_width);
	__sync_fetch_and_add(&reg_calls, 1);
	return 0;
}

/*
 * Recomputes the flags of `cmp $flags_rhs, %reg` (the probed compare with a new immediate);
 * reg is %rdi, or %rbx when flags_lhs_reg is SIE_REG_BX.
 */
__u32 flags_lhs_reg;
__u64 flags_rhs;
__u32 flags_width;
__s32 flags_ret;
__u64 flags_calls;

SEC("kprobe")
int sie_setflags(struct pt_regs *ctx)
{
	__u64 di = ctx->di, bx = ctx->bx;

	/* Both loads stay fixed-offset ctx reads (the verifier rejects a computed ctx offset). */
	asm volatile("" : "+r"(di), "+r"(bx));
	__u64 lhs = flags_lhs_reg == SIE_REG_BX ? bx : di;

	flags_ret = sie_set_flags(ctx, lhs, flags_rhs, flags_width);
	__sync_fetch_and_add(&flags_calls, 1);
	return 0;
}

/* Recomputes the flags of instruction flags_op (enum sie_flags_op) on %rdi and flags_rhs. */
__u32 flags_op;
__s32 flags_op_ret;

SEC("kprobe")
int sie_setflagsop(struct pt_regs *ctx)
{
	flags_op_ret = sie_set_flags_op(ctx, flags_op, ctx->di, flags_rhs, 8);
	__sync_fetch_and_add(&flags_calls, 1);
	return 0;
}

/* Rewrites registered memory cell cell_id. */
__u32 cell_id;
__u64 cell_val;
__s32 cell_ret;
__u64 cell_calls;

SEC("kprobe")
int sie_writecell(struct pt_regs *ctx)
{
	cell_ret = sie_write_cell(ctx, cell_id, cell_val);
	__sync_fetch_and_add(&cell_calls, 1);
	return 0;
}

/*
 * Rewrites the memory cell whose id is the attachment's BPF cookie, so one program serves
 * several probes (one cell per probe).
 */
__u64 cookie_cell_val;
__s32 cookie_ret;
__u64 cookie_errors;
__u64 cookie_calls;

SEC("kprobe")
int sie_writecell_cookie(struct pt_regs *ctx)
{
	int ret = sie_write_cell(ctx, (__u32)bpf_get_attach_cookie(ctx), cookie_cell_val);

	if (ret) {
		cookie_ret = ret;
		__sync_fetch_and_add(&cookie_errors, 1);
	}
	__sync_fetch_and_add(&cookie_calls, 1);
	return 0;
}
