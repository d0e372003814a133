/* SPDX-License-Identifier: GPL-2.0 */
/*
 * sie_consistency: the GLOBAL consistency model (mode 2). Shared by the module
 * (kmod/sie_consistency), the BPF stubs (bpf/include/sie/consistency.bpf.h declares the kfunc)
 * and user space (control file syntax, status keys, numbers). Plain C, no includes.
 *
 * What it guarantees
 *   A constant (one INSTANCE, numbered by the constant's id) switches to its new value at one
 *   global instant at which no task has a frame inside any of the constant's safe spans, and
 *   back to the original value the same way. A task inside a span therefore sees either only
 *   the old or only the new value for the whole span. The instant is decided IN THE KERNEL:
 *   the instance's gate word flips in the same atomic operation that observes "no task inside",
 *   and the BPF stub reads that word at every CS probe through sie_global_active(), so there is
 *   no window between "safe" and "active" (the reference activated from user space after
 *   polling dmesg).
 *
 * How (per transition)
 *   1. Guard kprobes at every span entry and unguard kprobes at every span exit are registered
 *      and ARMED before anything is counted; their handlers do nothing until step 2 sets the
 *      word to PENDING. (Arming cannot happen inside stop_machine: text_poke needs IPIs. Arming
 *      after the scan would miss a task entering between scan and arming, which would later
 *      decrement a count it never incremented and activate while another task is inside.)
 *   2. stop_machine(): every task's stack is walked with the reliable unwinder (the same walk as
 *      stack_trace_save_tsk_reliable(), which is not exported): each frame whose resume address
 *      lies inside a span counts 1 (recursion counts per frame). A task whose stack cannot be
 *      walked reliably makes the scan inconclusive: nothing starts, and the scan is retried
 *      every SIE_CONS_RESCAN_MS until the timeout (as livepatch retries a transition). Count
 *      zero -> the word flips right there; otherwise the word becomes PENDING|count.
 *   3. Guard (pre-handler at an entry): count++ while PENDING and count > 0. Unguard
 *      (pre-handler at an exit): count--; the decrement that reaches 0 flips the word. Kprobe
 *      pre-handlers at one address run newest first, so the unguard runs BEFORE a CS stub
 *      attached earlier at the same address: user space must not place a CS probe on an exit
 *      of a span that uses the constant more than once (the last task out would apply the new
 *      value at that last use only). A span with a single use cannot mix and is fine.
 *   4. A timeout (delayed work) ends a transition that did not converge: a forward transition
 *      is rolled back (word OFF, never active), a reverse one leaves the new value active
 *      (result "timeout"); user space decides (sie unload refuses and keeps the stub).
 *   The counting kprobes are disabled (from a work item) once the transition ends; they are
 *   registered once per instance and unregistered when the instance is removed.
 *
 * Spans (per instance, at most SIE_CONS_MAX_SPANS, non-overlapping, absolute addresses):
 *   [START, END)  the span's instructions; ENTRY its single entry (usually START; must not be
 *   the target of a jump from inside the span, or a task would be counted twice); EXITs every
 *   place control leaves: a ret or jmp inside the span (counted before it runs),
 *   or the first address outside the span that a fall-through or a conditional jump out
 *   reaches. A frame counts as inside when its resume address A (a return address, or the
 *   interrupted ip) satisfies START < A < END or A is one of the span's EXITs: such a task
 *   passes exactly one unguard before it runs an instruction outside the span, while A == START
 *   passes the guard first.
 *
 * Control file /sys/kernel/debug/sie_consistency/control (0600, CAP_SYS_ADMIN), one command per
 * write(2), numbers in C syntax:
 *   span ID START END ENTRY EXIT [EXIT ...]   add a span to instance ID (created on first use)
 *   begin ID TIMEOUT_MS                        forward transition: to the new value
 *   revert ID TIMEOUT_MS                       reverse transition: back to the original
 *   remove ID                                  abort whatever runs, forget the instance (off)
 * begin/revert return once the transition has STARTED (or finished at once); follow it in the
 * status file. -EBUSY: a transition of this instance is running. -EALREADY: already there.
 *
 * Status /sys/kernel/debug/sie_consistency/ID/status, one "key value" per line:
 *   state      off | pending | active | reverting   (the gate is open in active and reverting)
 *   count      frames still inside spans (pending/reverting)
 *   result     none | running | instant | done | timeout | removed  (of the last transition)
 *   direction  forward | reverse
 *   scans      stop_machine scans of the last transition (more than 1: a stack was unreliable)
 *   frames     frames inside spans found by the conclusive scan
 *   unreliable tasks whose stack could not be walked, in the last scan
 *   blocking   pids of the tasks found inside spans (at most SIE_CONS_MAX_BLOCKERS), or -
 *   start_ns end_ns elapsed_ns   ktime_get_ns() at the request and at the flip (0 if none)
 *   spans      number of spans
 */
#ifndef SIE_CONSISTENCY_H
#define SIE_CONSISTENCY_H

#define SIE_CONS_MAX_ID 4096      /* instance ids are constant ids, 0 .. SIE_CONS_MAX_ID - 1 */
#define SIE_CONS_MAX_SPANS 16
#define SIE_CONS_MAX_EXITS 8      /* per span */
#define SIE_CONS_MAX_BLOCKERS 16
#define SIE_CONS_RESCAN_MS 20
#define SIE_CONS_MAX_TIMEOUT_MS 600000

/*
 * The gate word of an instance: state in the top bits, the count of frames inside spans in the
 * low bits. Both change together, in one atomic operation, so "count reached 0" and "the value
 * switched" are the same event.
 */
#define SIE_CONS_STATE_SHIFT 28
#define SIE_CONS_COUNT_MASK ((1U << SIE_CONS_STATE_SHIFT) - 1)
enum sie_cons_state {
	SIE_CONS_OFF = 0,       /* original value */
	SIE_CONS_PENDING = 1,   /* forward transition counting down; original value */
	SIE_CONS_ACTIVE = 2,    /* new value */
	SIE_CONS_REVERTING = 3, /* reverse transition counting down; new value */
};

/*
 * int sie_global_active(u32 instance)
 *   1 when the instance's new value applies (state active or reverting), 0 otherwise (also for
 *   an unknown instance). Callable from BPF_PROG_TYPE_KPROBE programs; reads one word, no locks.
 */

#endif /* SIE_CONSISTENCY_H */
