/* SPDX-License-Identifier: GPL-2.0 */
/*
 * BPF-side declarations of the sie_kfuncs module's kfuncs. The contract (argument meaning,
 * widths, errors, the registered-site requirement) is documented in kmod/include/sie/kfuncs.h,
 * included here for the register numbers and flag bits. Include after vmlinux.h. Callable from
 * SEC("kprobe") programs only, with the program's own ctx as `regs`; the program fails to load
 * when sie_kfuncs.ko is not loaded.
 */
#ifndef SIE_KFUNCS_BPF_H
#define SIE_KFUNCS_BPF_H

#include "sie/kfuncs.h"

extern int sie_set_reg(struct pt_regs *regs, __u32 reg, __u64 val, __u32 width) __ksym;
extern int sie_set_flags(struct pt_regs *regs, __u64 lhs, __u64 rhs, __u32 width) __ksym;
extern int sie_set_flags_op(struct pt_regs *regs, __u32 op, __u64 lhs, __u64 rhs,
			    __u32 width) __ksym;
extern int sie_write_cell(struct pt_regs *regs, __u32 cell_id, __u64 val) __ksym;

#endif /* SIE_KFUNCS_BPF_H */
