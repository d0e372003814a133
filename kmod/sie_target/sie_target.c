// SPDX-License-Identifier: GPL-2.0
/*
 * sie_target: a small module whose hardcoded constants (sie_target_consts.h) appear in the
 * instruction patterns that sie has to turn into live knobs. Each pattern lives in its own
 * noinline, noipa function (so gcc neither inlines it nor clones it into .constprop/.isra
 * variants: the symbol name and the calling convention stay stable and kprobe-able). Nothing
 * is exported and nothing is NOKPROBE.
 *
 * Every pattern is driven through debugfs, /sys/kernel/debug/sie_target/:
 *
 *   loop call_arg field cmp mul div opt fan join saved every below fold
 *                                     write a decimal input to run the path once,
 *                                     read the result of the last run (decimal)
 *   workers                           write N (0..SIE_TARGET_MAX_WORKERS) to run N kthreads
 *                                     looping over pattern (g); 0 stops them; read gives N
 *   outside_us                        how long a worker sleeps between two cycles of (g), i.e.
 *                                     outside the constant's safe span (default 0: workers
 *                                     spend almost all their time inside it)
 *   ops mixed                         counters of pattern (g); write any value to set it
 *   batch_last                        the value of the second use of (g) in the last cycle
 *
 * Results, with the constants as shipped (x is the input):
 *   loop     = LOOP_BOUND * x + LOOP_BOUND * (LOOP_BOUND - 1) / 2
 *   call_arg = x + CALL_ARG
 *   field    = FIELD_INIT            (the field the init function stored)
 *   cmp      = x > THRESHOLD ? 1 : 0
 *   mul      = x * SCALE
 *   div      = x / DIVISOR
 *   opt      = 8 * x + 3 + OPT_ADD
 *   fan      = 15 * FAN + 30 * x + 105   (sum over n = 0..14 of FAN + 2 * x + n)
 *   join     = x odd ? JOIN + 1 : x + 1  (the even path bypasses the constant)
 *   saved    = x * SAVED             (x stored in a cell, loaded inside the span)
 *   every    = x / EVERY             (steps 1..x counted when step % EVERY == 0)
 *   below    = tries * 256 + (BELOW * b) >> 8, b the first of the bytes x, x + 1, ... with
 *              (u8)(BELOW * b) >= 256 % BELOW
 *   fold     = c << 32 | (c > 2 ? q : 0), c = cwnd - min(q / FOLD, cwnd >> 1), for
 *              x = cwnd << 32 | q
 *
 * Disassembly (gcc 12.2 -O2 with the Debian 6.12.117 kbuild flags; objdump -d sie_target.ko).
 * Offsets are function-relative. Functions whose address is taken (the debugfs paths) start with
 * endbr64 (+0x0) and call __fentry__ (+0x4); the others start with call __fentry__ (+0x0).
 *   (a) sie_target_loop         +0x22 cmp $0x8,%ebx ; +0x25 jne +0x12 (loop back edge)
 *   (b) sie_target_call_arg     +0x9  mov $0x1234,%esi ; +0xe jmp sie_target_callee (tail call)
 *   (c) sie_target_init_req     +0x8  movl $0x5a5a,0x8(%rdi) ; +0xf jmp __x86_return_thunk
 *   (d) sie_target_cmp          +0x9  cmp $0x3e8,%rdi ; +0x10 ja (to the slow-path tail call)
 *   (e) sie_target_mul          +0xc  shl $0x4,%rax (after +0x9 mov %rdi,%rax)
 *   (f) sie_target_div          +0x9  movabs $0xcccccccccccccccd,%rax ; +0x13 mul %rdi ;
 *                               +0x16 mov %rdx,%rax ; +0x19 shr $0x3,%rax
 *   (g) sie_target_batch_cycle  +0x13 movl $0x40,0x8(%rdi) (use 1) ; +0x1f call
 *                               usleep_range_state ; +0x24 movl $0x40,0xc(%rbx) (use 2)
 *   (i) sie_target_fan_0 .. sie_target_fan_14: +0x5 mov $0x2468,%eax, then shl/lea (boostable)
 *   (j) sie_target_join         +0x10 je +0x17 ; +0x12 mov $0x300,%eax ; +0x17 add $0x1,%rax (join)
 *   (k) sie_target_saved_calc   mov 0x8(%rdi),%rdx ; lea 0x1(%rdx),%rsi ; imul $0x7,%rdx,%rdx
 * (tests/vm/smoke_test.cc finds these instructions again with a disassembler, so a change in code
 * generation shows up as a test failure rather than as a probe at a wrong place.)
 */
