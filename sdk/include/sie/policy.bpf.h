/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The one header an sie policy includes. A policy decides, per event, which value a kernel
 * constant takes at each of its Critical Spans:
 *
 *	#include <sie/policy.bpf.h>
 *
 *	SIE_POLICY(hystart_delay_shift, ctx)
 *	{
 *		__u32 delay = sie_arg(ctx, delay);	// typed, named, live at the span
 *
 *		if (delay >= 40000)
 *			return sie_value(ctx, 1);
 *		return sie_default(ctx);
 *	}
 *
 * and runs it with `sie-run policy.bpf.c --const HYSTART_DELAY_SHIFT`. sie-run generates, per
 * constant, the stub's header (<lname>.h: id, range, decision hook) and the variables header
 * (<lname>_vars.h: the context type and one accessor per variable live at every span), and
 * `sie_consts.h` that includes them all; this header includes that one, so nothing else is
 * needed. See sdk/README.md for the tutorial.
 *
 * What the macros hide (and why they exist):
 *  - SIE_POLICY(c, ctx) defines the strong `sie_decide_<c>()` that replaces the stub's __weak
 *    fixed-value decision when sie-run links the policy with the stub (libbpf's static linker).
 *    No SEC(), no offsets, no register names: the stub owns the kprobes.
 *  - The decision is gated by the policy's transaction word (map sie_run_txn): until sie-run has
 *    attached every constant of the file, and again from the moment it starts tearing down, every
 *    constant of the file gets its shipped value. One map write switches all of them, so the
 *    constants of one file change together or not at all. The same word's flags make a run a
 *    shadow (decide and count, apply the default) or a canary (decide only in one cgroup), and
 *    every decision is counted by value in sie_run_decisions.
 *  - A policy file is one BPF object: sie-run links the stubs of all its constants (each under
 *    names of its own) with it and loads it once, so its globals, maps and helper programs
 *    exist once for every decision. Maps marked __sie_shared and the .data, .bss and SIE_KNOB
 *    sections are pinned by name (/sys/fs/bpf/<map>, sie_run_data, _bss, _knobs) so that
 *    sie hint, sie knob and bpftool reach them while it runs. `const volatile` globals (start
 *    settings, sie-run --set) are written before it loads.
 */
#ifndef SIE_POLICY_BPF_H
#define SIE_POLICY_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

/* sie_run_txn_val, sie_log_rec and friends: shared with sie-run (bpf/include/sie/abi.h). */
#include "sie/abi.h"

/*
 * The policy's object needs a GPL license (bpf_probe_read_kernel, bpf_snprintf); weak like the
 * stubs' own, so linking them keeps one without a duplicate-symbol error.
 */
char LICENSE[] SEC("license") __weak = "GPL";

/* A map user space reaches while the policy runs (sie hint, bpftool): pinned at /sys/fs/bpf/<name>. */
#define __sie_shared __uint(pinning, LIBBPF_PIN_BY_NAME)

/*
 * Knobs: settings a user changes without editing the policy (see sdk/README.md, "Knobs").
 *
 *	const volatile __u32 long_shift = 1;		// start setting: sie-run --set long_shift=2
 *	SIE_KNOB(__u32, rtt_threshold_us, 40000);	// live knob: sie knob rtt_threshold_us 20000
 *
 * A start setting is fixed when the policy loads (the verifier sees a constant, so branches on
 * it cost nothing). A live knob is a plain global in section .data.sie_knobs: sie-run creates
 * that section's map once, pins it at /sys/fs/bpf/sie_run_knobs and makes every object of the
 * policy (one per constant) use it, so `sie knob` changes the value everywhere at once. Read it
 * as a variable; the type must be an integer, bool or enum (what the command line can parse).
 */
#define SIE_KNOB(type, name, def) type name __attribute__((section(".data.sie_knobs"), used)) = (def)

#define ___SIE_STR2(x) #x
#define ___SIE_STR(x) ___SIE_STR2(x)

/* ---- transaction word and log/counter channels (shared with sie-run; layout is ABI) ---- */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sie_run_txn_val);
	__sie_shared;
} sie_run_txn SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
	__sie_shared;
} sie_run_log SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, char[SIE_COUNTER_NAME]);
	__type(value, __u64);
	__sie_shared;
} sie_run_counters SEC(".maps");

