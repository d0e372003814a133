// SPDX-License-Identifier: GPL-2.0
/*
 * sie_consistency: the global consistency model (mode 2) for sie's constants. The protocol, the
 * span rules, the control file and the status keys are in kmod/include/sie/consistency.h.
 *
 * Differences from the reference (xk-consistency.ko), and why:
 *   - The switch happens in the kernel, in the atomic operation that sees the count reach zero;
 *     the BPF gate reads it (sie_global_active). No user-space polling, no race, and a timeout
 *     never activates.
 *   - One instance per constant (many at once), configured through debugfs, not /dev/shm files.
 *   - Every exit of a span is probed, not one per span.
 *   - Counting probes are armed BEFORE the scan (see consistency.h, step 1).
 *   - Stacks are walked with the reliable unwinder; an unreliable stack blocks the transition
 *     (rescan later) instead of aborting the scan as if nothing had been found.
 *   - Nothing busy-waits: the count is watched by the probes themselves, the timeout is a
 *     delayed work, and module_exit only cancels work and unregisters probes.
 */
#include <linux/atomic.h>
#include <linux/bpf.h>
#include <linux/btf.h>
#include <linux/btf_ids.h>
#include <linux/capability.h>
#include <linux/debugfs.h>
#include <linux/irq_work.h>
#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/sched/signal.h>
#include <linux/sched/task_stack.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/stop_machine.h>
#include <linux/string.h>
#include <linux/timekeeping.h>
#include <linux/uaccess.h>
#include <linux/workqueue.h>
#include <asm/unwind.h>

#include "sie/consistency.h"
#include "sie/control.h"

struct sie_cons_span {
	unsigned long start, end, entry;
	unsigned int nexits;
	unsigned long exits[SIE_CONS_MAX_EXITS];
};

struct sie_cons_inst;

struct sie_cons_probe {
	struct kprobe kp;
	struct sie_cons_inst *inst;
};

enum sie_cons_result {
	SIE_RES_NONE,
	SIE_RES_RUNNING,
	SIE_RES_INSTANT,
	SIE_RES_DONE,
	SIE_RES_TIMEOUT,
	SIE_RES_REMOVED,
};

static const char *const sie_cons_result_names[] = {
	"none", "running", "instant", "done", "timeout", "removed",
};
static const char *const sie_cons_state_names[] = { "off", "pending", "active", "reverting" };

struct sie_cons_inst {
	u32 id;
	atomic_t *word;			/* &sie_cons_words[id] */
	struct mutex lock;		/* spans, probes, running, results (process context) */
	unsigned int nspans;
	struct sie_cons_span spans[SIE_CONS_MAX_SPANS];

	/* The running transition. */
	bool running;
	bool forward;
	u64 deadline_ns;
	struct sie_cons_probe *probes;
	unsigned int nprobes;
	struct delayed_work timeout_work;
	struct delayed_work rescan_work;
	struct work_struct done_work;
	struct irq_work done_irq_work;	/* kprobe context -> done_work */

	/* Status of the last transition (read by debugfs without the lock: plain numbers). */
	enum sie_cons_result result;
	u64 start_ns, end_ns;
	unsigned int scans, frames, unreliable, nblockers;
	pid_t blockers[SIE_CONS_MAX_BLOCKERS];

	struct dentry *dir;
};

/*
 * The gate words, one per possible instance id, never freed: sie_global_active() reads them from
 * any kprobe program without a lock or an RCU section, even for an id that has no instance.
 */
static atomic_t sie_cons_words[SIE_CONS_MAX_ID];
static struct sie_cons_inst *sie_cons_insts[SIE_CONS_MAX_ID];
static DEFINE_MUTEX(sie_cons_lock);	/* the instance table; taken before an instance's lock */
static struct dentry *sie_cons_dir;

static inline u32 sie_word_state(int w)
{
	return (u32)w >> SIE_CONS_STATE_SHIFT;
}

static inline u32 sie_word_count(int w)
{
	return (u32)w & SIE_CONS_COUNT_MASK;
}

static inline int sie_word(u32 state, u32 count)
{
	return (int)((state << SIE_CONS_STATE_SHIFT) | count);
}