#include <linux/atomic.h>
#include <linux/debugfs.h>
#include <linux/delay.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/sched.h>

#include "sie_target_consts.h"

#define SIE_TARGET_MAX_WORKERS 16

/* noipa: no inlining, cloning, IPA-SRA or constant propagation across the call boundary. */
#define sie_pattern noinline __attribute__((__noipa__))

/* (a) loop bound: the trip count is compared against the induction variable. */
static sie_pattern u64 sie_target_step(u64 acc, u64 x, unsigned int i)
{
	return acc + x + i;
}

static sie_pattern u64 sie_target_loop(u64 x)
{
	u64 acc = 0;
	unsigned int i;

	for (i = 0; i < SIE_TARGET_LOOP_BOUND; i++)
		acc = sie_target_step(acc, x, i);
	return acc;
}

/* (b) an immediate moved into an argument register of a call. */
static sie_pattern u64 sie_target_callee(u64 x, u32 amount)
{
	return x + amount;
}

static sie_pattern u64 sie_target_call_arg(u64 x)
{
	return sie_target_callee(x, SIE_TARGET_CALL_ARG);
}

/* (c) an immediate stored into a struct field. */
struct sie_target_req {
	u64 key;
	u32 budget;
	u32 flags;
};

static sie_pattern void sie_target_init_req(struct sie_target_req *req, u64 key)
{
	req->key = key;
	req->budget = SIE_TARGET_FIELD_INIT;
}

static u64 sie_target_field(u64 x)
{
	struct sie_target_req req = {};

	sie_target_init_req(&req, x);
	return req.budget;
}

/* (d) a compare against an immediate feeding a conditional branch. */
static sie_pattern u64 sie_target_slow_path(u64 x)
{
	return 1;
}

static sie_pattern u64 sie_target_cmp(u64 x)
{
	if (x > SIE_TARGET_THRESHOLD)
		return sie_target_slow_path(x);
	return 0;
}

/* (e) multiplication by a power of two, strength-reduced to a shift. */
static sie_pattern u64 sie_target_mul(u64 x)
{
	return x * SIE_TARGET_SCALE;
}

/* (f) unsigned division by a constant: multiply-high by a magic number, then shift. */
static sie_pattern u64 sie_target_div(u64 x)
{
	return x / SIE_TARGET_DIVISOR;
}

/*
 * (h) jump optimization: the constant is loaded into %eax, then four instructions that leave
 * %eax alone run before its first reader. Every boundary in between is an equivalent probe
 * place, but the first one cannot be jump-optimized: its 5-byte window holds a short jmp, which
 * the x86 optprobe code never copies (arch/x86/kernel/kprobes/core.c can_boost(); a jump to the
 * probe address itself is fine for can_optimize()), while the window right after it holds a shl
 * and a lea, both boostable. Written in asm so the layout is the same with every compiler:
 * sie's runtime must find the optimizable place among the candidates.
 */
static sie_pattern u64 sie_target_opt(u64 x)
{
	u64 r;

	asm volatile("movl %[c], %%eax\n\t"	/* the constant (CS) */
		     "jmp 1f\n"		/* not boostable */
		     "1:\tshlq $3, %%rdi\n\t"
		     "leaq 1(%%rdi), %%rdi\n\t"
		     "leaq 2(%%rdi), %%rdi\n\t"
		     "addq %%rdi, %%rax\n\t"	/* first reader of %eax */
		     : "=&a"(r), "+D"(x)
		     : [c] "i"(SIE_TARGET_OPT_ADD));
	return r;
}

/*
 * (i) one constant in many places: 15 small functions each load it (like (h), in asm so every
 * compiler lays it out the same, with boostable instructions after it). A constant with 15 Critical
 * Spans at 15 distinct addresses, to measure how loading scales with the number of probes.
 */
