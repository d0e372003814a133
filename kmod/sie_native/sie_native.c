// SPDX-License-Identifier: GPL-2.0
/*
 * sie_native: the fixed-value fast path of Scoped Indirect Execution. When a constant's new
 * value is a plain number (no per-event policy), the update right after its Critical Span needs
 * no BPF program: a native kprobe pre_handler applies the synthesized update itself. That saves
 * the BPF dispatch (perf event + prog run + kfunc call) on every hit.
 *
 * It is as restricted as sie_kfuncs (kmod/include/sie/kfuncs.h):
 *   - the handler only touches the pt_regs of the probe it is running for (the probed frame),
 *     never sp, ip, cs, ss or flags;
 *   - memory is written only at the one cell registered with the probe (base register + disp),
 *     computed in the kernel from that frame's registers, with a non-faulting store of exactly
 *     the registered width to a canonical kernel address;
 *   - only CAP_SYS_ADMIN may configure it (debugfs, 0600).
 *
 * Control file /sys/kernel/debug/sie_native/control, one command per write(2), numbers in C
 * syntax; REG and BASE are x86-64 pt_regs names (ax bx cx dx si di bp r8..r15; BASE may also be
 * sp) or SIE_REG_* numbers; WIDTH is 1, 2, 4 or 8 bytes:
 *   probe SYMBOL OFFSET reg-set REG WIDTH VALUE    REG := VALUE
 *   probe SYMBOL OFFSET reg-add REG WIDTH VALUE    REG := REG + VALUE
 *   probe SYMBOL OFFSET reg-shl REG WIDTH VALUE    REG := REG << VALUE (VALUE < 8 * WIDTH)
 *   probe SYMBOL OFFSET flags-cmp REG WIDTH VALUE  flags := those of `cmp REG, VALUE` (the
 *                                                  arithmetic ones; every other bit kept)
 *   probe SYMBOL OFFSET flags-test REG WIDTH VALUE flags := those of `test REG, VALUE` (same)
 *   probe SYMBOL OFFSET mem-cell BASE DISP WIDTH VALUE
 *                                                  store VALUE to [BASE + DISP]
 *   probe SYMBOL OFFSET bpf PROG_FD                run a loaded, verified kprobe BPF program
 *                                                  (fd in the writer's table) on every hit
 * Any probe command may end in "mark MARK_OFFSET": the span ends at a control-flow join (path
 * token). A second kprobe at SYMBOL+MARK_OFFSET (the CS's first instruction) records the frame
 * (its stack pointer) passing through the CS; the probe then writes only for a frame so marked
 * and clears the mark, so the path that bypasses the CS keeps its own state (as the BPF stub's
 * sie_mark/sie_take_mark do). Apply hits without a mark are counted as bypass.
 * Any probe command may end in "disarmed": the kprobe is registered disabled (no hit, nothing
 * for the optimizer) until the next `arm`.
 *   arm                                            enable every disarmed probe, back to back
 *   value SYMBOL OFFSET VALUE                      change a probe's VALUE live
 *   remove SYMBOL OFFSET                           unregister one probe
 *   clear                                          unregister all probes
 * Register results follow x86 write semantics at WIDTH (sie_reg_merge: width 4 zero-extends,
 * widths 1 and 2 keep the upper bits), so "reg-add ax 4 V" is what `add $V, %eax` would leave.
 * Reading the file lists one line per probe:
 *   SYMBOL+0xOFFSET KIND REG WIDTH [DISP] VALUE hits=N faults=N [mark=0xOFF bypass=N] [disarmed]
 *   SYMBOL+0xOFFSET bpf prog=ID hits=N faults=N [disarmed]
 *
 * `sie set` uses it by default for the constants it covers with equal safety (mode 0, fixed
 * value, reg/mem spans; runtime/loader/native.h), registering each probe with the shipped
 * value's result first (inert) and changing it with `value` once every probe is in place.
 *
 * The probe is a plain register_kprobe() with a pre_handler only (a post_handler would prevent
 * optimization), so the kprobes core turns it into a jump-optimized probe when the site allows.
 */
