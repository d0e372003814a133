/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * Hints from applications to a running sie policy (libsie-hint). A process, a thread or an
 * operator for a cgroup says what it is doing ("random reads", "a sequential scan", as numbers
 * the policy defines); the policy reads the hint of the task at each decision (sie_hint() in
 * <sie/policy.bpf.h>) and picks a value for it. Most specific wins: thread, process, cgroup.
 *
 *	#include <sie/hint.h>
 *
 *	if (sie_hint_set(SIE_HINT_THREAD, 0, HINT_SEQUENTIAL) < 0)	// 0: this thread
 *		...	// no policy reads hints (-ENOENT) or no permission (-EPERM, -EACCES)
 *	scan();
 *	sie_hint_clear(SIE_HINT_THREAD, 0);
 *
 * The hints live in the policy's map pinned at /sys/fs/bpf/sie_hints ($SIE_HINTS_PIN
 * overrides); writing it needs the rights to that file (root, or a group the operator gave
 * it). Functions return 0 or a negative errno and keep no state: any thread may call them.
 * Plain C, no dependency but the bpf(2) system call; link with -lsie-hint.
 */
#ifndef SIE_HINT_H
#define SIE_HINT_H

#include <stdint.h>

#include "sie/abi.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Gives `id` (a thread id, process id or cgroup id; 0: the caller's own) the hint `value`. */
int sie_hint_set(enum sie_hint_scope scope, uint64_t id, uint64_t value);
/* Removes the hint of `id` (0: the caller's own); 0 also when there was none. */
int sie_hint_clear(enum sie_hint_scope scope, uint64_t id);
/* The hint of `id` (0: the caller's own) into *value; -ENOENT when it has none. */
int sie_hint_get(enum sie_hint_scope scope, uint64_t id, uint64_t *value);
/* The cgroup v2 id of a cgroup directory (e.g. /sys/fs/cgroup/batch), as the policy sees it;
 * 0 on error (errno set). */
uint64_t sie_hint_cgroup_id(const char *path);
/* The path of the hint map the functions use. */
const char *sie_hint_map_path(void);

#ifdef __cplusplus
}
#endif

#endif /* SIE_HINT_H */