/*
 * Every decision, counted per constant, kind and value (sie-run's summary, `sie metrics`): what
 * a policy did, and in a shadow run what it would have done. Per CPU: no atomics on the hot path.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, SIE_RUN_DECISIONS_MAX);
	__type(key, struct sie_decision_key);
	__type(value, __u64);
	__sie_shared;
} sie_run_decisions SEC(".maps");

/* The canary cgroup (sie-run --cgroup): with SIE_RUN_CANARY only its tasks get decisions. */
struct {
	__uint(type, BPF_MAP_TYPE_CGROUP_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
	__sie_shared;
} sie_run_cgroup SEC(".maps");

/* Hints applications give (sdk/include/sie/hint.h): written from user space, read here. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SIE_HINT_MAX_ENTRIES);
	__type(key, struct sie_hint_key);
	__type(value, __u64);
	__sie_shared;
} sie_hints SEC(".maps");

/*
 * The hint the current task runs under: its thread's, else its process's, else its cgroup's
 * (the most specific wins); `def` when none was given. See sdk/README.md, "Hints".
 */
static __always_inline __u64 sie_hint(__u64 def)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct sie_hint_key k = { .scope = SIE_HINT_THREAD, .id = (__u32)pid_tgid };
	__u64 *v = bpf_map_lookup_elem(&sie_hints, &k);

	if (v)
		return *v;
	k.scope = SIE_HINT_PROCESS;
	k.id = pid_tgid >> 32;
	v = bpf_map_lookup_elem(&sie_hints, &k);
	if (v)
		return *v;
	k.scope = SIE_HINT_CGROUP;
	k.id = bpf_get_current_cgroup_id();
	v = bpf_map_lookup_elem(&sie_hints, &k);
	return v ? *v : def;
}

static __always_inline struct sie_run_txn_val *___sie_txn(void)
{
	__u32 k = 0;

	return bpf_map_lookup_elem(&sie_run_txn, &k);
}

static __always_inline int sie_txn_active(void)
{
	struct sie_run_txn_val *t = ___sie_txn();

	return t && t->active;
}

static __always_inline void ___sie_decision(struct sie_run_txn_val *t, __u32 cid, __u32 kind,
					    __s64 value)
{
	struct sie_decision_key k = { .cid = cid, .kind = kind, .value = value };
	__u64 one = 1, *n = bpf_map_lookup_elem(&sie_run_decisions, &k);

	if (n) {
		*n += 1; /* this CPU's count: no other writer */
		return;
	}
	/* A full map (more distinct values than it holds) loses the count, not the decision. */
	if (bpf_map_update_elem(&sie_run_decisions, &k, &one, BPF_NOEXIST) &&
	    (n = bpf_map_lookup_elem(&sie_run_decisions, &k)) == 0)
		__sync_fetch_and_add(&t->decisions_dropped, 1);
	else if (n)
		*n += 1;
}

/*
 * The decision at one hit, around the policy's body: the defaults until sie-run commits; with
 * --cgroup only tasks in the canary cgroup are decided; with --shadow the decision is counted
 * and the default applies. Every outcome is counted by value (sie_run_decisions).
 */
#define ___SIE_DECIDE(cid, decide, ctx)                                                    \
	({                                                                                 \
		struct sie_run_txn_val *___t = ___sie_txn();                               \
		__s64 ___v = (ctx)->def;                                                   \
                                                                                           \
		if (___t && ___t->active) {                                                \
			if ((___t->flags & SIE_RUN_CANARY) &&                              \
			    bpf_current_task_under_cgroup(&sie_run_cgroup, 0) != 1) {      \
				___sie_decision(___t, cid, SIE_DECISION_OUTSIDE, ___v);    \
			} else {                                                           \
				___v = decide(ctx);                                        \
				if (___t->flags & SIE_RUN_SHADOW) {                        \
					___sie_decision(___t, cid, SIE_DECISION_SHADOW, ___v); \
					___v = (ctx)->def;                                 \
				} else {                                                   \
					___sie_decision(___t, cid, SIE_DECISION_APPLIED, ___v); \
				}                                                          \
			}                                                                  \
		}                                                                          \
		___v;                                                                      \
	})

/* ---- the decision ---- */

/*
 * SIE_POLICY(<constant>, ctx) { ... return sie_value(ctx, v); }
 *
 * <constant> is the lower-case name of a constant given to sie-run (HYSTART_DELAY_SHIFT ->
 * hystart_delay_shift). The body runs at every hit of every span of that constant, with `ctx`
 * of type struct sie_ctx_<constant> *. It must return a value: sie_value(ctx, v) or
 * sie_default(ctx). A value outside the constant's range is not applied (the stub counts it as
 * rejected, see `sie status`).
 */