#include <linux/bpf.h>
#include <linux/capability.h>
#include <linux/debugfs.h>
#include <linux/filter.h>
#include <linux/kallsyms.h>
#include <linux/kprobes.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/percpu.h>
#include <linux/ptrace.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <asm/page.h>
#include <asm/processor.h>
#include <asm/vsyscall.h>

#include "sie/control.h"
#include "sie/kfuncs.h"
#include "sie/kstore.h"
#include "sie/kfuncs_logic.h"

/* Probes of every loaded constant together (the coverage guest check sets ~100 at once). */
#define SIE_NATIVE_MAX_PROBES 1024

enum sie_native_kind {
	SIE_NATIVE_REG_SET,
	SIE_NATIVE_REG_ADD,
	SIE_NATIVE_REG_SHL,
	SIE_NATIVE_MEM_CELL,
	SIE_NATIVE_FLAGS_CMP,
	SIE_NATIVE_FLAGS_TEST,
	SIE_NATIVE_BPF,
};

static const char *const sie_native_kind_names[] = {
	[SIE_NATIVE_REG_SET] = "reg-set",
	[SIE_NATIVE_REG_ADD] = "reg-add",
	[SIE_NATIVE_REG_SHL] = "reg-shl",
	[SIE_NATIVE_MEM_CELL] = "mem-cell",
	[SIE_NATIVE_FLAGS_CMP] = "flags-cmp",
	[SIE_NATIVE_FLAGS_TEST] = "flags-test",
	[SIE_NATIVE_BPF] = "bpf",
};

/* SIE_REG_* numbering (kfuncs.h), so user space uses one register vocabulary for both paths. */
static const struct {
	const char *name;
	size_t offset;
} sie_native_regs[] = {
	[SIE_REG_AX] = { "ax", offsetof(struct pt_regs, ax) },
	[SIE_REG_BX] = { "bx", offsetof(struct pt_regs, bx) },
	[SIE_REG_CX] = { "cx", offsetof(struct pt_regs, cx) },
	[SIE_REG_DX] = { "dx", offsetof(struct pt_regs, dx) },
	[SIE_REG_SI] = { "si", offsetof(struct pt_regs, si) },
	[SIE_REG_DI] = { "di", offsetof(struct pt_regs, di) },
	[SIE_REG_BP] = { "bp", offsetof(struct pt_regs, bp) },
	[SIE_REG_R8] = { "r8", offsetof(struct pt_regs, r8) },
	[SIE_REG_R9] = { "r9", offsetof(struct pt_regs, r9) },
	[SIE_REG_R10] = { "r10", offsetof(struct pt_regs, r10) },
	[SIE_REG_R11] = { "r11", offsetof(struct pt_regs, r11) },
	[SIE_REG_R12] = { "r12", offsetof(struct pt_regs, r12) },
	[SIE_REG_R13] = { "r13", offsetof(struct pt_regs, r13) },
	[SIE_REG_R14] = { "r14", offsetof(struct pt_regs, r14) },
	[SIE_REG_R15] = { "r15", offsetof(struct pt_regs, r15) },
	[SIE_REG_SP] = { "sp", offsetof(struct pt_regs, sp) },	/* cell base only */
};

/* Frames between a path-token probe's mark and its apply at once (one per running pass). */
#define SIE_NATIVE_MARKS 64

struct sie_native_probe {
	struct kprobe kp;
	struct kprobe mark_kp;	/* registered only when has_mark */
	bool has_mark;
	bool disarmed;		/* registered with KPROBE_FLAG_DISABLED, until `arm` */
	unsigned long mark_offset;
	unsigned long marks[SIE_NATIVE_MARKS];	/* stack pointers of marked frames, 0: free */
	u64 __percpu *bypass;
	struct list_head node;
	char symbol[KSYM_NAME_LEN];
	unsigned long offset;
	enum sie_native_kind kind;
	u8 reg;			/* SIE_REG_*: the target register, or the cell's base */
	u8 width;
	size_t reg_off;		/* offsetof(struct pt_regs, <reg>), resolved once */
	s64 disp;		/* mem-cell only */
	u64 value;		/* READ_ONCE in the handler: `value` may change it live */
	u64 __percpu *hits;
	u64 __percpu *faults;	/* bpf: runs skipped by the program's recursion guard */
	struct bpf_prog *prog;	/* bpf only: a reference held until the probe is removed */
};

