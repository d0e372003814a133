// SPDX-License-Identifier: GPL-2.0
/*
 * Per-shrinker batch (the paper's per-shrinker memory control). SHRINK_BATCH (mm/shrinker.c,
 * do_shrink_slab) is how many objects the kernel asks a shrinker that sets no batch of its own
 * to free per scan_objects call: 128 for all of them. This policy gives one shrinker, named by
 * its scan function as /proc/kallsyms spells it (e.g. super_cache_scan, the dentry and inode
 * caches of every superblock), another batch, and leaves every other shrinker at 128.
 *
 *	sie-run shrinker_batch.bpf.c --const SHRINK_BATCH --set shrinker=super_cache_scan
 *	sie knob batch 512	# while it runs
 *
 * See README.md.
 */
#include <sie/policy.bpf.h>

#define SYM_LEN 64

/* The shrinker to tune, by its scan_objects symbol. Empty: none (every shrinker keeps 128). */
const volatile char shrinker[SYM_LEN] = "";
/* Its batch: objects per scan_objects call (SHRINK_BATCH's range: 1..4096). */
SIE_KNOB(__u32, batch, 1024);

/* Is fn the function called `shrinker` ("name", or "name [module]" for a module's)? */
static __always_inline int is_target(__u64 fn)
{
	static const char fmt[] = "%ps";
	char sym[SYM_LEN] = {};
	int i;

	if (shrinker[0] == 0 || bpf_snprintf(sym, sizeof(sym), fmt, &fn, sizeof(fn)) < 0)
		return 0;
	for (i = 0; i < SYM_LEN; i++) {
		if (shrinker[i] == 0)
			return sym[i] == 0 || sym[i] == ' ';
		if (sym[i] != shrinker[i])
			return 0;
	}
	return 0;
}

SIE_POLICY(shrink_batch, ctx)
{
	struct shrinker *s = sie_arg(ctx, shrinker);

	if (!is_target((__u64)BPF_CORE_READ(s, scan_objects)))
		return sie_default(ctx);
	sie_count("tuned_scans");
	return sie_value(ctx, batch);
}