/* ---- the kfunc ---- */

__bpf_kfunc_start_defs();

__bpf_kfunc int sie_global_active(u32 instance)
{
	u32 st;

	if (instance >= SIE_CONS_MAX_ID)
		return 0;
	st = sie_word_state(atomic_read(&sie_cons_words[instance]));
	return st == SIE_CONS_ACTIVE || st == SIE_CONS_REVERTING;
}

__bpf_kfunc_end_defs();

BTF_KFUNCS_START(sie_cons_kfunc_ids)
BTF_ID_FLAGS(func, sie_global_active)
BTF_KFUNCS_END(sie_cons_kfunc_ids)

static const struct btf_kfunc_id_set sie_cons_kfunc_set = {
	.owner = THIS_MODULE,
	.set = &sie_cons_kfunc_ids,
};

/* ---- counting probes (kprobe context: no sleeping, no locks) ---- */

/* Guard, before a span's entry instruction: one more frame inside while counting. */
static int sie_cons_guard(struct kprobe *p, struct pt_regs *regs)
{
	struct sie_cons_probe *pr = container_of(p, struct sie_cons_probe, kp);
	atomic_t *w = pr->inst->word;
	int old = atomic_read(w);

	do {
		u32 st = sie_word_state(old), n = sie_word_count(old);

		/* n == 0 never coexists with a counting state: the last decrement flips it. */
		if ((st != SIE_CONS_PENDING && st != SIE_CONS_REVERTING) || !n ||
		    n == SIE_CONS_COUNT_MASK)
			return 0;
	} while (!atomic_try_cmpxchg(w, &old, old + 1));
	return 0;
}

/*
 * Unguard, before a span's exit instruction: the frame is leaving. The decrement that reaches
 * zero flips the state in the same cmpxchg.
 *
 * A pre-handler, not a post-handler: the first version counted after the exit instruction (so a
 * CS stub probed at the same address would still run first) and crashed the guest when such a
 * hot post-handler kprobe on a `ret` was unregistered under load (NULL ip in the single-step
 * path of kprobe_int3_handler, 6.12 under TCG). Consequence, see consistency.h: a CS probe must
 * not sit on a span exit when the span has other uses of the constant before it.
 */
static int sie_cons_unguard(struct kprobe *p, struct pt_regs *regs)
{
	struct sie_cons_probe *pr = container_of(p, struct sie_cons_probe, kp);
	struct sie_cons_inst *inst = pr->inst;
	atomic_t *w = inst->word;
	int old = atomic_read(w), new;
	u32 st, n;

	do {
		st = sie_word_state(old);
		n = sie_word_count(old);
		if ((st != SIE_CONS_PENDING && st != SIE_CONS_REVERTING) || !n)
			return 0;
		if (n > 1)
			new = old - 1;
		else
			new = sie_word(st == SIE_CONS_PENDING ? SIE_CONS_ACTIVE : SIE_CONS_OFF, 0);
	} while (!atomic_try_cmpxchg(w, &old, new));
	if (n == 1) {
		WRITE_ONCE(inst->end_ns, ktime_get_ns());
		/* irq_work is safe from any context the probed code may be in; it queues the work. */
		irq_work_queue(&inst->done_irq_work);
	}
	return 0;
}

/* ---- the scan (inside stop_machine) ---- */

static bool sie_cons_resume_in_span(const struct sie_cons_inst *inst, unsigned long a)
{
	unsigned int i, j;

	for (i = 0; i < inst->nspans; i++) {
		const struct sie_cons_span *s = &inst->spans[i];

		if (a > s->start && a < s->end)
			return true;
		for (j = 0; j < s->nexits; j++)
			if (a == s->exits[j])
				return true;
	}
	return false;
}

/*
 * Frames of `task` inside the instance's spans, or -EINVAL if its stack cannot be walked
 * reliably. The walk is arch_stack_walk_reliable() (x86) with the consumer inlined: that and
 * stack_trace_save_tsk_reliable() are not exported to modules, the unwinder is. The task is not
 * running (stop_machine), so its stack cannot change or go away under us.
 */
