// SPDX-License-Identifier: GPL-2.0
/*
 * sie_softirq_load: softirq work that keeps itself pending, so handle_softirqs()
 * (kernel/softirq.c) restarts until MAX_SOFTIRQ_RESTART runs out and hands the rest to ksoftirqd:
 * the restart budget becomes observable for guest tests.
 *
 * Writing N to debugfs sie_softirq_load/burst schedules a tasklet with bottom halves disabled;
 * enabling them runs it at once in the writer's context (handle_softirqs from
 * local_bh_enable), and it reschedules itself until it has run N times. Each run counts where it
 * ran: inline (the first handle_softirqs and its restarts) or in ksoftirqd.
 *
 * debugfs sie_softirq_load/:
 *   burst     w   N (1..100000): start a burst, wait for it to finish
 *   inline    r   runs of the last burst outside ksoftirqd
 *   deferred  r   runs of the last burst in ksoftirqd
 */
#include <linux/completion.h>
#include <linux/debugfs.h>
#include <linux/interrupt.h>
#include <linux/module.h>

static struct tasklet_struct sie_sl_tasklet;
static DECLARE_COMPLETION(sie_sl_done);
static DEFINE_MUTEX(sie_sl_lock);
static u64 sie_sl_left, sie_sl_inline, sie_sl_deferred;
static struct dentry *sie_sl_dir;

static bool sie_sl_in_ksoftirqd(void)
{
	return (current->flags & PF_KTHREAD) && !strncmp(current->comm, "ksoftirqd/", 10);
}

static void sie_sl_run(struct tasklet_struct *t)
{
	if (sie_sl_in_ksoftirqd())
		sie_sl_deferred++;
	else
		sie_sl_inline++;
	if (--sie_sl_left)
		tasklet_schedule(t);	/* still pending when this pass ends: a restart */
	else
		complete(&sie_sl_done);
}

static int sie_sl_burst_set(void *data, u64 val)
{
	if (val < 1 || val > 100000)
		return -EINVAL;
	mutex_lock(&sie_sl_lock);
	reinit_completion(&sie_sl_done);
	sie_sl_left = val;
	sie_sl_inline = 0;
	sie_sl_deferred = 0;
	local_bh_disable();
	tasklet_schedule(&sie_sl_tasklet);
	local_bh_enable();	/* runs the pending softirqs here */
	wait_for_completion(&sie_sl_done);
	mutex_unlock(&sie_sl_lock);
	return 0;
}
DEFINE_DEBUGFS_ATTRIBUTE(sie_sl_burst_fops, NULL, sie_sl_burst_set, "%llu\n");

static int __init sie_sl_init(void)
{
	tasklet_setup(&sie_sl_tasklet, sie_sl_run);
	sie_sl_dir = debugfs_create_dir("sie_softirq_load", NULL);
	debugfs_create_file_unsafe("burst", 0200, sie_sl_dir, NULL, &sie_sl_burst_fops);
	debugfs_create_u64("inline", 0400, sie_sl_dir, &sie_sl_inline);
	debugfs_create_u64("deferred", 0400, sie_sl_dir, &sie_sl_deferred);
	return 0;
}

static void __exit sie_sl_exit(void)
{
	debugfs_remove_recursive(sie_sl_dir);
	tasklet_kill(&sie_sl_tasklet);
}

module_init(sie_sl_init);
module_exit(sie_sl_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("sie tests: softirq work that restarts handle_softirqs until its budget ends");