#define SIE_TARGET_FAN_FN(n)							\
static sie_pattern u64 sie_target_fan_##n(u64 x)				\
{										\
	u64 r;									\
										\
	asm volatile("movl %[c], %%eax\n\t"	/* the constant (CS) */		\
		     "shlq $1, %%rdi\n\t"						\
		     "leaq " #n "(%%rdi), %%rdi\n\t"					\
		     "addq %%rdi, %%rax\n\t"	/* first reader of %eax */	\
		     : "=&a"(r), "+D"(x)						\
		     : [c] "i"(SIE_TARGET_FAN));					\
	return r;								\
}
SIE_TARGET_FAN_FN(0) SIE_TARGET_FAN_FN(1) SIE_TARGET_FAN_FN(2) SIE_TARGET_FAN_FN(3)
SIE_TARGET_FAN_FN(4) SIE_TARGET_FAN_FN(5) SIE_TARGET_FAN_FN(6) SIE_TARGET_FAN_FN(7)
SIE_TARGET_FAN_FN(8) SIE_TARGET_FAN_FN(9) SIE_TARGET_FAN_FN(10) SIE_TARGET_FAN_FN(11)
SIE_TARGET_FAN_FN(12) SIE_TARGET_FAN_FN(13) SIE_TARGET_FAN_FN(14)

static u64 sie_target_fan(u64 x)
{
	return sie_target_fan_0(x) + sie_target_fan_1(x) + sie_target_fan_2(x) +
	       sie_target_fan_3(x) + sie_target_fan_4(x) + sie_target_fan_5(x) +
	       sie_target_fan_6(x) + sie_target_fan_7(x) + sie_target_fan_8(x) +
	       sie_target_fan_9(x) + sie_target_fan_10(x) + sie_target_fan_11(x) +
	       sie_target_fan_12(x) + sie_target_fan_13(x) + sie_target_fan_14(x);
}

/*
 * (j) a span that ends at a control-flow join: odd inputs load the constant, even inputs jump
 * over it with their own value to the same next instruction. A probe there sees both paths;
 * only the one through the constant may take the new value (sie's path token). In asm so the
 * jump is not turned into a cmov.
 */
static sie_pattern u64 sie_target_join(u64 x)
{
	u64 r;

	asm volatile("movq %%rdi, %%rax\n\t"	/* the bypass path's own value */
		     "testb $1, %%dil\n\t"
		     "jz 1f\n\t"
		     "movl %[c], %%eax\n"	/* the constant (CS) */
		     "1:\taddq $1, %%rax\n\t"	/* the join: first reader of %rax */
		     : "=&a"(r)
		     : "D"(x), [c] "i"(SIE_TARGET_JOIN));
	return r;
}

/*
 * (k) a value the code loads and uses twice: m = cell->val feeds m * SAVED (in place) and
 * m + 1, so no register holds m at the probe, and re-reading the cell there could see another
 * value than the code used: the stub saves the loaded register right after the load. The build
 * with SAVED = 13 (one of the spec's values) uses another register, so the load belongs to the
 * span. In asm so every compiler lays it out the same.
 */
struct sie_target_cell {
	u64 pad, val;
};

static struct sie_target_cell sie_target_cell;
static u64 sie_target_saved_next;

static sie_pattern u64 sie_target_saved_calc(const struct sie_target_cell *p)
{
	u64 m, n;

	asm volatile(".if %c[c] == 13\n\t"
		     "movq 8(%[p]), %%rax\n\tleaq 1(%%rax), %[n]\n\t"
		     "imulq %[c], %%rax, %[m]\n\t"
		     ".else\n\t"
		     "movq 8(%[p]), %[m]\n\tleaq 1(%[m]), %[n]\n\t"	/* the load (saved after it) */
		     "imulq %[c], %[m], %[m]\n\t"			/* the constant (CS) */
		     ".endif"
		     : [m] "=&d"(m), [n] "=&S"(n)
		     : [p] "D"(p), [c] "i"(SIE_TARGET_SAVED)
		     : "rax", "memory");
	WRITE_ONCE(sie_target_saved_next, n);
	return m;
}

static u64 sie_target_saved(u64 x)
{
	WRITE_ONCE(sie_target_cell.val, x);
	return sie_target_saved_calc(&sie_target_cell);
}

/*
 * (l) every EVERY-th step (try_to_unuse's `i % LATENCY_LIMIT == 0`): at powers of two a test of
 * the low bits, whose encoding depends on the value (test %bl,%bl at 256, test $0x7f,%bl at 128,
 * test $0x1ff,%ebx at 512); other values divide, so the constant is tunable at powers of two.
 */