static int sie_cons_task_frames(const struct sie_cons_inst *inst, struct task_struct *task)
{
	struct unwind_state state;
	struct pt_regs *regs;
	unsigned long addr;
	int frames = 0;

	/* A task without a stack (a zombie past its last switch) is reliably empty. */
	if (!refcount_read(&task->stack_refcount))
		return 0;
	for (unwind_start(&state, task, NULL, NULL);
	     !unwind_done(&state) && !unwind_error(&state);
	     unwind_next_frame(&state)) {
		regs = unwind_get_entry_regs(&state, NULL);
		if (regs) {
			if (user_mode(regs))
				return frames;	/* reached the user entry: complete */
			if (IS_ENABLED(CONFIG_FRAME_POINTER))
				return -EINVAL;	/* frame pointers are unreliable across interrupts */
		}
		addr = unwind_get_return_address(&state);
		if (!addr)
			return -EINVAL;	/* code the unwinder does not know (a trampoline, JIT) */
		/*
		 * addr is where the frame resumes: a return address, or the exact interrupted ip of
		 * a regs frame. Both are tested the same way (see consistency.h).
		 */
		if (sie_cons_resume_in_span(inst, addr))
			frames++;
	}
	if (unwind_error(&state))
		return -EINVAL;
	return frames;
}

struct sie_cons_scan {
	struct sie_cons_inst *inst;
	bool conclusive;
	unsigned int frames, unreliable, nblockers;
	pid_t blockers[SIE_CONS_MAX_BLOCKERS];
};

static int sie_cons_scan_fn(void *data)
{
	struct sie_cons_scan *sc = data;
	struct sie_cons_inst *inst = sc->inst;
	struct task_struct *g, *t;
	u32 to;

	rcu_read_lock();
	for_each_process_thread(g, t) {
		int n;

		/*
		 * Under stop_machine every CPU runs its stopper thread: the only tasks on a CPU are
		 * this one and the other CPUs' stoppers, which run cpu_stop code only and whose
		 * saved stack pointer is stale (they are running), so they are not walked.
		 */
		if (t == current || READ_ONCE(t->on_cpu))
			continue;
		n = sie_cons_task_frames(inst, t);
		if (n < 0) {
			sc->unreliable++;
			continue;
		}
		if (!n)
			continue;
		if (sc->nblockers < SIE_CONS_MAX_BLOCKERS)
			sc->blockers[sc->nblockers++] = task_pid_nr(t);
		sc->frames += n;
	}
	rcu_read_unlock();

	sc->conclusive = !sc->unreliable;
	if (!sc->conclusive)
		return 0;	/* the word stays as it was: nothing started */
	if (sc->frames > SIE_CONS_COUNT_MASK - 1) {
		sc->conclusive = false;
		return 0;
	}
	if (!sc->frames) {
		to = inst->forward ? SIE_CONS_ACTIVE : SIE_CONS_OFF;
		atomic_set(inst->word, sie_word(to, 0));
		inst->end_ns = ktime_get_ns();
	} else {
		to = inst->forward ? SIE_CONS_PENDING : SIE_CONS_REVERTING;
		atomic_set(inst->word, sie_word(to, sc->frames));
	}
	return 0;
}

/* ---- transitions (process context, inst->lock held) ---- */

static void sie_cons_disarm(struct sie_cons_inst *inst)
{
	unsigned int i;

	for (i = 0; i < inst->nprobes; i++)
		unregister_kprobe(&inst->probes[i].kp);	/* waits for running handlers */
	kfree(inst->probes);
	inst->probes = NULL;
	inst->nprobes = 0;
}

/*
 * The counting probes stay registered for the instance's lifetime and are only enabled for a
 * transition: unregistering and re-registering them at a hot `ret` for every transition crashed
 * the guest (a stale kprobe with a NULL single-step slot was hit right after a new
 * registration reused the freed memory).
 */
static void sie_cons_disable(struct sie_cons_inst *inst)
{
	unsigned int i;

	for (i = 0; i < inst->nprobes; i++)
		disable_kprobe(&inst->probes[i].kp);
}

