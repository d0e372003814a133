/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The fixed part of every sie stub: maps, the activation gate (modes 0, 1 and 2), the per-task
 * state, the safe-span stack check, counters and the arithmetic helpers the generated formula
 * code calls. A generated stub (synth/stubgen, DIR/<id>/stub.bpf.c) defines SIE_NSPANS and
 * includes this header, then emits one kprobe program per probe.
 *
 * Maps (pinned by the loader under /sys/fs/bpf/sie/<name>/, names fixed here):
 *   sie_ctl    ARRAY of u64 control words (enum sie_ctl_key): value, active, mode, target...
 *              User space changes the value with ONE map update: no recompile, no reattach.
 *   sie_stats  PERCPU_ARRAY of counters, key span * SIE_STAT_NR + stat (summed by `sie status`).
 *   sie_task   TASK_STORAGE: per-task transition state (mode 1) and saved inputs (recompute).
 *              Per task, never per CPU: between a save probe and its apply probe the task can be
 *              preempted and migrated (the reference's per-CPU slots break there).
 *   sie_safe   ARRAY of safe-span address ranges [start, end) for the mode-1 stack check.
 *   sie_blocked LRU_HASH of tasks whose last mode-1 guard found an unsafe stack.
 *   sie_marks  HASH of path token marks (span, stack pointer) -> task, set at a CS's start and
 *              taken by its apply probe (spans ending at a join; see sie_mark).
 */
#ifndef SIE_STUB_BPF_H
#define SIE_STUB_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

/* Control keys, counter ids, sie_range: shared with the loader. */
#include "sie/abi.h"

#ifdef SIE_NO_KFUNCS
/*
 * Host verifier tests: the host has no sie_kfuncs module, so the kfuncs become stubs that fail
 * (the program shape and everything else stay the same).
 */
#include "sie/kfuncs.h"
static __always_inline int sie_set_reg(struct pt_regs *regs, __u32 reg, __u64 val, __u32 width)
{
	return -95;
}
static __always_inline int sie_set_flags(struct pt_regs *regs, __u64 lhs, __u64 rhs, __u32 width)
{
	return -95;
}
static __always_inline int sie_set_flags_op(struct pt_regs *regs, __u32 op, __u64 lhs, __u64 rhs,
					    __u32 width)
{
	return -95;
}
static __always_inline int sie_write_cell(struct pt_regs *regs, __u32 cell_id, __u64 val)
{
	return -95;
}
/* No sie_consistency module on the host either: mode 2 never opens the gate there. */
static __always_inline int sie_global_active(__u32 instance)
{
	return 0;
}
#else
#include "sie/kfuncs.bpf.h"
#include "sie/consistency.bpf.h"
#endif

/*
 * Names. A policy file is one BPF object (sie-run): the stubs of all its constants are one
 * translation unit (stubgen::BuildStubs) that includes each stub's source under its own
 * SIE_SUFFIX (_<id>), which gives its maps, programs, helpers and settings names of their own
 * (sie_ctl_3, sie_apply_0_3), linked with the policy. One unit, not one object per stub: the
 * libbpf linker of Debian 12 (1.1) cannot link two objects that declare the same kfunc. Without
 * a suffix (sie set) the names are the ABI's (abi.h); the loader pins each map under its
 * unsuffixed name either way. Generated programs are named through SIE_PROG().
 */
#ifdef SIE_SUFFIX
#define SIE__CAT2(a, b) a##b
#define SIE__CAT(a, b) SIE__CAT2(a, b)
#define SIE_PROG(name) SIE__CAT(name, SIE_SUFFIX)
#define sie_ctl SIE_PROG(sie_ctl)
#define sie_stats SIE_PROG(sie_stats)
#define sie_task SIE_PROG(sie_task)
#define sie_safe SIE_PROG(sie_safe)
#define sie_blocked SIE_PROG(sie_blocked)
#define sie_marks SIE_PROG(sie_marks)
#define sie_global_kfunc SIE_PROG(sie_global_kfunc)
#define sie_guard SIE_PROG(sie_guard)
#define sie_reverse_check SIE_PROG(sie_reverse_check)
#define sie_task_state SIE_PROG(sie_task_state)
#define sie_ctl_get SIE_PROG(sie_ctl_get)
#define sie_count SIE_PROG(sie_count)
#define sie_count_latency SIE_PROG(sie_count_latency)
#define sie_gate SIE_PROG(sie_gate)
#define sie_safe_ranges SIE_PROG(sie_safe_ranges)
#define sie_stack_clean SIE_PROG(sie_stack_clean)
#define sie_mark SIE_PROG(sie_mark)
#define sie_take_mark SIE_PROG(sie_take_mark)
#define sie_save SIE_PROG(sie_save)
#define sie_take_saved SIE_PROG(sie_take_saved)
#else
#define SIE_PROG(name) name
#endif

#define SIE_STACK_DEPTH 32

/* The stubs' license (kfuncs, bpf_probe_read_kernel); weak: a policy's object holds one too. */
char LICENSE[] SEC("license") __weak = "GPL";

/*
 * True when no return address of buf[first..n/8) lies inside a safe span. A return address
 * ra belongs to the call ending at ra: inside (start, end]. A stack that fills the buffer may
 * be truncated, so it counts as unsafe.
 */
static __always_inline int sie_frames_clean(const __u64 *buf, long n, int first,
					    const struct sie_range *ranges)
{
	int i, j;

	if (n < 0 || n >= SIE_STACK_DEPTH * 8)
		return 0;
	for (i = first; i < SIE_STACK_DEPTH; i++) {
		__u64 ra;

		if (i * 8 >= n)
			break;
		ra = buf[i];
		for (j = 0; j < SIE_MAX_SAFE_CHECKED; j++)
			if (ra > ranges[j].start && ra <= ranges[j].end)
				return 0;
	}
	return 1;
}

/*
 * Formula arithmetic (the generated code calls these for / % << >> sdiv srem sar): 64-bit
 * two's complement like the kernel's u64 arithmetic; a zero divisor or a shift of 64 or more sets *bad, and the
 * hit is rejected (counted) instead of writing a made-up value.
 */
static __always_inline __u64 sie_div(__u64 a, __u64 b, int *bad)
{
	if (!b) {
		*bad = 1;
		return 0;
	}
	return a / b;
}
static __always_inline __u64 sie_mod(__u64 a, __u64 b, int *bad)
{
	if (!b) {
		*bad = 1;
		return 0;
	}
	return a % b;
}
static __always_inline __u64 sie_shl(__u64 a, __u64 b, int *bad)
{
	if (b >= 64) {
		*bad = 1;
		return 0;
	}
	return a << b;
}
static __always_inline __u64 sie_shr(__u64 a, __u64 b, int *bad)
{
	if (b >= 64) {
		*bad = 1;
		return 0;
	}
	return a >> b;
}

/*
 * The signed operations (sdiv, srem, sar of s64 values: idiv, sar), on magnitudes so no BPF
 * signed-division instruction (cpu v4) is needed; INT64_MIN / -1 wraps as in the evaluator.
 */
static __always_inline __u64 sie_sdiv(__u64 a, __u64 b, int *bad)
{
	__u64 ma = (a >> 63) ? -a : a, mb = (b >> 63) ? -b : b;

	if (!b) {
		*bad = 1;
		return 0;
	}
	return ((a ^ b) >> 63) ? -(ma / mb) : ma / mb;
}
static __always_inline __u64 sie_srem(__u64 a, __u64 b, int *bad)
{
	__u64 ma = (a >> 63) ? -a : a, mb = (b >> 63) ? -b : b;

	if (!b) {
		*bad = 1;
		return 0;
	}
	return (a >> 63) ? -(ma % mb) : ma % mb;
}
static __always_inline __u64 sie_sar(__u64 a, __u64 b, int *bad)
{
	if (b >= 64) {
		*bad = 1;
		return 0;
	}
	return (a >> 63) ? ~(~a >> b) : a >> b;
}

/* Reads a memory operand of the probed code (flags compares against memory, mem X). */
static __always_inline __u64 sie_read_mem(__u64 addr, __u32 width, int *bad)
{
	__u64 v = 0;

	if (bpf_probe_read_kernel(&v, width & 15, (void *)addr)) /* width is 1, 2, 4 or 8 */
		*bad = 1;
	return v;
}

/* Sign-extends the low `width` bytes of v (the immediate of a cmp is encoded sign-extended). */
static __always_inline __u64 sie_sext(__u64 v, __u32 width)
{
	int shift = 64 - 8 * (int)width;

	if (width >= 8)
		return v;
	return (__u64)(((__s64)(v << shift)) >> shift);
}

#endif /* SIE_STUB_BPF_H */

/*
 * The stub's own part: maps, gate, guard, reverse check, marks, saved inputs. Once per stub: a
 * translation unit of a policy's stubs (sie-run) includes it once per SIE_SUFFIX, each time
 * under that stub's names.
 */
#if defined(SIE_SUFFIX) || !defined(SIE_STUB_OWN_PART)
#define SIE_STUB_OWN_PART
#ifndef SIE_NSPANS
#error "define SIE_NSPANS before including sie/stub.bpf.h"
#endif

#ifndef SIE_NSAVES
#define SIE_NSAVES 1
#endif

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SIE_CTL_NR);
	__type(key, __u32);
	__type(value, __u64);
} sie_ctl SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SIE_NSPANS * SIE_STAT_NR);
	__type(key, __u32);
	__type(value, __u64);
} sie_stats SEC(".maps");

