// SPDX-License-Identifier: GPL-2.0
/*
 * sie_kfuncs: restricted kfuncs for sie's BPF kprobe programs. The contract (who may call them,
 * what they write, the control file syntax) is in kmod/include/sie/kfuncs.h.
 *
 * Unlike an unrestricted "write any kernel address" kfunc, these can only:
 *   - write a general register or the arithmetic flags of the probed frame, and
 *   - store to a memory cell whose address the KERNEL computes from a descriptor that
 *     CAP_SYS_ADMIN user space registered for one exact probe address,
 * and only when the probe stopped at a site that user space registered. The verifier guarantees
 * that `regs` is the program's own ctx (see kfuncs.h); the module checks the site at run time.
 *
 * Sites and cells live in one immutable table swapped under RCU: the kfuncs run in kprobe
 * context (int3 exception, optprobe trampoline or ftrace handler) where they only read it.
 */
#include <linux/bpf.h>
#include <linux/btf.h>
#include <linux/btf_ids.h>
#include <linux/capability.h>
#include <linux/debugfs.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/ptrace.h>
#include <linux/rcupdate.h>
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

struct sie_cell {
	bool valid;
	u8 base;
	u8 index;
	u8 scale;
	u8 width;
	s64 disp;
	unsigned long site;
};

struct sie_table {
	struct rcu_head rcu;
	unsigned int nr_sites;
	unsigned long sites[SIE_MAX_SITES];
	struct sie_cell cells[SIE_MAX_CELLS];
};

static struct sie_table __rcu *sie_table;
static DEFINE_MUTEX(sie_table_lock);

/* The probed code's register `reg` (SIE_REG_*), or NULL. sp only if allow_sp (never written). */
static unsigned long *sie_reg_ptr(struct pt_regs *regs, u32 reg, bool allow_sp)
{
	switch (reg) {
	case SIE_REG_AX: return &regs->ax;
	case SIE_REG_BX: return &regs->bx;
	case SIE_REG_CX: return &regs->cx;
	case SIE_REG_DX: return &regs->dx;
	case SIE_REG_SI: return &regs->si;
	case SIE_REG_DI: return &regs->di;
	case SIE_REG_BP: return &regs->bp;
	case SIE_REG_R8: return &regs->r8;
	case SIE_REG_R9: return &regs->r9;
	case SIE_REG_R10: return &regs->r10;
	case SIE_REG_R11: return &regs->r11;
	case SIE_REG_R12: return &regs->r12;
	case SIE_REG_R13: return &regs->r13;
	case SIE_REG_R14: return &regs->r14;
	case SIE_REG_R15: return &regs->r15;
	case SIE_REG_SP: return allow_sp ? &regs->sp : NULL;
	default: return NULL;
	}
}

/* The probe address this frame stopped at, if it is a kernel kprobe frame at a registered site. */
static bool sie_at_site(const struct sie_table *t, struct pt_regs *regs, unsigned long *site)
{
	unsigned long addr = regs->ip - SIE_INT3_INSN_SIZE;
	unsigned int i;

	if (!t || user_mode(regs))
		return false;
	for (i = 0; i < t->nr_sites; i++) {
		if (t->sites[i] == addr) {
			*site = addr;
			return true;
		}
	}
	return false;
}

__bpf_kfunc_start_defs();

__bpf_kfunc int sie_set_reg(struct pt_regs *regs, u32 reg, u64 val, u32 width)
{
	unsigned long *r, site;
	int ret = -EPERM;

	if (!sie_width_valid(width))
		return -EINVAL;
	r = sie_reg_ptr(regs, reg, false);
	if (!r)
		return -EINVAL;
	rcu_read_lock();
	if (sie_at_site(rcu_dereference(sie_table), regs, &site)) {
		*r = sie_reg_merge(*r, val, width);
		ret = 0;
	}
	rcu_read_unlock();
	return ret;
}

__bpf_kfunc int sie_set_flags(struct pt_regs *regs, u64 lhs, u64 rhs, u32 width)
{
	unsigned long site;
	int ret = -EPERM;

	if (!sie_width_valid(width))
		return -EINVAL;
	rcu_read_lock();
	if (sie_at_site(rcu_dereference(sie_table), regs, &site)) {
		regs->flags = sie_flags_merge(regs->flags, lhs, rhs, width);
		ret = 0;
	}
	rcu_read_unlock();
	return ret;
}