static sie_pattern u64 sie_target_tick(u64 n)
{
	return n + 1;
}

static sie_pattern u64 sie_target_every(u64 x)
{
	u64 n = 0;
	unsigned int i;

	for (i = 1; i <= x; i++)
		if ((i % SIE_TARGET_EVERY) == 0)
			n = sie_target_tick(n);
	return n;
}

/*
 * (n) the rejection test of sampling below a constant (get_random_u32_below's) on a
 * deterministic byte sequence x, x + 1, ...: gcc writes `(u8)m >= 256 % BELOW` as
 * `test $0xf0,%al; je` at 30 and `cmp $0x23,%al; jbe` at 55, so the jump's compare changes
 * shape with the value (a predicate span). Returns tries * 256 + the accepted (BELOW * b) >> 8.
 */
static sie_pattern u8 sie_target_byte(u64 *state)
{
	return (u8)(*state)++;
}

static sie_pattern u64 sie_target_below(u64 x)
{
	u64 tries = 0;

	for (;;) {
		u32 mult = SIE_TARGET_BELOW * sie_target_byte(&x);

		tries++;
		if ((u8)mult >= (1U << 8) % SIE_TARGET_BELOW)
			return (tries << 8) | (mult >> 8);
	}
}

/*
 * (g) one constant used twice with a sleep in between: a "reservation" and its "release". If the
 * constant changes while a thread sleeps between the two uses, the thread sees a mixed pair; that
 * is what sie's consistency modes must prevent, so it is counted.
 */
struct sie_target_worker {
	struct task_struct *task;
	u32 reserved;
	u32 released;
};

/*
 * (o) min(q / FOLD, cwnd >> 1) with FOLD = 1 as compiled (tcp_yeah's `queue / TCP_YEAH_GAMMA`):
 * no instruction divides at 1, so a probe rewrites q where the region starts; q is stored after
 * the region, so a second span puts the q it saved there back where the region ends.
 */
struct sie_target_cwnd {
	u32 cwnd, last_q;
};

static sie_pattern u32 sie_target_fold_calc(struct sie_target_cwnd *c, u32 q)
{
	u32 cwnd = c->cwnd, a = q / SIE_TARGET_FOLD, b = cwnd >> 1;

	cwnd -= a < b ? a : b;
	WRITE_ONCE(c->cwnd, cwnd);
	if (cwnd > 2)
		WRITE_ONCE(c->last_q, q);
	return cwnd;
}

static u64 sie_target_fold(u64 x)
{
	struct sie_target_cwnd c = { .cwnd = x >> 32 };

	sie_target_fold_calc(&c, (u32)x);
	return (u64)c.cwnd << 32 | c.last_q;
}

static struct sie_target_worker sie_target_workers[SIE_TARGET_MAX_WORKERS];
static unsigned int sie_target_nr_workers;
static DEFINE_MUTEX(sie_target_workers_lock);
static atomic64_t sie_target_ops = ATOMIC64_INIT(0);
static atomic64_t sie_target_mixed = ATOMIC64_INIT(0);
static u64 sie_target_batch_last;

/* A u32 setting with a valid range, read without locks (debugfs files "repeat", "outside_us"). */
struct sie_target_knob {
	u32 val, min, max;
};

/* At most 1 s: a worker sleeps uninterruptibly, and stopping it waits for the sleep to end. */
static struct sie_target_knob sie_target_outside_us = { .val = 0, .min = 0, .max = 1000000 };

static sie_pattern void sie_target_batch_cycle(struct sie_target_worker *w)
{
	WRITE_ONCE(w->reserved, SIE_TARGET_BATCH);	/* use 1 */
	usleep_range(100, 200);				/* sleepable point */
	WRITE_ONCE(w->released, SIE_TARGET_BATCH);	/* use 2 */
	if (READ_ONCE(w->reserved) != READ_ONCE(w->released))
		atomic64_inc(&sie_target_mixed);
	WRITE_ONCE(sie_target_batch_last, READ_ONCE(w->released));
	atomic64_inc(&sie_target_ops);
}