static LIST_HEAD(sie_native_probes);
static unsigned int sie_native_nr_probes;
static DEFINE_MUTEX(sie_native_lock);

/* Clears the mark of the frame at sp; false when it has none (it bypassed the CS). */
static bool sie_native_take_mark(struct sie_native_probe *p, unsigned long sp)
{
	int i;

	for (i = 0; i < SIE_NATIVE_MARKS; i++)
		if (READ_ONCE(p->marks[i]) == sp && cmpxchg(&p->marks[i], sp, 0) == sp)
			return true;
	return false;
}
NOKPROBE_SYMBOL(sie_native_take_mark);

/*
 * The mark probe, at the CS's first instruction: records the frame. A full table leaves the
 * frame unmarked, so its apply counts a bypass and the shipped value stays: never a wrong one.
 */
static int sie_native_mark_pre(struct kprobe *kp, struct pt_regs *regs)
{
	struct sie_native_probe *p = container_of(kp, struct sie_native_probe, mark_kp);
	unsigned long sp = regs->sp;
	int i;

	if (user_mode(regs))
		return 0;
	for (i = 0; i < SIE_NATIVE_MARKS; i++)
		if (READ_ONCE(p->marks[i]) == sp)
			return 0;
	for (i = 0; i < SIE_NATIVE_MARKS; i++)
		if (!cmpxchg(&p->marks[i], 0, sp))
			return 0;
	return 0;
}
NOKPROBE_SYMBOL(sie_native_mark_pre);

/*
 * Module dispatch of a BPF decision: the kernel's contract for running a tracing program
 * (bpf_prog_run) without the perf-event layer between the kprobe and the program. A kprobe
 * handler runs with preemption off, so the program cannot migrate; RCU is held for its maps;
 * the program's own per-CPU guard (the one BPF trampolines use) skips a nested run, counted as
 * a fault; the run context carries a zero cookie, as a perf kprobe link without one does.
 * Returns 1 when the program moved ip, as kprobe_perf_func does (no single-step then).
 */
static int sie_native_run_bpf(struct sie_native_probe *p, struct pt_regs *regs)
{
	struct bpf_trace_run_ctx run_ctx = {};
	unsigned long ip = instruction_pointer(regs);
	struct bpf_prog *prog = p->prog;
	struct bpf_run_ctx *old;

	if (unlikely(this_cpu_inc_return(*prog->active) != 1)) {
		this_cpu_inc(*p->faults);
		goto out;
	}
	rcu_read_lock();
	old = bpf_set_run_ctx(&run_ctx.run_ctx);
	bpf_prog_run(prog, regs);
	bpf_reset_run_ctx(old);
	rcu_read_unlock();
out:
	this_cpu_dec(*prog->active);
	return ip != instruction_pointer(regs);
}
NOKPROBE_SYMBOL(sie_native_run_bpf);

/*
 * Runs on every hit with preemption disabled (int3 handler or optprobe trampoline). Every
 * decision that can be made once (register offset, kind, width) was made at registration.
 */
static int sie_native_pre(struct kprobe *kp, struct pt_regs *regs)
{
	struct sie_native_probe *p = container_of(kp, struct sie_native_probe, kp);
	unsigned long *r = (unsigned long *)((char *)regs + p->reg_off);
	u64 v = READ_ONCE(p->value);

	if (user_mode(regs))
		return 0;
	this_cpu_inc(*p->hits);
	if (p->has_mark && !sie_native_take_mark(p, regs->sp)) {
		this_cpu_inc(*p->bypass);
		return 0;
	}
	switch (p->kind) {
	case SIE_NATIVE_BPF:
		return sie_native_run_bpf(p, regs);
	case SIE_NATIVE_REG_SET:
		*r = sie_reg_merge(*r, v, p->width);
		break;
	case SIE_NATIVE_REG_ADD:
		*r = sie_reg_merge(*r, *r + v, p->width);
		break;
	case SIE_NATIVE_REG_SHL:
		*r = sie_reg_merge(*r, *r << v, p->width);
		break;
	case SIE_NATIVE_MEM_CELL:
		if (sie_store_nofault(sie_cell_address(*r, 0, 1, p->disp), v, p->width))
			this_cpu_inc(*p->faults);
		break;
	case SIE_NATIVE_FLAGS_CMP:
		/* The probe sits on the flags' consumer: it runs with the new comparison. */
		regs->flags = sie_flags_merge(regs->flags, *r, v, p->width);
		break;
	case SIE_NATIVE_FLAGS_TEST:
		regs->flags = (regs->flags & ~SIE_FLAGS_ARITH) |
			      sie_op_flags(SIE_FLAGS_OP_AND, *r, v, p->width);
		break;
	}
	return 0;
}
NOKPROBE_SYMBOL(sie_native_pre);