#define SIE_POLICY(cname, ctx)                                                               \
	_Static_assert(sie_const_known__##cname,                                             \
		       "SIE_POLICY(" #cname "): not a constant given to sie-run --const");    \
	static __always_inline __s64 ____sie_policy_##cname(struct sie_ctx_##cname *ctx);    \
	__noinline __s64 sie_decide_##cname(struct pt_regs *regs, __u32 span, __s64 value)   \
	{                                                                                    \
		struct sie_ctx_##cname ___ctx = { .regs = regs, .span = span, .def = value }; \
                                                                                             \
		return ___SIE_DECIDE(sie_const_id__##cname, ____sie_policy_##cname, &___ctx); \
	}                                                                                    \
	static __always_inline __s64 ____sie_policy_##cname(struct sie_ctx_##cname *ctx)

/* The value the constant has in the shipped kernel (what applies without a policy). */
#define sie_default(ctx) ((ctx)->def)
/* Apply v at this hit (range-checked by the stub). */
#define sie_value(ctx, v) ((__s64)(v))
/* Which Critical Span of the constant is being executed (0 .. SIE_<C>_NSPANS - 1). */
#define sie_span(ctx) ((ctx)->span)
/* The probed frame's registers (for BPF_CORE_READ-free escapes; prefer sie_arg). */
#define sie_regs(ctx) ((ctx)->regs)

/*
 * sie_arg(ctx, name): the variable `name` of the probed function as it is at the span, with its
 * C type (pointers to kernel structs are typed: read their fields with BPF_CORE_READ). Only
 * variables located exactly at every span of the constant (a register, or a stack slot read
 * with bpf_probe_read_kernel) exist; any other name fails to compile (sie-run explains which
 * variables are live and why the others are not).
 */
#define sie_arg(ctx, name) sie_arg__##name(ctx)

/* ---- logging ---- */

/* Never called: gives sie_log/sie_error the compiler's printf format checking. */
static inline __attribute__((format(printf, 1, 2))) void ___sie_fmt_check(const char *fmt, ...)
{
}

static __always_inline void ___sie_log_emit(__u32 level, const char *fmt, __u32 fmt_size,
					    __u64 *param, __u32 param_size)
{
	struct sie_log_rec *r = bpf_ringbuf_reserve(&sie_run_log, sizeof(*r), 0);

	if (!r) {
		__u32 k = 0;
		struct sie_run_txn_val *t = bpf_map_lookup_elem(&sie_run_txn, &k);

		if (t)
			__sync_fetch_and_add(&t->log_dropped, 1);
		return;
	}
	r->ts_ns = bpf_ktime_get_ns();
	r->level = level;
	r->tid = (__u32)bpf_get_current_pid_tgid();
	bpf_snprintf(r->msg, sizeof(r->msg), fmt, param, param_size);
	bpf_ringbuf_submit(r, 0);
}

/*
 * At most 12 arguments, bpf_snprintf's conversions (%d %i %u %x %ld %lld %llu %llx %s %p %c
 * ...). The message is stamped "file.bpf.c:LINE: " at compile time.
 */
#define ___sie_log(level, fmt, args...)                                                     \
	({                                                                                  \
		static const char ___fmt[] = __FILE_NAME__ ":" ___SIE_STR(__LINE__) ": " fmt; \
		unsigned long long ___param[___bpf_narg(args)];                             \
                                                                                            \
		if (0)                                                                      \
			___sie_fmt_check(fmt, ##args);                                      \
		_Pragma("GCC diagnostic push")                                              \
		_Pragma("GCC diagnostic ignored \"-Wint-conversion\"")                      \
		___bpf_fill(___param, args);                                                \
		_Pragma("GCC diagnostic pop")                                               \
		___sie_log_emit(level, ___fmt, sizeof(___fmt), ___param, sizeof(___param)); \
	})

/* A line in sie-run's output. */
#define sie_log(fmt, args...) ___sie_log(SIE_LOG_INFO, fmt, ##args)
/* Something is wrong: sie-run prints it, restores every default, detaches and exits 1. */
#define sie_error(fmt, args...) ___sie_log(SIE_LOG_ERROR, fmt, ##args)

/* ---- counters (summed and printed by sie-run; names up to 31 characters) ---- */

static __always_inline void ___sie_count_add(const char *key, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&sie_run_counters, key);

	if (v) {
		__sync_fetch_and_add(v, n);
		return;
	}
	/* First use (or a concurrent first use: then the add below is lost once, not more). */
	if (bpf_map_update_elem(&sie_run_counters, key, &n, BPF_NOEXIST)) {
		v = bpf_map_lookup_elem(&sie_run_counters, key);
		if (v)
			__sync_fetch_and_add(v, n);
	}
}

#define sie_count_add(name, n)                                                \
	({                                                                    \
		static const char ___key[SIE_COUNTER_NAME] = name;            \
		___sie_count_add(___key, (n));                                \
	})
#define sie_count(name) sie_count_add(name, 1)

/* ---- small conveniences ---- */

/* Thread id / process id of the task hitting the span. */
static __always_inline __u32 sie_tid(void)
{
	return (__u32)bpf_get_current_pid_tgid();
}
static __always_inline __u32 sie_pid(void)
{
	return bpf_get_current_pid_tgid() >> 32;
}

#if __has_include("sie_consts.h")
#include "sie_consts.h" /* generated by sie-run for the constants of this run */
#endif

#endif /* SIE_POLICY_BPF_H */
