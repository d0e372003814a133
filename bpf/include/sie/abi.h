/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What BPF code and user space must agree on, in one place (the scx intf.h way, like
 * kmod/include/sie/consistency.h): the stub's control words and counters, written and read by
 * runtime/loader through the pinned maps, and sie-run's transaction word and log records,
 * shared by every policy object (sdk/include/sie/policy.bpf.h) and runtime/policy.
 *
 * Plain C with fixed-width kernel types. BPF C: include after vmlinux.h (it defines __u32,
 * __u64). C and C++ in user space: <linux/types.h> is included here. Changing anything below
 * changes an ABI between a loaded stub or policy and the sie binary: the _Static_asserts at the
 * end pin the record layouts.
 */
#ifndef SIE_ABI_H
#define SIE_ABI_H

#ifndef __bpf__
#include <linux/types.h>
#endif

#ifdef __cplusplus
#define SIE_ABI_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define SIE_ABI_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

/* ---- the stub (bpf/include/sie/stub.bpf.h) ---- */

/* Maps a stub pins under /sys/fs/bpf/sie/<name>/ (the names of its map definitions). */
#define SIE_MAP_CTL "sie_ctl"
#define SIE_MAP_STATS "sie_stats"
#define SIE_MAP_TASK "sie_task"
#define SIE_MAP_SAFE "sie_safe"
#define SIE_MAP_BLOCKED "sie_blocked"
#define SIE_MAP_MARKS "sie_marks"
/* The mode-1 reverse check (a task iterator program), pinned next to the maps in mode 1. */
#define SIE_PROG_REVERSE_CHECK "sie_reverse_check"

/* A key of sie_marks: a path token span's mark of the frame whose stack pointer is sp. */
struct sie_mark_key {
	__u64 sp;   /* the stack pointer at the CS's first instruction (and at its apply probe) */
	__u32 span;
	__u32 pad;  /* zero */
};

#define SIE_MAX_MARKS 4096 /* frames between a mark and its apply at one time */

/* Control words, keys of sie_ctl (u64 each); user space writes them, the programs only read. */
enum sie_ctl_key {
	SIE_CTL_VALUE = 0,  /* the policy value V (s64), used by the default decision */
	SIE_CTL_ACTIVE = 1, /* 0: nothing is applied (kill switch), 1: the gate decides */
	SIE_CTL_MODE = 2,   /* 0 immediate, 1 per-task, 2 global (sie_consistency decides when) */
	SIE_CTL_TARGET = 3, /* mode 1: 1 = tasks move to the new value, 0 = back to the original */
	SIE_CTL_NSAFE = 4,  /* mode 1: valid entries of sie_safe */
	SIE_CTL_INSTANCE = 5, /* mode 2: the sie_consistency instance (the constant's id) */
	SIE_CTL_EPOCH_NS = 6, /* mode 1: CLOCK_MONOTONIC ns of the last request (target or value) */
	SIE_CTL_NR = 8,
};

/* Counters of sie_stats (per CPU, u64 each), key span * SIE_STAT_NR + stat. */
enum sie_stat {
	SIE_STAT_HITS = 0,     /* probe hits */
	SIE_STAT_APPLIED = 1,  /* new value written */
	SIE_STAT_REJECTED = 2, /* decision out of range, or the formula failed (x / 0, huge shift) */
	SIE_STAT_FAILED = 3,   /* the kfunc refused (not a registered site, fault...) */
	SIE_STAT_GATED = 4,    /* hit while inactive, or the task has not transitioned (mode 1) */
	SIE_STAT_NOSAVE = 5,   /* recompute: apply without a saved input in this task */
	SIE_STAT_TRANSITIONS = 6, /* guard: tasks switched to the target state (span 0 only) */
	SIE_STAT_UNSAFE = 7,   /* guard: stack check found a safe-span frame (or was truncated) */
	/*
	 * Per-task transition latency since the last request (span 0 only; the loader zeroes them
	 * when it writes SIE_CTL_EPOCH_NS): tasks switched, the sum and the per-CPU maximum of
	 * their time from the request to their switch, ns.
	 */
	SIE_STAT_EPOCH_TASKS = 8,
	SIE_STAT_EPOCH_SUM_NS = 9,
	SIE_STAT_EPOCH_MAX_NS = 10,
	/*
	 * Path token spans: the apply probe was reached without this frame's mark (the path
	 * bypassing the CS: nothing is written), and marks the mark probe could not record (a
	 * full sie_marks: that pass keeps the original value).
	 */
	SIE_STAT_BYPASS = 11,
	SIE_STAT_MARKFAIL = 12,
	SIE_STAT_NR = 13,
};

/* An entry of sie_safe: a safe span's address range [start, end) (mode 1). */
struct sie_range {
	__u64 start; /* absolute address of the first instruction */
	__u64 end;   /* one past the last instruction */
};

#define SIE_MAX_SAFE 32       /* entries of sie_safe */
#define SIE_MAX_SAFE_CHECKED 8 /* entries the mode-1 stack check reads (a local copy) */

/* ---- sie-run (sdk/include/sie/policy.bpf.h, runtime/policy) ---- */

/* Maps every object of one policy shares, pinned by name under /sys/fs/bpf. */
#define SIE_RUN_MAP_TXN "sie_run_txn"
#define SIE_RUN_MAP_LOG "sie_run_log"
#define SIE_RUN_MAP_COUNTERS "sie_run_counters"

