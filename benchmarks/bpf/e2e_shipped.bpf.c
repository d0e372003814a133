// SPDX-License-Identifier: GPL-2.0
/*
 * The policy case of benchmarks/e2e_fio.sh: decides IO_SUBMIT_PLUG_THRESHOLD (io_uring's
 * "plug only above 2 SQEs per submission", io_submit_sqes) at every submission and returns its
 * shipped value, so behaviour is unchanged and what is measured is the policy path itself: the
 * stub's kprobe program, the call into this decision, the range check and the flags rewrite.
 *
 *	sie-run benchmarks/bpf/e2e_shipped.bpf.c --const IO_SUBMIT_PLUG_THRESHOLD --consts DIR
 */
#include <sie/policy.bpf.h>

SIE_POLICY(io_submit_plug_threshold, ctx)
{
	return sie_default(ctx); /* 2, as shipped */
}