static void sie_cons_finish(struct sie_cons_inst *inst, enum sie_cons_result res)
{
	lockdep_assert_held(&inst->lock);
	if (!inst->running)
		return;
	inst->running = false;
	inst->result = res;
	sie_cons_disable(inst);
	/* Not the _sync variants: these works take inst->lock; they see !running and return. */
	cancel_delayed_work(&inst->timeout_work);
	cancel_delayed_work(&inst->rescan_work);
	pr_info("sie_consistency: instance %u %s transition %s, %llu us\n", inst->id,
		inst->forward ? "forward" : "reverse", sie_cons_result_names[res],
		inst->end_ns ? (inst->end_ns - inst->start_ns) / 1000 : 0);
}

static int sie_cons_arm(struct sie_cons_inst *inst)
{
	unsigned int i, j, n = 0, total = 0;
	int ret;

	if (inst->probes) {
		for (i = 0; i < inst->nprobes; i++) {
			ret = enable_kprobe(&inst->probes[i].kp);
			if (ret) {
				sie_cons_disable(inst);
				return ret;
			}
		}
		return 0;
	}
	for (i = 0; i < inst->nspans; i++)
		total += 1 + inst->spans[i].nexits;
	inst->probes = kcalloc(total, sizeof(*inst->probes), GFP_KERNEL);
	if (!inst->probes)
		return -ENOMEM;
	for (i = 0; i < inst->nspans; i++) {
		const struct sie_cons_span *s = &inst->spans[i];

		inst->probes[n].kp.addr = (kprobe_opcode_t *)s->entry;
		inst->probes[n].kp.pre_handler = sie_cons_guard;
		inst->probes[n++].inst = inst;
		for (j = 0; j < s->nexits; j++) {
			inst->probes[n].kp.addr = (kprobe_opcode_t *)s->exits[j];
			inst->probes[n].kp.pre_handler = sie_cons_unguard;
			inst->probes[n++].inst = inst;
		}
	}
	for (i = 0; i < total; i++) {
		ret = register_kprobe(&inst->probes[i].kp);
		if (ret) {
			pr_err("sie_consistency: instance %u: kprobe at %px: %d\n", inst->id,
			       inst->probes[i].kp.addr, ret);
			inst->nprobes = i;
			sie_cons_disarm(inst);
			return ret;
		}
	}
	inst->nprobes = total;
	return 0;
}

/* One stop_machine scan. Returns true when the transition ended (instantly). */
static bool sie_cons_try_scan(struct sie_cons_inst *inst)
{
	struct sie_cons_scan sc = { .inst = inst };
	int ret;

	lockdep_assert_held(&inst->lock);
	ret = stop_machine(sie_cons_scan_fn, &sc, NULL);
	inst->scans++;
	inst->unreliable = sc.unreliable;
	if (ret || !sc.conclusive) {
		/* Retried until the timeout work ends the transition. */
		queue_delayed_work(system_wq, &inst->rescan_work,
				   msecs_to_jiffies(SIE_CONS_RESCAN_MS));
		return false;
	}
	inst->frames = sc.frames;
	inst->nblockers = sc.nblockers;
	memcpy(inst->blockers, sc.blockers, sizeof(sc.blockers));
	if (!sc.frames) {
		sie_cons_finish(inst, SIE_RES_INSTANT);
		return true;
	}
	return false;
}

static int sie_cons_begin(struct sie_cons_inst *inst, bool forward, u32 timeout_ms)
{
	u32 st = sie_word_state(atomic_read(inst->word));
	int ret;

	lockdep_assert_held(&inst->lock);
	if (inst->running)
		return -EBUSY;
	if (forward ? st != SIE_CONS_OFF : st != SIE_CONS_ACTIVE)
		return -EALREADY;
	inst->forward = forward;
	inst->result = SIE_RES_RUNNING;
	inst->start_ns = ktime_get_ns();
	inst->end_ns = 0;
	inst->scans = inst->frames = inst->unreliable = inst->nblockers = 0;
	inst->deadline_ns = inst->start_ns + (u64)timeout_ms * NSEC_PER_MSEC;
	ret = sie_cons_arm(inst);
	if (ret) {
		inst->result = SIE_RES_NONE;
		return ret;
	}
	inst->running = true;
	queue_delayed_work(system_wq, &inst->timeout_work, msecs_to_jiffies(timeout_ms));
	sie_cons_try_scan(inst);
	return 0;
}