struct sie_task_state {
	__u64 applies;   /* mode 1: this task uses the new value */
	__s64 value;     /* mode 1: the value this task transitioned to */
	__u64 saved_valid; /* bit i: saved[i] holds an input saved by this task */
	__u64 saved[SIE_NSAVES];
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sie_task_state);
} sie_task SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SIE_MAX_SAFE);
	__type(key, __u32);
	__type(value, struct sie_range);
} sie_safe SEC(".maps");

/*
 * Mode 1: the tasks whose last guard found a safe-span frame on their stack (thread id -> ns of
 * that check); a task leaves when it switches. `sie status` names those of the current epoch:
 * the tasks holding a transition up.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u64);
} sie_blocked SEC(".maps");

/*
 * Mode 2: set to 1 by the loader, before the object is loaded, when the stub runs in mode 2 (it
 * loads sie_consistency.ko first). A .rodata constant, so the verifier drops the kfunc call
 * behind it as dead code otherwise and stubs of modes 0 and 1 load without the module.
 * sie_global_active is a __weak kfunc (NULL without the module), but testing its address
 * (bpf_ksym_exists) needs libbpf >= 1.2: libbpf 1.1 relocates the ld_imm64 of a module kfunc
 * without the module's BTF fd and the kernel refuses it ("invalid btf_id").
 */