static u64 sie_native_sum(u64 __percpu *c)
{
	u64 sum = 0;
	int cpu;

	for_each_possible_cpu(cpu)
		sum += *per_cpu_ptr(c, cpu);
	return sum;
}

static struct sie_native_probe *sie_native_find(const char *symbol, unsigned long offset)
{
	struct sie_native_probe *p;

	list_for_each_entry(p, &sie_native_probes, node)
		if (p->offset == offset && !strcmp(p->symbol, symbol))
			return p;
	return NULL;
}

static void sie_native_free(struct sie_native_probe *p)
{
	if (p->prog)
		bpf_prog_put(p->prog);
	free_percpu(p->hits);
	free_percpu(p->faults);
	free_percpu(p->bypass);
	kfree(p);
}

/* Unregisters and frees p; after unregister_kprobe() returns no handler of it is running. */
static void sie_native_remove(struct sie_native_probe *p)
{
	list_del(&p->node);
	sie_native_nr_probes--;
	/* The mark first: a mark without its apply is harmless, an apply then sees none. */
	if (p->has_mark)
		unregister_kprobe(&p->mark_kp);
	unregister_kprobe(&p->kp);
	sie_native_free(p);
}

static void sie_native_clear(void)
{
	struct sie_native_probe *p, *tmp;

	list_for_each_entry_safe(p, tmp, &sie_native_probes, node)
		sie_native_remove(p);
}

/* A register name or SIE_REG_* number; sp only when allow_sp (it is never written). */
static int sie_native_parse_reg(const char *s, bool allow_sp, u8 *reg)
{
	unsigned int i;

	if (kstrtouint(s, 0, &i)) {
		for (i = 0; i < ARRAY_SIZE(sie_native_regs); i++)
			if (sie_native_regs[i].name && !strcmp(s, sie_native_regs[i].name))
				break;
	}
	if (i >= ARRAY_SIZE(sie_native_regs) || !sie_native_regs[i].name)
		return -EINVAL;
	if (i == SIE_REG_SP && !allow_sp)
		return -EINVAL;
	*reg = i;
	return 0;
}

static int sie_native_parse_width(const char *s, u8 *width)
{
	u32 w;

	if (kstrtou32(s, 0, &w) || !sie_width_valid(w))
		return -EINVAL;
	*width = w;
	return 0;
}

/*
 * The kprobe program behind a file descriptor of the writer. Only what a perf kprobe link
 * would run with the same context: a plain kprobe program (not multi or session, whose
 * helpers read another run context) that does not override the probed function's return.
 */
static int sie_native_get_prog(const char *fd_text, struct bpf_prog **out)
{
	struct bpf_prog *prog;
	u32 fd;

	if (kstrtou32(fd_text, 0, &fd))
		return -EINVAL;
	prog = bpf_prog_get_type_dev(fd, BPF_PROG_TYPE_KPROBE, false);
	if (IS_ERR(prog))
		return PTR_ERR(prog);
	if (prog->kprobe_override || prog->expected_attach_type != 0 || prog->sleepable) {
		bpf_prog_put(prog);
		return -EINVAL;
	}
	*out = prog;
	return 0;
}