/*
 * (g') The same two uses, with the calling task asleep for `ms` in between (debugfs "hold"):
 * a task blocked here has a safe-span frame on its stack for that long, which the mode-1
 * reverse transition must wait for (or name, at its timeout).
 */
static sie_pattern void sie_target_hold_cycle(struct sie_target_worker *w, unsigned int ms)
{
	WRITE_ONCE(w->reserved, SIE_TARGET_BATCH);	/* use 1 */
	msleep(ms);					/* sleepable point */
	WRITE_ONCE(w->released, SIE_TARGET_BATCH);	/* use 2 */
}

/* hold(ms): ms at most 10 s; the result is use1 * 1000000 + use2 (64000064 as compiled). */
static u64 sie_target_hold(u64 ms)
{
	static struct sie_target_worker h;

	sie_target_hold_cycle(&h, min_t(u64, ms, 10000));
	return (u64)READ_ONCE(h.reserved) * 1000000 + READ_ONCE(h.released);
}

/*
 * (m) Two constants used by one event, with the calling task asleep for `ms` in between (debugfs
 * "pair"): a policy that decides both must switch them together (sie-run --mode 2), so that no
 * call sees one new value and one old.
 */
static sie_pattern void sie_target_pair_cycle(struct sie_target_worker *w, unsigned int ms)
{
	WRITE_ONCE(w->reserved, SIE_TARGET_PAIR_A);	/* use of A */
	msleep(ms);					/* sleepable point */
	WRITE_ONCE(w->released, SIE_TARGET_PAIR_B);	/* use of B */
}

/* pair(ms): ms at most 10 s; the result is A * 1000000 + B (11000022 as compiled). */
static u64 sie_target_pair(u64 ms)
{
	static struct sie_target_worker p;

	sie_target_pair_cycle(&p, min_t(u64, ms, 10000));
	return (u64)READ_ONCE(p.reserved) * 1000000 + READ_ONCE(p.released);
}

static int sie_target_worker_fn(void *data)
{
	struct sie_target_worker *w = data;

	while (!kthread_should_stop()) {
		u32 outside = READ_ONCE(sie_target_outside_us.val);

		sie_target_batch_cycle(w);
		if (outside)
			usleep_range(outside, outside + outside / 2);
		else
			cond_resched();
	}
	return 0;
}

static void sie_target_stop_workers(void)
{
	while (sie_target_nr_workers > 0) {
		struct sie_target_worker *w = &sie_target_workers[--sie_target_nr_workers];

		kthread_stop(w->task);
		w->task = NULL;
	}
}

static int sie_target_start_workers(unsigned int n)
{
	while (sie_target_nr_workers < n) {
		struct sie_target_worker *w = &sie_target_workers[sie_target_nr_workers];
		struct task_struct *t;

		t = kthread_run(sie_target_worker_fn, w, "sie_target/%u", sie_target_nr_workers);
		if (IS_ERR(t))
			return PTR_ERR(t);
		w->task = t;
		sie_target_nr_workers++;
	}
	return 0;
}

static int sie_target_workers_get(void *data, u64 *val)
{
	mutex_lock(&sie_target_workers_lock);
	*val = sie_target_nr_workers;
	mutex_unlock(&sie_target_workers_lock);
	return 0;
}

static int sie_target_workers_set(void *data, u64 val)
{
	int ret;

	if (val > SIE_TARGET_MAX_WORKERS)
		return -EINVAL;
	mutex_lock(&sie_target_workers_lock);
	sie_target_stop_workers();
	ret = sie_target_start_workers(val);
	if (ret)
		sie_target_stop_workers();
	mutex_unlock(&sie_target_workers_lock);
	return ret;
}
DEFINE_DEBUGFS_ATTRIBUTE(sie_target_workers_fops, sie_target_workers_get, sie_target_workers_set,
			 "%llu\n");

static int sie_target_counter_get(void *data, u64 *val)
{
	*val = atomic64_read(data);
	return 0;
}

static int sie_target_counter_set(void *data, u64 val)
{
	atomic64_set(data, val);
	return 0;
}
DEFINE_DEBUGFS_ATTRIBUTE(sie_target_counter_fops, sie_target_counter_get, sie_target_counter_set,
			 "%llu\n");

/* The single-shot paths (a)-(f): write an input, read the result of the last run. */
struct sie_target_path {
	const char *name;
	u64 (*run)(u64 x);
	u64 last;
	struct mutex lock;
};