const volatile __u32 sie_global_kfunc = 0;

static __always_inline __u64 sie_ctl_get(__u32 key)
{
	__u64 *v = bpf_map_lookup_elem(&sie_ctl, &key);

	return v ? *v : 0;
}

static __always_inline void sie_count(__u32 span, __u32 stat)
{
	__u32 key = span * SIE_STAT_NR + stat;
	__u64 *v = bpf_map_lookup_elem(&sie_stats, &key);

	if (v)
		*v += 1; /* per-CPU slot: no atomics needed */
}

/* Adds a task's transition latency to the current epoch's statistics (span 0). */
static __always_inline void sie_count_latency(__u64 ns)
{
	__u32 sum_key = SIE_STAT_EPOCH_SUM_NS, max_key = SIE_STAT_EPOCH_MAX_NS;
	__u64 *sum = bpf_map_lookup_elem(&sie_stats, &sum_key);
	__u64 *max = bpf_map_lookup_elem(&sie_stats, &max_key);

	sie_count(0, SIE_STAT_EPOCH_TASKS);
	if (sum)
		*sum += ns;
	if (max && *max < ns)
		*max = ns;
}

/*
 * The gate: may this hit apply, and with which value (*value)? Mode 0: whenever active, with
 * the current map value. Mode 1: only in a task that passed a safe-span entry with no safe-span
 * frame on its stack (sie_guard), with the value it transitioned to, so a task in the middle of
 * a span never sees a mix. Mode 2: only while sie_consistency says the instance switched (the
 * kernel flips that word at an instant with no task inside a span); closed without the module.
 */