__bpf_kfunc int sie_set_flags_op(struct pt_regs *regs, u32 op, u64 lhs, u64 rhs, u32 width)
{
	unsigned long site;
	int ret = -EPERM;

	if (!sie_width_valid(width) || op >= SIE_FLAGS_OP_NR)
		return -EINVAL;
	rcu_read_lock();
	if (sie_at_site(rcu_dereference(sie_table), regs, &site)) {
		regs->flags = (regs->flags & ~SIE_FLAGS_ARITH) | sie_op_flags(op, lhs, rhs, width);
		ret = 0;
	}
	rcu_read_unlock();
	return ret;
}

__bpf_kfunc int sie_write_cell(struct pt_regs *regs, u32 cell_id, u64 val)
{
	const struct sie_table *t;
	const struct sie_cell *c;
	unsigned long site, base = 0, index = 0, *r;
	int ret;

	if (cell_id >= SIE_MAX_CELLS)
		return -ENOENT;
	rcu_read_lock();
	t = rcu_dereference(sie_table);
	c = t ? &t->cells[cell_id] : NULL;
	if (!c || !c->valid) {
		ret = -ENOENT;
		goto out;
	}
	if (!sie_at_site(t, regs, &site) || site != c->site) {
		ret = -EPERM;
		goto out;
	}
	if (c->base != SIE_REG_NONE) {
		r = sie_reg_ptr(regs, c->base, true);
		base = r ? *r : 0;
	}
	if (c->index != SIE_REG_NONE) {
		r = sie_reg_ptr(regs, c->index, true);
		index = r ? *r : 0;
	}
	ret = sie_store_nofault(sie_cell_address(base, index, c->scale, c->disp), val, c->width);
out:
	rcu_read_unlock();
	return ret;
}

__bpf_kfunc_end_defs();

BTF_KFUNCS_START(sie_kfunc_ids)
BTF_ID_FLAGS(func, sie_set_reg)
BTF_ID_FLAGS(func, sie_set_flags)
BTF_ID_FLAGS(func, sie_set_flags_op)
BTF_ID_FLAGS(func, sie_write_cell)
BTF_KFUNCS_END(sie_kfunc_ids)

static const struct btf_kfunc_id_set sie_kfunc_set = {
	.owner = THIS_MODULE,
	.set = &sie_kfunc_ids,
};

/* ---- control file: registering sites and cells from user space ---- */

static bool sie_reg_arg_ok(u64 reg)
{
	return reg == SIE_REG_NONE || reg < SIE_REG_NR_WRITABLE || reg == SIE_REG_SP;
}

static int sie_add_site(struct sie_table *t, unsigned long addr)
{
	unsigned int i;

	for (i = 0; i < t->nr_sites; i++)
		if (t->sites[i] == addr)
			return 0;
	if (t->nr_sites >= SIE_MAX_SITES)
		return -ENOSPC;
	t->sites[t->nr_sites++] = addr;
	return 0;
}

/*
 * Forgets site addr and every cell bound to it: from then on the kfuncs refuse (-EPERM/-ENOENT)
 * at that address, so a program left attached there (by anyone) changes nothing.
 */
static int sie_remove_site(struct sie_table *t, unsigned long addr)
{
	unsigned int i, n = 0;
	bool found = false;

	for (i = 0; i < t->nr_sites; i++) {
		if (t->sites[i] == addr) {
			found = true;
			continue;
		}
		t->sites[n++] = t->sites[i];
	}
	for (i = n; i < t->nr_sites; i++)
		t->sites[i] = 0;
	t->nr_sites = n;
	for (i = 0; i < SIE_MAX_CELLS; i++)
		if (t->cells[i].valid && t->cells[i].site == addr)
			memset(&t->cells[i], 0, sizeof(t->cells[i]));
	return found ? 0 : -ENOENT;
}

