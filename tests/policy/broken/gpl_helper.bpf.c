// SPDX-License-Identifier: GPL-2.0
/* Deliberately broken: a GPL-only helper from a non-GPL program. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("kprobe/do_nanosleep")
int broken(struct pt_regs *ctx)
{
	__u64 v = 0;

	bpf_probe_read_kernel(&v, sizeof(v), (void *)ctx->di);
	return v & 1;
}

char LICENSE[] SEC("license") = "Proprietary";