static __always_inline int sie_gate(__s64 *value)
{
	struct sie_task_state *st;
	__u64 mode;

	if (!sie_ctl_get(SIE_CTL_ACTIVE))
		return 0;
	mode = sie_ctl_get(SIE_CTL_MODE);
	if (mode == 2) {
		if (!sie_global_kfunc || !sie_global_active((__u32)sie_ctl_get(SIE_CTL_INSTANCE)))
			return 0;
		*value = (__s64)sie_ctl_get(SIE_CTL_VALUE);
		return 1;
	}
	if (mode != 1) {
		*value = (__s64)sie_ctl_get(SIE_CTL_VALUE);
		return 1;
	}
	st = bpf_task_storage_get(&sie_task, bpf_get_current_task_btf(), 0, 0);
	if (!st || !st->applies)
		return 0;
	*value = st->value;
	return 1;
}

/* The safe ranges the stack checks compare with (a local copy: the verifier needs bounds). */
static __always_inline int sie_safe_ranges(struct sie_range *ranges)
{
	__u32 nsafe = sie_ctl_get(SIE_CTL_NSAFE);
	int j;

	if (nsafe > SIE_MAX_SAFE_CHECKED) /* the loader caps it; more need a bigger copy */
		return 0;
	for (j = 0; j < SIE_MAX_SAFE_CHECKED; j++) {
		__u32 k = j;
		struct sie_range *r = bpf_map_lookup_elem(&sie_safe, &k);

		ranges[j].start = r && j < nsafe ? r->start : 0;
		ranges[j].end = r && j < nsafe ? r->end : 0;
	}
	return 1;
}

/*
 * True when no return address on the current kernel stack lies inside a safe span. Entry 0 is
 * the probed instruction itself (the span being entered).
 */
static __always_inline int sie_stack_clean(struct pt_regs *ctx)
{
	__u64 buf[SIE_STACK_DEPTH];
	struct sie_range ranges[SIE_MAX_SAFE_CHECKED];

	if (!sie_safe_ranges(ranges))
		return 0;
	return sie_frames_clean(buf, bpf_get_stack(ctx, buf, sizeof(buf), 0), 1, ranges);
}

/*
 * Guard, attached at every safe-span entry (mode 1). Moves the current task to the target state
 * (new value, or back to the original on unload) when its stack holds no safe-span frame.
 * Tasks created later start without state (original value) and take the target at their first
 * guard, which they must pass before reaching any CS: the safe spans contain every CS.
 */
SEC("kprobe")
int sie_guard(struct pt_regs *ctx)
{
	struct sie_task_state *st;
	__u64 target, epoch, now;
	__s64 value;
	__u32 tid;

	if (!sie_ctl_get(SIE_CTL_ACTIVE) || sie_ctl_get(SIE_CTL_MODE) != 1)
		return 0;
	target = sie_ctl_get(SIE_CTL_TARGET);
	value = (__s64)sie_ctl_get(SIE_CTL_VALUE);
	st = bpf_task_storage_get(&sie_task, bpf_get_current_task_btf(), 0,
				  target ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0);
	if (!st)
		return 0;
	if (st->applies == target && (!target || st->value == value))
		return 0;
	tid = (__u32)bpf_get_current_pid_tgid();
	now = bpf_ktime_get_ns();
	if (!sie_stack_clean(ctx)) {
		sie_count(0, SIE_STAT_UNSAFE);
		bpf_map_update_elem(&sie_blocked, &tid, &now, BPF_ANY);
		return 0;
	}
	st->applies = target;
	st->value = value;
	sie_count(0, SIE_STAT_TRANSITIONS);
	bpf_map_delete_elem(&sie_blocked, &tid);
	epoch = sie_ctl_get(SIE_CTL_EPOCH_NS);
	if (epoch && now >= epoch)
		sie_count_latency(now - epoch);
	return 0;
}