static struct sie_target_path sie_target_paths[] = {
	{ .name = "loop", .run = sie_target_loop },
	{ .name = "call_arg", .run = sie_target_call_arg },
	{ .name = "field", .run = sie_target_field },
	{ .name = "cmp", .run = sie_target_cmp },
	{ .name = "mul", .run = sie_target_mul },
	{ .name = "div", .run = sie_target_div },
	{ .name = "opt", .run = sie_target_opt },
	{ .name = "fan", .run = sie_target_fan },
	{ .name = "join", .run = sie_target_join },
	{ .name = "saved", .run = sie_target_saved },
	{ .name = "every", .run = sie_target_every },
	{ .name = "below", .run = sie_target_below },
	{ .name = "hold", .run = sie_target_hold },
	{ .name = "pair", .run = sie_target_pair },
	{ .name = "fold", .run = sie_target_fold },
};

static int sie_target_path_get(void *data, u64 *val)
{
	struct sie_target_path *p = data;

	mutex_lock(&p->lock);
	*val = p->last;
	mutex_unlock(&p->lock);
	return 0;
}

/*
 * How many times one write runs its path (default 1). Benchmarks set it high so a probe's
 * per-hit cost is measured over many hits per system call, not dominated by the syscall.
 */
static struct sie_target_knob sie_target_repeat = { .val = 1, .min = 1, .max = 1000000 };

static int sie_target_path_set(void *data, u64 val)
{
	struct sie_target_path *p = data;
	u32 i, n = READ_ONCE(sie_target_repeat.val);

	mutex_lock(&p->lock);
	for (i = 0; i < n; i++) {
		p->last = p->run(val);
		if (!(i & 1023))
			cond_resched();
	}
	mutex_unlock(&p->lock);
	return 0;
}
DEFINE_DEBUGFS_ATTRIBUTE(sie_target_path_fops, sie_target_path_get, sie_target_path_set,
			 "%llu\n");

static int sie_target_knob_get(void *data, u64 *val)
{
	struct sie_target_knob *k = data;

	*val = READ_ONCE(k->val);
	return 0;
}

static int sie_target_knob_set(void *data, u64 val)
{
	struct sie_target_knob *k = data;

	if (val < k->min || val > k->max)
		return -EINVAL;
	WRITE_ONCE(k->val, val);
	return 0;
}
DEFINE_DEBUGFS_ATTRIBUTE(sie_target_knob_fops, sie_target_knob_get, sie_target_knob_set,
			 "%llu\n");

static struct dentry *sie_target_dir;

static int __init sie_target_init(void)
{
	int i;

	sie_target_dir = debugfs_create_dir("sie_target", NULL);
	if (IS_ERR(sie_target_dir))
		return PTR_ERR(sie_target_dir);
	for (i = 0; i < ARRAY_SIZE(sie_target_paths); i++) {
		mutex_init(&sie_target_paths[i].lock);
		debugfs_create_file_unsafe(sie_target_paths[i].name, 0600, sie_target_dir,
					   &sie_target_paths[i], &sie_target_path_fops);
	}
	debugfs_create_file_unsafe("repeat", 0600, sie_target_dir, &sie_target_repeat,
				   &sie_target_knob_fops);
	debugfs_create_file_unsafe("workers", 0600, sie_target_dir, NULL,
				   &sie_target_workers_fops);
	debugfs_create_file_unsafe("ops", 0600, sie_target_dir, &sie_target_ops,
				   &sie_target_counter_fops);
	debugfs_create_file_unsafe("mixed", 0600, sie_target_dir, &sie_target_mixed,
				   &sie_target_counter_fops);
	debugfs_create_file_unsafe("outside_us", 0600, sie_target_dir, &sie_target_outside_us,
				   &sie_target_knob_fops);
	debugfs_create_u64("batch_last", 0400, sie_target_dir, &sie_target_batch_last);
	return 0;
}

static void __exit sie_target_exit(void)
{
	debugfs_remove_recursive(sie_target_dir);
	mutex_lock(&sie_target_workers_lock);
	sie_target_stop_workers();
	mutex_unlock(&sie_target_workers_lock);
}

module_init(sie_target_init);
module_exit(sie_target_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("sie test target: hardcoded constants in common instruction patterns");