/* probe SYMBOL OFFSET KIND ...: argv[0] is "probe". */
static int sie_native_add(int argc, char **argv)
{
	struct sie_native_probe *p;
	int kind, ret = -EINVAL;
	unsigned long offset;

	unsigned long mark_offset = 0;
	bool has_mark = false, disarmed = false;
	int base;

	if (argc < 4 || kstrtoul(argv[2], 0, &offset) || strlen(argv[1]) >= KSYM_NAME_LEN)
		return -EINVAL;
	kind = match_string(sie_native_kind_names, ARRAY_SIZE(sie_native_kind_names), argv[3]);
	if (kind < 0)
		return -EINVAL;
	base = kind == SIE_NATIVE_BPF ? 5 : 7 + (kind == SIE_NATIVE_MEM_CELL);
	if (argc > base && !strcmp(argv[argc - 1], "disarmed")) {
		disarmed = true;
		argc--;
	}
	if (argc == base + 2 && !strcmp(argv[base], "mark")) {
		if (kstrtoul(argv[base + 1], 0, &mark_offset) || mark_offset >= offset)
			return -EINVAL;
		has_mark = true;
	} else if (argc != base) {
		return -EINVAL;
	}
	if (sie_native_find(argv[1], offset))
		return -EEXIST;
	if (sie_native_nr_probes >= SIE_NATIVE_MAX_PROBES)
		return -ENOSPC;

	p = kzalloc(sizeof(*p), GFP_KERNEL);
	if (!p)
		return -ENOMEM;
	p->hits = alloc_percpu(u64);
	p->faults = alloc_percpu(u64);
	p->bypass = alloc_percpu(u64);
	if (!p->hits || !p->faults || !p->bypass) {
		ret = -ENOMEM;
		goto err;
	}
	strscpy(p->symbol, argv[1], sizeof(p->symbol));
	p->offset = offset;
	p->kind = kind;
	if (kind == SIE_NATIVE_BPF) {
		ret = sie_native_get_prog(argv[4], &p->prog);
		if (ret)
			goto err;
		ret = -EINVAL;
	} else if (kind == SIE_NATIVE_MEM_CELL) {
		/* mem-cell BASE DISP WIDTH VALUE */
		if (sie_native_parse_reg(argv[4], true, &p->reg) || kstrtos64(argv[5], 0, &p->disp) ||
		    sie_native_parse_width(argv[6], &p->width) || kstrtou64(argv[7], 0, &p->value))
			goto err;
	} else {
		/* reg-* REG WIDTH VALUE */
		if (sie_native_parse_reg(argv[4], false, &p->reg) ||
		    sie_native_parse_width(argv[5], &p->width) || kstrtou64(argv[6], 0, &p->value))
			goto err;
		if (kind == SIE_NATIVE_REG_SHL && p->value >= 8 * p->width)
			goto err;
	}
	p->reg_off = sie_native_regs[p->reg].offset;

	/* Fully configured before registering: the handler may run as soon as this returns. */
	p->kp.symbol_name = p->symbol;
	p->kp.offset = offset;
	p->kp.pre_handler = sie_native_pre;
	p->has_mark = has_mark;
	p->mark_offset = mark_offset;
	p->disarmed = disarmed;
	p->kp.flags = disarmed ? KPROBE_FLAG_DISABLED : 0;
	ret = register_kprobe(&p->kp);
	if (ret)
		goto err;
	/* The apply first: until the mark probe is in, every hit is a bypass (inert). */
	if (has_mark) {
		p->mark_kp.symbol_name = p->symbol;
		p->mark_kp.offset = mark_offset;
		p->mark_kp.pre_handler = sie_native_mark_pre;
		p->mark_kp.flags = p->kp.flags;
		ret = register_kprobe(&p->mark_kp);
		if (ret) {
			unregister_kprobe(&p->kp);
			goto err;
		}
	}
	list_add_tail(&p->node, &sie_native_probes);
	sie_native_nr_probes++;
	return 0;
err:
	sie_native_free(p);
	return ret;
}

/*
 * Enables every probe registered `disarmed`, back to back. Registering a kprobe armed kicks
 * the kernel's optimizer, which holds kprobe_mutex across a tasks-RCU grace period: the next
 * registration then waits for it. Registered disarmed (nothing armed, nothing queued) and
 * enabled here, a constant's probes are all in before the optimizer's first run.
 */
static int sie_native_arm(void)
{
	struct sie_native_probe *p;
	int ret;

	list_for_each_entry(p, &sie_native_probes, node) {
		if (!p->disarmed)
			continue;
		ret = enable_kprobe(&p->kp);
		if (!ret && p->has_mark)
			ret = enable_kprobe(&p->mark_kp);
		if (ret)
			return ret;
		p->disarmed = false;
	}
	return 0;
}