/* Ends a running transition without flipping: forward -> off, reverse -> stays active. */
static void sie_cons_timeout_fn(struct work_struct *work)
{
	struct sie_cons_inst *inst =
		container_of(to_delayed_work(work), struct sie_cons_inst, timeout_work);
	int old, new;
	u32 st;

	mutex_lock(&inst->lock);
	if (!inst->running)
		goto out;
	old = atomic_read(inst->word);
	do {
		st = sie_word_state(old);
		if (st != SIE_CONS_PENDING && st != SIE_CONS_REVERTING)
			break;
		new = sie_word(st == SIE_CONS_PENDING ? SIE_CONS_OFF : SIE_CONS_ACTIVE, 0);
	} while (!atomic_try_cmpxchg(inst->word, &old, new));
	/*
	 * Flipped by the last unguard just before we got here (its done work is queued behind
	 * us): that is a success. Otherwise we rolled back, or no scan was ever conclusive.
	 */
	if (st == (inst->forward ? SIE_CONS_ACTIVE : SIE_CONS_OFF))
		sie_cons_finish(inst, SIE_RES_DONE);
	else
		sie_cons_finish(inst, SIE_RES_TIMEOUT);
out:
	mutex_unlock(&inst->lock);
}

static void sie_cons_rescan_fn(struct work_struct *work)
{
	struct sie_cons_inst *inst =
		container_of(to_delayed_work(work), struct sie_cons_inst, rescan_work);

	mutex_lock(&inst->lock);
	if (inst->running && ktime_get_ns() < inst->deadline_ns)
		sie_cons_try_scan(inst);
	mutex_unlock(&inst->lock);
}

static void sie_cons_done_fn(struct work_struct *work)
{
	struct sie_cons_inst *inst = container_of(work, struct sie_cons_inst, done_work);

	mutex_lock(&inst->lock);
	sie_cons_finish(inst, SIE_RES_DONE);
	mutex_unlock(&inst->lock);
}

static void sie_cons_done_irq_fn(struct irq_work *iw)
{
	struct sie_cons_inst *inst = container_of(iw, struct sie_cons_inst, done_irq_work);

	queue_work(system_wq, &inst->done_work);
}

/* ---- instances ---- */

