// SPDX-License-Identifier: GPL-2.0
/*
 * sie_shrink_observer: makes a real vmlinux constant observable for guest tests.
 *
 * A shrinker that sets no batch, so do_shrink_slab() (mm/shrinker.c) scans it in batches of
 * SHRINK_BATCH: it records the largest nr_to_scan the kernel asks for. A test fills it with
 * `objects`, drops caches (echo 2 > /proc/sys/vm/drop_caches) and reads `max_scan`, which is
 * the value of SHRINK_BATCH the running kernel used, before and after `sie set SHRINK_BATCH`.
 *
 * debugfs sie_shrink_observer/:
 *   objects   rw  objects the shrinker reports as freeable; writing also resets the counters
 *   max_scan  ro  the largest nr_to_scan of a scan_objects call since then
 *   calls     ro  scan_objects calls since then
 */
#include <linux/atomic.h>
#include <linux/debugfs.h>
#include <linux/module.h>
#include <linux/shrinker.h>

static atomic_long_t sie_obs_objects = ATOMIC_LONG_INIT(0);
static u64 sie_obs_max_scan;
static u64 sie_obs_calls;
static DEFINE_SPINLOCK(sie_obs_lock);
static struct shrinker *sie_obs_shrinker;
static struct dentry *sie_obs_dir;

static unsigned long sie_obs_count(struct shrinker *s, struct shrink_control *sc)
{
	long n = atomic_long_read(&sie_obs_objects);

	return n > 0 ? n : SHRINK_EMPTY;
}

static unsigned long sie_obs_scan(struct shrinker *s, struct shrink_control *sc)
{
	unsigned long want = sc->nr_to_scan, freed;
	long left = atomic_long_read(&sie_obs_objects);

	spin_lock(&sie_obs_lock);
	sie_obs_calls++;
	if (want > sie_obs_max_scan)
		sie_obs_max_scan = want;
	spin_unlock(&sie_obs_lock);
	if (left <= 0)
		return SHRINK_STOP;
	freed = min_t(unsigned long, want, left);
	atomic_long_sub(freed, &sie_obs_objects);
	return freed;
}

static int sie_obs_objects_get(void *data, u64 *val)
{
	*val = atomic_long_read(&sie_obs_objects);
	return 0;
}

static int sie_obs_objects_set(void *data, u64 val)
{
	spin_lock(&sie_obs_lock);
	sie_obs_max_scan = 0;
	sie_obs_calls = 0;
	spin_unlock(&sie_obs_lock);
	atomic_long_set(&sie_obs_objects, val);
	return 0;
}
DEFINE_DEBUGFS_ATTRIBUTE(sie_obs_objects_fops, sie_obs_objects_get, sie_obs_objects_set,
			 "%llu\n");

static int __init sie_obs_init(void)
{
	sie_obs_shrinker = shrinker_alloc(0, "sie_shrink_observer");
	if (!sie_obs_shrinker)
		return -ENOMEM;
	sie_obs_shrinker->count_objects = sie_obs_count;
	sie_obs_shrinker->scan_objects = sie_obs_scan;
	/* batch stays 0: do_shrink_slab() uses SHRINK_BATCH, the constant under test */
	shrinker_register(sie_obs_shrinker);

	sie_obs_dir = debugfs_create_dir("sie_shrink_observer", NULL);
	debugfs_create_file_unsafe("objects", 0600, sie_obs_dir, NULL, &sie_obs_objects_fops);
	debugfs_create_u64("max_scan", 0400, sie_obs_dir, &sie_obs_max_scan);
	debugfs_create_u64("calls", 0400, sie_obs_dir, &sie_obs_calls);
	return 0;
}

static void __exit sie_obs_exit(void)
{
	debugfs_remove_recursive(sie_obs_dir);
	shrinker_free(sie_obs_shrinker);
}

module_init(sie_obs_init);
module_exit(sie_obs_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("sie tests: observes the batch do_shrink_slab() scans a default shrinker with");