static int sie_native_apply(char *cmd)
{
	struct sie_native_probe *p;
	unsigned long offset;
	char *argv[12];
	int argc;
	u64 v;

	argc = sie_ctl_split(cmd, argv, ARRAY_SIZE(argv));
	if (argc < 0)
		return argc;
	if (argc == 1 && !strcmp(argv[0], "arm"))
		return sie_native_arm();
	if (argc == 1 && !strcmp(argv[0], "clear")) {
		sie_native_clear();
		return 0;
	}
	if (argc >= 1 && !strcmp(argv[0], "probe"))
		return sie_native_add(argc, argv);
	if (argc < 3 || kstrtoul(argv[2], 0, &offset))
		return -EINVAL;
	if (argc == 3 && !strcmp(argv[0], "remove")) {
		p = sie_native_find(argv[1], offset);
		if (!p)
			return -ENOENT;
		sie_native_remove(p);
		return 0;
	}
	if (argc == 4 && !strcmp(argv[0], "value")) {
		p = sie_native_find(argv[1], offset);
		if (!p)
			return -ENOENT;
		if (kstrtou64(argv[3], 0, &v) || p->kind == SIE_NATIVE_BPF ||
		    (p->kind == SIE_NATIVE_REG_SHL && v >= 8 * p->width))
			return -EINVAL;
		WRITE_ONCE(p->value, v);
		return 0;
	}
	return -EINVAL;
}

static ssize_t sie_native_control_write(struct file *file, const char __user *ubuf, size_t len,
					loff_t *ppos)
{
	char buf[256], *cmd = sie_ctl_copy(buf, sizeof(buf), ubuf, len);
	int ret;

	if (IS_ERR(cmd))
		return PTR_ERR(cmd);
	mutex_lock(&sie_native_lock);
	ret = sie_native_apply(cmd);
	mutex_unlock(&sie_native_lock);
	return ret ? ret : len;
}

static int sie_native_control_show(struct seq_file *m, void *v)
{
	struct sie_native_probe *p;

	mutex_lock(&sie_native_lock);
	list_for_each_entry(p, &sie_native_probes, node) {
		if (p->kind == SIE_NATIVE_BPF) {
			seq_printf(m, "%s+0x%lx bpf prog=%u hits=%llu faults=%llu%s\n", p->symbol,
				   p->offset, p->prog->aux->id, sie_native_sum(p->hits),
				   sie_native_sum(p->faults), p->disarmed ? " disarmed" : "");
			continue;
		}
		seq_printf(m, "%s+0x%lx %s %s %u ", p->symbol, p->offset,
			   sie_native_kind_names[p->kind], sie_native_regs[p->reg].name, p->width);
		if (p->kind == SIE_NATIVE_MEM_CELL)
			seq_printf(m, "%lld ", p->disp);
		seq_printf(m, "0x%llx hits=%llu faults=%llu", READ_ONCE(p->value),
			   sie_native_sum(p->hits), sie_native_sum(p->faults));
		if (p->has_mark)
			seq_printf(m, " mark=0x%lx bypass=%llu", p->mark_offset,
				   sie_native_sum(p->bypass));
		if (p->disarmed)
			seq_puts(m, " disarmed");
		seq_putc(m, '\n');
	}
	mutex_unlock(&sie_native_lock);
	return 0;
}

/* The control file: reading lists the table, writing one command changes it. */
DEFINE_SHOW_STORE_ATTRIBUTE(sie_native_control);

static struct dentry *sie_native_dir;

static int __init sie_native_init(void)
{
	sie_native_dir = debugfs_create_dir("sie_native", NULL);
	if (IS_ERR(sie_native_dir))
		return PTR_ERR(sie_native_dir);
	debugfs_create_file("control", 0600, sie_native_dir, NULL, &sie_native_control_fops);
	return 0;
}

static void __exit sie_native_exit(void)
{
	/* No new commands after this; then every probe goes before the handler's text does. */
	debugfs_remove_recursive(sie_native_dir);
	mutex_lock(&sie_native_lock);
	sie_native_clear();
	mutex_unlock(&sie_native_lock);
}

module_init(sie_native_init);
module_exit(sie_native_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("sie: native kprobes applying fixed-value constant updates (no BPF per hit)");
