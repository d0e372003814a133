/* SPDX-License-Identifier: GPL-2.0 */
/*
 * sie_kfuncs: the contract of the kfuncs that sie's BPF kprobe programs call to make a new value
 * of a constant take effect at a probe placed right after a Critical Span (CS). Shared by the
 * module (kmod/sie_kfuncs), the BPF programs (bpf/include/sie/kfuncs.bpf.h declares the
 * __ksym externs) and user space (register numbering, control file syntax). Plain C, no includes:
 * it only defines numbers.
 *
 * Who may call them
 *   The kfuncs are registered for BPF_PROG_TYPE_KPROBE only (6.10+ has the kprobe kfunc hook).
 *   Their first argument is declared `struct pt_regs *`, which is the kprobe program context type,
 *   so the verifier classifies it as KF_ARG_PTR_TO_CTX and accepts ONLY the program's own,
 *   unmodified ctx pointer (reg->type == PTR_TO_CTX, fixed offset 0, no variable offset;
 *   kernel/bpf/verifier.c check_kfunc_args() and check_func_arg_reg_off()). A program cannot pass
 *   a pointer it made up, a map value, or ctx + 8.
 *
 *   BPF_PROG_TYPE_KPROBE programs also run at kretprobes, uprobes and kprobe.multi (fprobe)
 *   attachments, and any CAP_BPF + CAP_PERFMON holder may load them. So the module additionally
 *   requires, at run time, that the frame is a kernel frame (!user_mode(regs)) stopped at a
 *   PROBE SITE that privileged user space (CAP_SYS_ADMIN) registered in the control file:
 *   regs->ip - SIE_INT3_INSN_SIZE must equal a registered site address. On x86-64 6.12,
 *   regs->ip is probe address + 1 (the int3 length) in the pre-handler for all three kprobe
 *   flavors: int3 (kprobe_int3_handler: ip after the trap), optimized (optimized_callback sets
 *   regs->ip = kp.addr + INT3_INSN_SIZE) and ftrace-based (kprobe_ftrace_handler sets
 *   regs->ip = ip + sizeof(kprobe_opcode_t)). At a kretprobe regs->ip is the return address, a
 *   call's end, so "ip - 1" is never the start of an instruction and never a site. Without a
 *   registered site, every kfunc returns -EPERM and changes nothing.
 *
 * Control file: /sys/kernel/debug/sie_kfuncs/control (0600, writes need CAP_SYS_ADMIN). One
 * command per write(2), numbers in C syntax (0x.. hex, decimal, leading - for displacements):
 *   site ADDR                                  allow sie_set_reg/sie_set_flags(_op) at ADDR
 *   cell ID ADDR BASE INDEX SCALE DISP WIDTH   define cell ID (< SIE_MAX_CELLS) valid only at
 *                                              probe ADDR (also registers ADDR as a site);
 *                                              BASE/INDEX are SIE_REG_* numbers or
 *                                              SIE_REG_NONE, SCALE 1/2/4/8, WIDTH 1/2/4/8
 *   unsite ADDR                                forget site ADDR and the cells bound to it
 *                                              (-ENOENT when ADDR is not a site)
 *   clear                                      forget all sites and cells
 * Reading the file lists the sites and cells. ADDR is the absolute probe address (from
 * /proc/kallsyms: symbol address + offset), the same address given to the kprobe.
 */
#ifndef SIE_KFUNCS_H
#define SIE_KFUNCS_H

/* General registers, in the order sie_set_reg() takes them (x86-64 pt_regs names). */
enum sie_reg {
	SIE_REG_AX = 0,
	SIE_REG_BX = 1,
	SIE_REG_CX = 2,
	SIE_REG_DX = 3,
	SIE_REG_SI = 4,
	SIE_REG_DI = 5,
	SIE_REG_BP = 6,
	SIE_REG_R8 = 7,
	SIE_REG_R9 = 8,
	SIE_REG_R10 = 9,
	SIE_REG_R11 = 10,
	SIE_REG_R12 = 11,
	SIE_REG_R13 = 12,
	SIE_REG_R14 = 13,
	SIE_REG_R15 = 14,
	SIE_REG_NR_WRITABLE = 15, /* registers sie_set_reg() may write: AX..R15 */
	SIE_REG_SP = 15,          /* cell base/index only (the probed code's rsp); never written */
	SIE_REG_NONE = 255,       /* cell without base or index register */
};

