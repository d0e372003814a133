/* SPDX-License-Identifier: GPL-2.0 */
/*
 * BPF-side declaration of the sie_consistency module's kfunc (mode 2, the global consistency
 * model). The contract is in kmod/include/sie/consistency.h. Include after vmlinux.h.
 *
 * Declared __weak: a program that only calls it behind bpf_ksym_exists(sie_global_active) loads
 * without the module (the verifier drops the dead call), so stubs of modes 0 and 1 do not need
 * sie_consistency.ko. A program that calls it unconditionally fails to load without it.
 */
#ifndef SIE_CONSISTENCY_BPF_H
#define SIE_CONSISTENCY_BPF_H

#include "sie/consistency.h"

extern int sie_global_active(__u32 instance) __ksym __weak;

#endif /* SIE_CONSISTENCY_BPF_H */
