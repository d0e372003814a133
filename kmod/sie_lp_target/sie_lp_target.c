// SPDX-License-Identifier: GPL-2.0
/*
 * sie_lp_target: a livepatch of sie_target for tests. It replaces sie_target_call_arg (pattern
 * (b), the constant SIE_TARGET_CALL_ARG) with a copy that adds SIE_LP_TARGET_ADD instead, so
 * that the patch is visible in sie_target's debugfs results (call_arg = x + SIE_LP_TARGET_ADD)
 * and kprobes inside the original function never fire while the patch is enabled. `sie set`
 * must refuse such a constant (tests/runtime/vm_runtime_test.sh).
 *
 * Disable with: echo 0 > /sys/kernel/livepatch/sie_lp_target/enabled (then rmmod).
 */
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/module.h>

#define SIE_LP_TARGET_ADD 1000000

static noinline u64 sie_lp_target_call_arg(u64 x)
{
	return x + SIE_LP_TARGET_ADD;
}

static struct klp_func sie_lp_funcs[] = {
	{
		.old_name = "sie_target_call_arg",
		.new_func = sie_lp_target_call_arg,
	},
	{}
};

static struct klp_object sie_lp_objs[] = {
	{
		.name = "sie_target",
		.funcs = sie_lp_funcs,
	},
	{}
};

static struct klp_patch sie_lp_patch = {
	.mod = THIS_MODULE,
	.objs = sie_lp_objs,
};

static int __init sie_lp_target_init(void)
{
	return klp_enable_patch(&sie_lp_patch);
}

static void __exit sie_lp_target_exit(void)
{
}

module_init(sie_lp_target_init);
module_exit(sie_lp_target_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
MODULE_DESCRIPTION("sie tests: livepatch of sie_target_call_arg");
