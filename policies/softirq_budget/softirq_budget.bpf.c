// SPDX-License-Identifier: GPL-2.0
/*
 * Softirq restart budget chosen from load (the paper's case study). handle_softirqs()
 * (kernel/softirq.c) runs pending softirqs where they were raised (an interrupt's exit,
 * local_bh_enable) and restarts while more are pending, at most MAX_SOFTIRQ_RESTART (10) times,
 * then hands the rest to ksoftirqd, a normal thread the scheduler weighs against the others.
 * When other tasks wait for this CPU, restarting in place delays them; when none does,
 * deferring only adds a context switch. This policy decides per invocation, from the CPU's
 * run queue: `busy_restart` restarts when more than one task is runnable here, else
 * `idle_restart`.
 *
 *	sie-run softirq_budget.bpf.c --const MAX_SOFTIRQ_RESTART
 *
 * See README.md.
 */
#include <sie/policy.bpf.h>

extern struct rq runqueues __ksym;

SIE_KNOB(__u32, busy_restart, 1);   /* others runnable: defer to ksoftirqd early */
SIE_KNOB(__u32, idle_restart, 100); /* nothing else to run: finish in place */

SIE_POLICY(max_softirq_restart, ctx)
{
	struct rq *rq = bpf_this_cpu_ptr(&runqueues);

	if (rq->nr_running > 1) {
		sie_count("busy");
		return sie_value(ctx, busy_restart);
	}
	sie_count("idle");
	return sie_value(ctx, idle_restart);
}
