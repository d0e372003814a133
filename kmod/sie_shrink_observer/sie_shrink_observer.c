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
 *   b/        the same for a second shrinker (scan function sie_obs_scan_b), so a per-shrinker
 *             policy can be seen to change one and not the other
 */
#include <linux/atomic.h>
#include <linux/debugfs.h>
#include <linux/module.h>
#include <linux/shrinker.h>

/* One observed shrinker: its freeable objects and what the kernel asked of it. */
struct sie_obs {
	atomic_long_t objects;
	u64 max_scan;
	u64 calls;
	spinlock_t lock;
	struct shrinker *shrinker;
};

static struct sie_obs sie_obs_a = { .lock = __SPIN_LOCK_UNLOCKED(sie_obs_a.lock) };
static struct sie_obs sie_obs_b = { .lock = __SPIN_LOCK_UNLOCKED(sie_obs_b.lock) };
static struct dentry *sie_obs_dir;

static unsigned long sie_obs_count(struct shrinker *s, struct shrink_control *sc)
{
	struct sie_obs *o = s->private_data;
	long n = atomic_long_read(&o->objects);

	return n > 0 ? n : SHRINK_EMPTY;
}

static unsigned long sie_obs_do_scan(struct sie_obs *o, struct shrink_control *sc)
{
	unsigned long want = sc->nr_to_scan, freed;
	long left = atomic_long_read(&o->objects);

	spin_lock(&o->lock);
	o->calls++;
	if (want > o->max_scan)
		o->max_scan = want;
	spin_unlock(&o->lock);
	if (left <= 0)
		return SHRINK_STOP;
	freed = min_t(unsigned long, want, left);
	atomic_long_sub(freed, &o->objects);
	return freed;
}

/*
 * Two scan functions, so each shrinker has its own symbol: a policy tells them apart by
 * shrinker->scan_objects (policies/shrinker_batch). Each names its own state, so the bodies
 * differ and the compiler cannot fold them into one.
 */
static noinline unsigned long sie_obs_scan(struct shrinker *s, struct shrink_control *sc)
{
	return sie_obs_do_scan(&sie_obs_a, sc);
}

static noinline unsigned long sie_obs_scan_b(struct shrinker *s, struct shrink_control *sc)
{
	return sie_obs_do_scan(&sie_obs_b, sc);
}

static int sie_obs_objects_get(void *data, u64 *val)
{
	struct sie_obs *o = data;

	*val = atomic_long_read(&o->objects);
	return 0;
}

static int sie_obs_objects_set(void *data, u64 val)
{
	struct sie_obs *o = data;

	spin_lock(&o->lock);
	o->max_scan = 0;
	o->calls = 0;
	spin_unlock(&o->lock);
	atomic_long_set(&o->objects, val);
	return 0;
}
DEFINE_DEBUGFS_ATTRIBUTE(sie_obs_objects_fops, sie_obs_objects_get, sie_obs_objects_set,
			 "%llu\n");

static int sie_obs_add(struct sie_obs *o, const char *name, struct dentry *dir,
		       unsigned long (*scan)(struct shrinker *, struct shrink_control *))
{
	o->shrinker = shrinker_alloc(0, "%s", name);
	if (!o->shrinker)
		return -ENOMEM;
	o->shrinker->count_objects = sie_obs_count;
	o->shrinker->scan_objects = scan;
	o->shrinker->private_data = o;
	/* batch stays 0: do_shrink_slab() uses SHRINK_BATCH, the constant under test */
	shrinker_register(o->shrinker);
	debugfs_create_file_unsafe("objects", 0600, dir, o, &sie_obs_objects_fops);
	debugfs_create_u64("max_scan", 0400, dir, &o->max_scan);
	debugfs_create_u64("calls", 0400, dir, &o->calls);
	return 0;
}

static int __init sie_obs_init(void)
{
	int err;

	sie_obs_dir = debugfs_create_dir("sie_shrink_observer", NULL);
	err = sie_obs_add(&sie_obs_a, "sie_shrink_observer", sie_obs_dir, sie_obs_scan);
	if (!err)
		err = sie_obs_add(&sie_obs_b, "sie_shrink_observer_b",
				  debugfs_create_dir("b", sie_obs_dir), sie_obs_scan_b);
	if (err) {
		debugfs_remove_recursive(sie_obs_dir);
		shrinker_free(sie_obs_a.shrinker);
	}
	return err;
}

static void __exit sie_obs_exit(void)
{
	debugfs_remove_recursive(sie_obs_dir);
	shrinker_free(sie_obs_a.shrinker);
	shrinker_free(sie_obs_b.shrinker);
}

module_init(sie_obs_init);
module_exit(sie_obs_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("sie tests: observes the batch do_shrink_slab() scans default shrinkers with");