#define SIE_RUN_MAP_DECISIONS "sie_run_decisions"
#define SIE_RUN_MAP_CGROUP "sie_run_cgroup"

/* sie_run_txn_val.flags: how decisions are used (set by sie-run before it commits). */
enum sie_run_flags {
	SIE_RUN_SHADOW = 1, /* decide and count, but every hit keeps the default (--shadow) */
	SIE_RUN_CANARY = 2, /* decide only for tasks in sie_run_cgroup[0] (--cgroup); others default */
};

/* The value of sie_run_txn's single entry. */
struct sie_run_txn_val {
	__u64 active;      /* 1: decisions apply; 0: every constant of the file keeps its default */
	__u64 log_dropped; /* log records lost to a full ring buffer */
	__u64 flags;       /* enum sie_run_flags */
	__u64 decisions_dropped; /* decisions not counted: sie_run_decisions was full */
};

/*
 * What became of one decision (a hit that passed the stub's gate), counted per constant, kind
 * and value in sie_run_decisions (a per-CPU hash: count per CPU, summed by user space).
 */
enum sie_decision_kind {
	SIE_DECISION_APPLIED = 0, /* the policy's value went to the stub (range-checked there) */
	SIE_DECISION_SHADOW = 1,  /* the policy's value, counted only: the default applied */
	SIE_DECISION_OUTSIDE = 2, /* a task outside the canary cgroup: the default (value) applied */
};

struct sie_decision_key {
	__u32 cid;  /* the constant's id (const.json "id") */
	__u32 kind; /* enum sie_decision_kind */
	__s64 value;
};

#define SIE_RUN_DECISIONS_MAX 4096 /* distinct (constant, kind, value) triples counted */

#define SIE_LOG_MSG 224
#define SIE_COUNTER_NAME 32 /* key size of sie_run_counters: a NUL-padded name */

enum sie_log_level {
	SIE_LOG_INFO = 0,
	SIE_LOG_ERROR = 1, /* sie-run stops the policy (restores defaults) and exits 1 */
};

/* A record of the sie_run_log ring buffer. */
struct sie_log_rec {
	__u64 ts_ns;
	__u32 level; /* enum sie_log_level */
	__u32 tid;
	char msg[SIE_LOG_MSG]; /* "file.bpf.c:LINE: formatted message" */
};

/* ---- hints from applications (sdk/include/sie/hint.h, `sie hint`) ---- */

/*
 * A running policy's hint map, pinned at /sys/fs/bpf/sie_hints (by name, like sie_run_txn):
 * applications, `sie hint` and operators write it, the policy reads it (sie_hint()). An LRU
 * hash: hints of threads and processes that exited age out instead of filling it.
 */
#define SIE_HINT_MAP "sie_hints"
#define SIE_HINT_MAX_ENTRIES 4096

enum sie_hint_scope {
	SIE_HINT_THREAD = 1,  /* id: a thread id (the kernel's pid) */
	SIE_HINT_PROCESS = 2, /* id: a process id (the kernel's tgid) */
	SIE_HINT_CGROUP = 3,  /* id: a cgroup v2 id (bpf_get_current_cgroup_id) */
};

struct sie_hint_key {
	__u32 scope; /* enum sie_hint_scope */
	__u32 pad;   /* zero */
	__u64 id;
};

/* ---- layouts both sides compile against ---- */

SIE_ABI_ASSERT(SIE_CTL_EPOCH_NS < SIE_CTL_NR, "sie_ctl too small");
SIE_ABI_ASSERT(SIE_MAX_SAFE_CHECKED <= SIE_MAX_SAFE, "stack check reads past sie_safe");
SIE_ABI_ASSERT(sizeof(struct sie_range) == 16, "sie_range layout");
SIE_ABI_ASSERT(sizeof(struct sie_mark_key) == 16, "sie_mark_key layout");
SIE_ABI_ASSERT(__builtin_offsetof(struct sie_range, end) == 8, "sie_range layout");
SIE_ABI_ASSERT(sizeof(struct sie_run_txn_val) == 32, "sie_run_txn_val layout");
SIE_ABI_ASSERT(__builtin_offsetof(struct sie_run_txn_val, log_dropped) == 8,
	       "sie_run_txn_val layout");
SIE_ABI_ASSERT(__builtin_offsetof(struct sie_run_txn_val, flags) == 16, "sie_run_txn_val layout");
SIE_ABI_ASSERT(sizeof(struct sie_decision_key) == 16, "sie_decision_key layout");
SIE_ABI_ASSERT(__builtin_offsetof(struct sie_decision_key, value) == 8, "sie_decision_key layout");
SIE_ABI_ASSERT(sizeof(struct sie_log_rec) == 16 + SIE_LOG_MSG, "sie_log_rec layout");
SIE_ABI_ASSERT(sizeof(struct sie_hint_key) == 16, "sie_hint_key layout");
SIE_ABI_ASSERT(__builtin_offsetof(struct sie_hint_key, id) == 8, "sie_hint_key layout");
SIE_ABI_ASSERT(__builtin_offsetof(struct sie_log_rec, level) == 8, "sie_log_rec layout");
SIE_ABI_ASSERT(__builtin_offsetof(struct sie_log_rec, tid) == 12, "sie_log_rec layout");
SIE_ABI_ASSERT(__builtin_offsetof(struct sie_log_rec, msg) == 16, "sie_log_rec layout");

#endif /* SIE_ABI_H */