/* Applies one command to the (private) copy t. */
static int sie_apply(struct sie_table *t, char *cmd)
{
	char *argv[8];
	u64 v[8];
	s64 disp;
	int argc, i;

	argc = sie_ctl_split(cmd, argv, ARRAY_SIZE(argv));
	if (argc < 0)
		return argc;
	if (argc == 1 && !strcmp(argv[0], "clear")) {
		memset(t->sites, 0, sizeof(t->sites));
		memset(t->cells, 0, sizeof(t->cells));
		t->nr_sites = 0;
		return 0;
	}
	if (argc == 2 && !strcmp(argv[0], "site")) {
		if (kstrtou64(argv[1], 0, &v[1]))
			return -EINVAL;
		return sie_add_site(t, v[1]);
	}
	if (argc == 2 && !strcmp(argv[0], "unsite")) {
		if (kstrtou64(argv[1], 0, &v[1]))
			return -EINVAL;
		return sie_remove_site(t, v[1]);
	}
	if (argc == 8 && !strcmp(argv[0], "cell")) {
		struct sie_cell *c;
		int ret;

		for (i = 1; i < 8; i++)
			if (i != 6 && kstrtou64(argv[i], 0, &v[i]))
				return -EINVAL;
		if (kstrtos64(argv[6], 0, &disp))
			return -EINVAL;
		if (v[1] >= SIE_MAX_CELLS || !sie_reg_arg_ok(v[3]) || !sie_reg_arg_ok(v[4]) ||
		    (v[5] != 1 && v[5] != 2 && v[5] != 4 && v[5] != 8) || !sie_width_valid(v[7]))
			return -EINVAL;
		ret = sie_add_site(t, v[2]);
		if (ret)
			return ret;
		c = &t->cells[v[1]];
		c->site = v[2];
		c->base = v[3];
		c->index = v[4];
		c->scale = v[5];
		c->disp = disp;
		c->width = v[7];
		c->valid = true;
		return 0;
	}
	return -EINVAL;
}

static ssize_t sie_control_write(struct file *file, const char __user *ubuf, size_t len,
				 loff_t *ppos)
{
	struct sie_table *old, *t;
	char buf[256], *cmd = sie_ctl_copy(buf, sizeof(buf), ubuf, len);
	int ret;

	if (IS_ERR(cmd))
		return PTR_ERR(cmd);

	mutex_lock(&sie_table_lock);
	old = rcu_dereference_protected(sie_table, lockdep_is_held(&sie_table_lock));
	t = old ? kmemdup(old, sizeof(*t), GFP_KERNEL) : kzalloc(sizeof(*t), GFP_KERNEL);
	if (!t) {
		ret = -ENOMEM;
		goto out;
	}
	ret = sie_apply(t, cmd);
	if (ret) {
		kfree(t);
		goto out;
	}
	rcu_assign_pointer(sie_table, t);
	if (old)
		kfree_rcu(old, rcu);
out:
	mutex_unlock(&sie_table_lock);
	return ret ? ret : len;
}

static int sie_control_show(struct seq_file *m, void *v)
{
	const struct sie_table *t;
	unsigned int i;

	mutex_lock(&sie_table_lock);
	t = rcu_dereference_protected(sie_table, lockdep_is_held(&sie_table_lock));
	for (i = 0; t && i < t->nr_sites; i++)
		seq_printf(m, "site 0x%lx\n", t->sites[i]);
	for (i = 0; t && i < SIE_MAX_CELLS; i++) {
		const struct sie_cell *c = &t->cells[i];

		if (c->valid)
			seq_printf(m, "cell %u 0x%lx %u %u %u %lld %u\n", i, c->site, c->base,
				   c->index, c->scale, c->disp, c->width);
	}
	mutex_unlock(&sie_table_lock);
	return 0;
}

/* The control file: reading lists the table, writing one command changes it. */
DEFINE_SHOW_STORE_ATTRIBUTE(sie_control);

static struct dentry *sie_kfuncs_dir;

static int __init sie_kfuncs_init(void)
{
	int ret;

	sie_kfuncs_dir = debugfs_create_dir("sie_kfuncs", NULL);
	if (IS_ERR(sie_kfuncs_dir))
		return PTR_ERR(sie_kfuncs_dir);
	debugfs_create_file("control", 0600, sie_kfuncs_dir, NULL, &sie_control_fops);

	ret = register_btf_kfunc_id_set(BPF_PROG_TYPE_KPROBE, &sie_kfunc_set);
	if (ret) {
		pr_err("sie_kfuncs: register_btf_kfunc_id_set(KPROBE) = %d\n", ret);
		debugfs_remove_recursive(sie_kfuncs_dir);
		return ret;
	}
	return 0;
}

static void __exit sie_kfuncs_exit(void)
{
	struct sie_table *t;

	/* Programs calling the kfuncs hold a module reference, so none runs any more. */
	debugfs_remove_recursive(sie_kfuncs_dir);
	mutex_lock(&sie_table_lock);
	t = rcu_dereference_protected(sie_table, lockdep_is_held(&sie_table_lock));
	RCU_INIT_POINTER(sie_table, NULL);
	mutex_unlock(&sie_table_lock);
	synchronize_rcu();
	kfree(t);
}

module_init(sie_kfuncs_init);
module_exit(sie_kfuncs_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("sie: restricted kfuncs (register, flags, registered memory cells) for kprobe BPF programs");