/* One table for every loaded constant (the coverage benchmark sets ~100 at once: ~240 sites). */
#define SIE_MAX_CELLS 256
#define SIE_MAX_SITES 1024
#define SIE_INT3_INSN_SIZE 1

/* Arithmetic flags of EFLAGS that a compare defines, and that sie_set_flags() rewrites. */
#define SIE_FLAG_CF 0x0001ULL
#define SIE_FLAG_PF 0x0004ULL
#define SIE_FLAG_AF 0x0010ULL
#define SIE_FLAG_ZF 0x0040ULL
#define SIE_FLAG_SF 0x0080ULL
#define SIE_FLAG_OF 0x0800ULL
#define SIE_FLAGS_ARITH                                                                 \
	(SIE_FLAG_CF | SIE_FLAG_PF | SIE_FLAG_AF | SIE_FLAG_ZF | SIE_FLAG_SF | SIE_FLAG_OF)

/* The instruction whose flags sie_set_flags_op() recomputes. */
enum sie_flags_op {
	SIE_FLAGS_OP_SUB = 0, /* cmp and sub: lhs - rhs */
	SIE_FLAGS_OP_ADD = 1, /* add: lhs + rhs */
	SIE_FLAGS_OP_AND = 2, /* test and and: lhs & rhs */
	SIE_FLAGS_OP_NR = 3,
};

/*
 * The kfuncs (all return 0 on success or a negative errno; on error nothing was changed):
 *
 * int sie_set_reg(struct pt_regs *regs, u32 reg, u64 val, u32 width)
 *   Writes register `reg` (SIE_REG_AX..SIE_REG_R15; never sp, ip, cs, ss or flags) of the probed
 *   code, as the x86 instruction writing its low `width` bytes would: width 8 writes all of it,
 *   width 4 writes the low 32 bits and ZERO-EXTENDS (like `mov $imm, %esi`), widths 2 and 1
 *   write the low 16/8 bits and PRESERVE the other bits (like %si / %sil). The change takes
 *   effect when the probed code resumes, for int3 and optimized probes alike.
 *   -EINVAL: bad reg or width. -EPERM: not a registered site (see above).
 *
 * int sie_set_flags(struct pt_regs *regs, u64 lhs, u64 rhs, u32 width)
 *   Sets CF, PF, AF, ZF, SF and OF in regs->flags to what `cmp rhs, lhs` (AT&T; i.e. the
 *   subtraction lhs - rhs) computes on the low `width` bytes (1/2/4/8) of both operands; every
 *   other bit of regs->flags (IF, TF, DF, ...) is kept. For `cmp $imm, %reg` pass
 *   lhs = the register's value, rhs = the new immediate (sign-extended to the operand width the
 *   way the instruction encodes it). -EINVAL: bad width. -EPERM: not a registered site.
 *
 * int sie_set_flags_op(struct pt_regs *regs, u32 op, u64 lhs, u64 rhs, u32 width)
 *   As sie_set_flags, for the instruction `op` (enum sie_flags_op): the flags that
 *   `sub`/`cmp`, `add` or `and`/`test` of rhs (the immediate) to lhs (the destination's value
 *   before the instruction) compute at `width` bytes, as the CPU does (AF cleared for and/test).
 *   -EINVAL: bad op or width. -EPERM: not a registered site.
 *
 * int sie_write_cell(struct pt_regs *regs, u32 cell_id, u64 val)
 *   Stores the low `width` bytes of val to the memory cell `cell_id`, with one store of exactly
 *   that width. The address is computed in the kernel from the registered descriptor:
 *   base + index * scale + disp, register values read from regs. The descriptor is valid only
 *   at its own probe address: regs->ip - 1 must equal it, otherwise -EPERM. Kernel addresses
 *   only (user, non-canonical and vsyscall addresses give -EFAULT); a store that faults (e.g. a
 *   read-only page) is caught and gives -EFAULT. -ENOENT: no such cell.
 */

#endif /* SIE_KFUNCS_H */
