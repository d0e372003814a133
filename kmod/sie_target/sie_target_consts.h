/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The hardcoded constants of sie_target, one #define each, so that a synthesizer can rebuild the
 * module with another value (baseline/variant builds) and so that tests compute expected results
 * from the same numbers. Keep each value on its own "#define NAME VALUE" line.
 *
 * The values are chosen so that every pattern survives gcc -O2 in the intended instruction form
 * (see the disassembly notes in sie_target.c): the scale must stay a power of two, the divisor
 * must not be a power of two, and the immediates must fit a sign-extended imm32.
 */
#ifndef SIE_TARGET_CONSTS_H
#define SIE_TARGET_CONSTS_H

#define SIE_TARGET_LOOP_BOUND 8        /* (a) loop trip count: cmp $imm against the induction var */
#define SIE_TARGET_CALL_ARG 0x1234     /* (b) immediate moved into an argument register */
#define SIE_TARGET_FIELD_INIT 0x5a5a   /* (c) immediate stored into a u32 struct field */
#define SIE_TARGET_THRESHOLD 1000      /* (d) compare against an immediate, then branch */
#define SIE_TARGET_SCALE 16            /* (e) multiply by a power of two: shl $log2 */
#define SIE_TARGET_DIVISOR 10          /* (f) unsigned division: multiply-high + shift */
#define SIE_TARGET_BATCH 64            /* (g) used twice, with a sleep in between */
#define SIE_TARGET_OPT_ADD 0x777       /* (h) mov $imm,%eax; the first probe place is not optimizable */
#define SIE_TARGET_FAN 0x2468          /* (i) one constant in 15 functions: 15 spans, 15 addresses */
#define SIE_TARGET_JOIN 0x300          /* (j) loaded on one path; the other joins right after it */
#define SIE_TARGET_SAVED 7             /* (k) multiplies a loaded value that is also used again */
#define SIE_TARGET_EVERY 256           /* (l) i % EVERY == 0: test of the low byte, flags span */
#define SIE_TARGET_BELOW 30           /* (n) rejection bound 256 % BELOW: the compare's shape varies */
#define SIE_TARGET_PAIR_A 11          /* (m) two constants of one event, a sleep in between: */
#define SIE_TARGET_PAIR_B 22          /*     a policy must switch them together */
#define SIE_TARGET_FOLD 1             /* (o) q / FOLD folded away at 1; q is read again after */

#endif /* SIE_TARGET_CONSTS_H */