/*
 * Mode 1 reverse check, run by `sie unload` over every task (a task iterator, loaded only in
 * mode 1): one line "pid blocking comm" per task still holding the new value. blocking is 1
 * when the task may be inside a safe span (a safe-span frame on its stack, a truncated stack,
 * or running on another CPU, whose stack cannot be read still). Once no holder blocks, none can
 * start to: with the target back at 0, a holder entering a safe span moves back at its guard.
 * So the kill switch then ends the transition exactly, without waiting for idle holders.
 */
SEC("iter/task")
int sie_reverse_check(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	struct sie_range ranges[SIE_MAX_SAFE_CHECKED];
	__u64 buf[SIE_STACK_DEPTH];
	struct sie_task_state *st;
	int blocking = 1;
	long n;

	if (!task)
		return 0;
	st = bpf_task_storage_get(&sie_task, task, 0, 0);
	if (!st || !st->applies)
		return 0;
	if (!task->on_cpu || task == bpf_get_current_task_btf()) {
		n = bpf_get_task_stack(task, buf, sizeof(buf), 0);
		blocking = !sie_safe_ranges(ranges) || !sie_frames_clean(buf, n, 0, ranges);
	}
	BPF_SEQ_PRINTF(ctx->meta->seq, "%d %d %s\n", task->pid, blocking, task->comm);
	return 0;
}

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SIE_MAX_MARKS);
	__type(key, struct sie_mark_key);
	__type(value, __u64);
} sie_marks SEC(".maps");

/*
 * Path token, at the first instruction of a CS whose end is also reached by a jump bypassing
 * it. Keyed by the stack pointer, not by task or CPU: a stack address belongs to one live frame
 * at a time, so an interrupt that runs the same code on the same task (deeper on its stack, or
 * on the CPU's interrupt stack) has another key and neither consumes nor overwrites this
 * frame's mark. synth proved the CS has no jump, call, return or stack pointer change and no
 * jump into its middle, so every marked frame reaches the apply probe with the same sp and
 * consumes its mark there; the loader attaches the apply before the mark, so no mark is left
 * behind unconsumed for a later bypass of the same frame to find.
 */
static __always_inline void sie_mark(__u32 span, struct pt_regs *ctx)
{
	struct sie_mark_key k = { .sp = ctx->sp, .span = span, .pad = 0 };
	__u64 task = (__u64)bpf_get_current_task();

	if (bpf_map_update_elem(&sie_marks, &k, &task, BPF_ANY))
		sie_count(span, SIE_STAT_MARKFAIL);
}

/* Takes this frame's mark of `span` (one use): 1 on the marked path, 0 on the bypass. */
static __always_inline int sie_take_mark(__u32 span, struct pt_regs *ctx)
{
	struct sie_mark_key k = { .sp = ctx->sp, .span = span, .pad = 0 };
	__u64 *task = bpf_map_lookup_elem(&sie_marks, &k);
	int mine = task && *task == (__u64)bpf_get_current_task();

	if (task)
		bpf_map_delete_elem(&sie_marks, &k);
	return mine;
}

/* Saves input X of a recompute span in the current task (slot `slot`). */
static __always_inline void sie_save(__u32 span, __u32 slot, __u64 x)
{
	struct sie_task_state *st;

	if (slot >= SIE_NSAVES || !sie_ctl_get(SIE_CTL_ACTIVE))
		return;
	st = bpf_task_storage_get(&sie_task, bpf_get_current_task_btf(), 0,
				  BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!st)
		return;
	st->saved[slot] = x;
	st->saved_valid |= 1ULL << slot;
}

/* Takes the saved input (one use: a second apply without a new save finds nothing). */
static __always_inline int sie_take_saved(__u32 slot, __u64 *x)
{
	struct sie_task_state *st;

	if (slot >= SIE_NSAVES)
		return 0;
	st = bpf_task_storage_get(&sie_task, bpf_get_current_task_btf(), 0, 0);
	if (!st || !(st->saved_valid & (1ULL << slot)))
		return 0;
	*x = st->saved[slot];
	st->saved_valid &= ~(1ULL << slot);
	return 1;
}

#endif /* the stub's own part */
