// SPDX-License-Identifier: GPL-2.0
/* Deliberately broken: uses a map lookup result without a NULL check. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} tid_values SEC(".maps");

SEC("kprobe/do_nanosleep")
int broken(struct pt_regs *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 *v = bpf_map_lookup_elem(&tid_values, &tid);

	return *v > 5;
}

char LICENSE[] SEC("license") = "GPL";
