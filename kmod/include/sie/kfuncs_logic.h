/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Pure arithmetic behind sie_kfuncs, shared by the module and a host unit test
 * (kmod/tests/kfuncs_logic_test.cc checks it against the CPU's own cmp and mov results).
 * Plain C with no includes and no kernel types, so it compiles as kernel C and as host C++.
 */
#ifndef SIE_KFUNCS_LOGIC_H
#define SIE_KFUNCS_LOGIC_H

#include "sie/kfuncs.h"

/* Mask of the low `width` bytes; width must be 1, 2, 4 or 8. */
static inline unsigned long long sie_width_mask(unsigned int width)
{
	return width >= 8 ? ~0ULL : (1ULL << (8 * width)) - 1;
}

static inline int sie_width_valid(unsigned int width)
{
	return width == 1 || width == 2 || width == 4 || width == 8;
}

/*
 * The new value of a 64-bit register after an x86 write of `val` to its low `width` bytes:
 * 8 replaces, 4 zero-extends, 2 and 1 merge into the old value.
 */
static inline unsigned long long sie_reg_merge(unsigned long long old, unsigned long long val,
					       unsigned int width)
{
	unsigned long long m = sie_width_mask(width);

	if (width >= 4)
		return val & m;
	return (old & ~m) | (val & m);
}

/*
 * The arithmetic flags (SIE_FLAG_*) that `cmp rhs, lhs` (lhs - rhs) sets when both operands are
 * `width` bytes wide. Only bits in SIE_FLAGS_ARITH are returned.
 */
static inline unsigned long long sie_cmp_flags(unsigned long long lhs, unsigned long long rhs,
					       unsigned int width)
{
	unsigned long long m = sie_width_mask(width);
	unsigned long long sign = 1ULL << (8 * width - 1);
	unsigned long long a = lhs & m, b = rhs & m;
	unsigned long long r = (a - b) & m;
	unsigned long long flags = 0;
	unsigned int low = (unsigned int)(r & 0xff);

	if (a < b)
		flags |= SIE_FLAG_CF;
	/* PF: even number of set bits in the low byte of the result. */
	low ^= low >> 4;
	low ^= low >> 2;
	low ^= low >> 1;
	if (!(low & 1))
		flags |= SIE_FLAG_PF;
	if ((a ^ b ^ r) & 0x10)
		flags |= SIE_FLAG_AF;
	if (r == 0)
		flags |= SIE_FLAG_ZF;
	if (r & sign)
		flags |= SIE_FLAG_SF;
	/* OF: the operands have different signs and the result's sign differs from lhs's. */
	if ((a ^ b) & (a ^ r) & sign)
		flags |= SIE_FLAG_OF;
	return flags;
}

/* PF (even parity of the result's low byte) and ZF, SF of result r at `width` bytes. */
static inline unsigned long long sie_result_flags(unsigned long long r, unsigned int width)
{
	unsigned long long flags = 0;
	unsigned int low = (unsigned int)(r & 0xff);

	low ^= low >> 4;
	low ^= low >> 2;
	low ^= low >> 1;
	if (!(low & 1))
		flags |= SIE_FLAG_PF;
	if ((r & sie_width_mask(width)) == 0)
		flags |= SIE_FLAG_ZF;
	if (r & (1ULL << (8 * width - 1)))
		flags |= SIE_FLAG_SF;
	return flags;
}

/* The arithmetic flags `add rhs, lhs` (lhs + rhs) sets at `width` bytes. */
static inline unsigned long long sie_add_flags(unsigned long long lhs, unsigned long long rhs,
					       unsigned int width)
{
	unsigned long long m = sie_width_mask(width);
	unsigned long long sign = 1ULL << (8 * width - 1);
	unsigned long long a = lhs & m, b = rhs & m;
	unsigned long long r = (a + b) & m;
	unsigned long long flags = sie_result_flags(r, width);

	if (r < a)
		flags |= SIE_FLAG_CF;
	if ((a ^ b ^ r) & 0x10)
		flags |= SIE_FLAG_AF;
	/* OF: both operands have the same sign and the result's sign differs. */
	if (~(a ^ b) & (a ^ r) & sign)
		flags |= SIE_FLAG_OF;
	return flags;
}

/*
 * The arithmetic flags of the instruction SIE_FLAGS_OP_* `op` on lhs (its destination or first
 * operand) and rhs (the immediate) at `width` bytes: cmp and sub as sie_cmp_flags(), add,
 * and test/and (CF = OF = 0; AF, undefined by the architecture, cleared as the CPU does).
 * Returns ~0ULL for an unknown op.
 */
static inline unsigned long long sie_op_flags(unsigned int op, unsigned long long lhs,
					      unsigned long long rhs, unsigned int width)
{
	switch (op) {
	case SIE_FLAGS_OP_SUB:
		return sie_cmp_flags(lhs, rhs, width);
	case SIE_FLAGS_OP_ADD:
		return sie_add_flags(lhs, rhs, width);
	case SIE_FLAGS_OP_AND:
		return sie_result_flags(lhs & rhs & sie_width_mask(width), width);
	}
	return ~0ULL;
}

/* regs->flags after sie_set_flags(): the arithmetic flags replaced, every other bit kept. */
static inline unsigned long long sie_flags_merge(unsigned long long old_flags,
						 unsigned long long lhs, unsigned long long rhs,
						 unsigned int width)
{
	return (old_flags & ~SIE_FLAGS_ARITH) | sie_cmp_flags(lhs, rhs, width);
}

/* The address of a cell: base + index * scale + disp, wrapping like the CPU's address adder. */
static inline unsigned long long sie_cell_address(unsigned long long base,
						  unsigned long long index, unsigned int scale,
						  long long disp)
{
	return base + index * scale + (unsigned long long)disp;
}

#endif /* SIE_KFUNCS_LOGIC_H */
