// SPDX-License-Identifier: GPL-2.0
/*
 * Test-only module: WARNs once when loaded, so the guest runner's dmesg scan can be shown to
 * fail a run whose command itself succeeded.
 */
#include <linux/bug.h>
#include <linux/module.h>

static int __init sie_warn_init(void)
{
	WARN(1, "sie_warn: deliberate warning for the sie vm runner test\n");
	return 0;
}

static void __exit sie_warn_exit(void)
{
}

module_init(sie_warn_init);
module_exit(sie_warn_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("sie test: WARN on load");
