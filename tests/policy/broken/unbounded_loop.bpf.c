// SPDX-License-Identifier: GPL-2.0
/* Deliberately broken: a loop whose bound the verifier cannot see. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("kprobe/do_nanosleep")
int broken(struct pt_regs *ctx)
{
	__u64 n = bpf_get_current_pid_tgid(), s = 0;

	for (__u64 i = 0; i < n; i++)
		s += i * bpf_get_prandom_u32();
	return s & 1;
}

char LICENSE[] SEC("license") = "GPL";