static int sie_cons_status_show(struct seq_file *m, void *v)
{
	struct sie_cons_inst *inst = m->private;
	int w = atomic_read(inst->word);
	u64 start = READ_ONCE(inst->start_ns), end = READ_ONCE(inst->end_ns);
	unsigned int i, nb = READ_ONCE(inst->nblockers);

	seq_printf(m, "state %s\n", sie_cons_state_names[sie_word_state(w) & 3]);
	seq_printf(m, "count %u\n", sie_word_count(w));
	seq_printf(m, "result %s\n", sie_cons_result_names[READ_ONCE(inst->result)]);
	seq_printf(m, "direction %s\n", inst->forward ? "forward" : "reverse");
	seq_printf(m, "scans %u\n", READ_ONCE(inst->scans));
	seq_printf(m, "frames %u\n", READ_ONCE(inst->frames));
	seq_printf(m, "unreliable %u\n", READ_ONCE(inst->unreliable));
	seq_puts(m, "blocking ");
	for (i = 0; i < nb && i < SIE_CONS_MAX_BLOCKERS; i++)
		seq_printf(m, "%s%d", i ? "," : "", inst->blockers[i]);
	seq_puts(m, nb ? "\n" : "-\n");
	seq_printf(m, "start_ns %llu\n", start);
	seq_printf(m, "end_ns %llu\n", end);
	seq_printf(m, "elapsed_ns %llu\n", end >= start && end ? end - start : 0);
	seq_printf(m, "spans %u\n", inst->nspans);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(sie_cons_status);

static struct sie_cons_inst *sie_cons_get_or_create(u32 id)
{
	struct sie_cons_inst *inst = sie_cons_insts[id];
	char name[16];

	lockdep_assert_held(&sie_cons_lock);
	if (inst)
		return inst;
	inst = kzalloc(sizeof(*inst), GFP_KERNEL);
	if (!inst)
		return ERR_PTR(-ENOMEM);
	inst->id = id;
	inst->word = &sie_cons_words[id];
	atomic_set(inst->word, sie_word(SIE_CONS_OFF, 0));
	mutex_init(&inst->lock);
	INIT_DELAYED_WORK(&inst->timeout_work, sie_cons_timeout_fn);
	INIT_DELAYED_WORK(&inst->rescan_work, sie_cons_rescan_fn);
	INIT_WORK(&inst->done_work, sie_cons_done_fn);
	init_irq_work(&inst->done_irq_work, sie_cons_done_irq_fn);
	snprintf(name, sizeof(name), "%u", id);
	inst->dir = debugfs_create_dir(name, sie_cons_dir);
	debugfs_create_file("status", 0400, inst->dir, inst, &sie_cons_status_fops);
	sie_cons_insts[id] = inst;
	return inst;
}

/*
 * Aborts whatever runs and frees the instance; the gate closes (original value). Called with
 * sie_cons_lock held and the instance already unlinked from the table.
 */
static void sie_cons_destroy(struct sie_cons_inst *inst)
{
	mutex_lock(&inst->lock);
	atomic_set(inst->word, sie_word(SIE_CONS_OFF, 0));
	sie_cons_finish(inst, SIE_RES_REMOVED);
	sie_cons_disarm(inst);	/* unregistered: no more irq_work */
	mutex_unlock(&inst->lock);
	irq_work_sync(&inst->done_irq_work);
	cancel_work_sync(&inst->done_work);
	cancel_delayed_work_sync(&inst->timeout_work);
	cancel_delayed_work_sync(&inst->rescan_work);
	debugfs_remove_recursive(inst->dir);	/* waits for status readers */
	kfree(inst);
}

static int sie_cons_add_span(struct sie_cons_inst *inst, const u64 *v, int n)
{
	struct sie_cons_span *s;
	unsigned int i;
	int j;

	lockdep_assert_held(&inst->lock);
	if (inst->running)
		return -EBUSY;
	if (inst->nspans >= SIE_CONS_MAX_SPANS)
		return -ENOSPC;
	sie_cons_disarm(inst);	/* the probe set changes: registered again at the next begin */
	/* v: start end entry exit... */
	if (n < 4 || n - 3 > SIE_CONS_MAX_EXITS || v[0] >= v[1] || v[2] < v[0] || v[2] >= v[1])
		return -EINVAL;
	/* Entry and exits must be probe-able text: register_kprobe() checks that at begin. */
	/* Non-overlapping: a frame must belong to one span, an exit decrement to one frame. */
	for (i = 0; i < inst->nspans; i++)
		if (v[0] < inst->spans[i].end && inst->spans[i].start < v[1])
			return -EEXIST;
	s = &inst->spans[inst->nspans];
	s->start = v[0];
	s->end = v[1];
	s->entry = v[2];
	s->nexits = n - 3;
	for (j = 3; j < n; j++)
		s->exits[j - 3] = v[j];
	inst->nspans++;
	return 0;
}

/* ---- control file ---- */

static int sie_cons_command(char *cmd)
{
	char *argv[4 + SIE_CONS_MAX_EXITS];
	u64 v[ARRAY_SIZE(argv)];
	struct sie_cons_inst *inst;
	int argc, i, ret;
	u32 id;

	argc = sie_ctl_split(cmd, argv, ARRAY_SIZE(argv));
	if (argc < 0)
		return argc;
	if (argc < 2)
		return -EINVAL;
	for (i = 1; i < argc; i++)
		if (kstrtou64(argv[i], 0, &v[i]))
			return -EINVAL;
	if (v[1] >= SIE_CONS_MAX_ID)
		return -EINVAL;
	id = v[1];

	mutex_lock(&sie_cons_lock);
	if (!strcmp(argv[0], "remove") && argc == 2) {
		inst = sie_cons_insts[id];
		sie_cons_insts[id] = NULL;
		ret = inst ? 0 : -ENOENT;
		if (inst)
			sie_cons_destroy(inst);
		goto out;
	}
	if (!strcmp(argv[0], "span")) {
		inst = sie_cons_get_or_create(id);
		if (IS_ERR(inst)) {
			ret = PTR_ERR(inst);
			goto out;
		}
		mutex_lock(&inst->lock);
		ret = sie_cons_add_span(inst, &v[2], argc - 2);
		mutex_unlock(&inst->lock);
		goto out;
	}
	if ((!strcmp(argv[0], "begin") || !strcmp(argv[0], "revert")) && argc == 3) {
		inst = sie_cons_insts[id];
		if (!inst) {
			ret = -ENOENT;
			goto out;
		}
		if (!v[2] || v[2] > SIE_CONS_MAX_TIMEOUT_MS) {
			ret = -EINVAL;
			goto out;
		}
		mutex_lock(&inst->lock);
		ret = sie_cons_begin(inst, argv[0][0] == 'b', v[2]);
		mutex_unlock(&inst->lock);
		goto out;
	}
	ret = -EINVAL;
out:
	mutex_unlock(&sie_cons_lock);
	return ret;
}

static ssize_t sie_cons_control_write(struct file *file, const char __user *ubuf, size_t len,
				      loff_t *ppos)
{
	char buf[512], *cmd = sie_ctl_copy(buf, sizeof(buf), ubuf, len);
	int ret;

	if (IS_ERR(cmd))
		return PTR_ERR(cmd);
	ret = sie_cons_command(cmd);
	return ret ? ret : len;
}

static int sie_cons_control_show(struct seq_file *m, void *v)
{
	unsigned int id, i, j;

	mutex_lock(&sie_cons_lock);
	for (id = 0; id < SIE_CONS_MAX_ID; id++) {
		struct sie_cons_inst *inst = sie_cons_insts[id];

		if (!inst)
			continue;
		mutex_lock(&inst->lock);
		for (i = 0; i < inst->nspans; i++) {
			const struct sie_cons_span *s = &inst->spans[i];

			seq_printf(m, "span %u 0x%lx 0x%lx 0x%lx", id, s->start, s->end, s->entry);
			for (j = 0; j < s->nexits; j++)
				seq_printf(m, " 0x%lx", s->exits[j]);
			seq_putc(m, '\n');
		}
		mutex_unlock(&inst->lock);
	}
	mutex_unlock(&sie_cons_lock);
	return 0;
}

/* The control file: reading lists the table, writing one command changes it. */
DEFINE_SHOW_STORE_ATTRIBUTE(sie_cons_control);

static int __init sie_cons_init(void)
{
	int ret;

	if (!IS_ENABLED(CONFIG_HAVE_RELIABLE_STACKTRACE)) {
		pr_err("sie_consistency: needs CONFIG_HAVE_RELIABLE_STACKTRACE\n");
		return -EOPNOTSUPP;
	}
	sie_cons_dir = debugfs_create_dir("sie_consistency", NULL);
	if (IS_ERR(sie_cons_dir))
		return PTR_ERR(sie_cons_dir);
	debugfs_create_file("control", 0600, sie_cons_dir, NULL, &sie_cons_control_fops);
	ret = register_btf_kfunc_id_set(BPF_PROG_TYPE_KPROBE, &sie_cons_kfunc_set);
	if (ret) {
		pr_err("sie_consistency: register_btf_kfunc_id_set(KPROBE) = %d\n", ret);
		debugfs_remove_recursive(sie_cons_dir);
		return ret;
	}
	return 0;
}

/*
 * BPF programs that call sie_global_active() hold a module reference, so no stub reads the
 * words any more. Running transitions are aborted (probes unregistered, works cancelled).
 */
static void __exit sie_cons_exit(void)
{
	unsigned int id;

	mutex_lock(&sie_cons_lock);
	for (id = 0; id < SIE_CONS_MAX_ID; id++) {
		struct sie_cons_inst *inst = sie_cons_insts[id];

		if (!inst)
			continue;
		sie_cons_insts[id] = NULL;
		sie_cons_destroy(inst);
	}
	mutex_unlock(&sie_cons_lock);
	debugfs_remove_recursive(sie_cons_dir);
}

module_init(sie_cons_init);
module_exit(sie_cons_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("sie: global consistency model (mode 2): stop_machine scan, self-converging span counts");
