// SPDX-License-Identifier: GPL-2.0
/* Deliberately broken: indexes an array with an unchecked value. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64[8]);
} table SEC(".maps");

SEC("kprobe/do_nanosleep")
int broken(struct pt_regs *ctx)
{
	__u32 k = 0;
	__u64 *t = bpf_map_lookup_elem(&table, &k);
	__u32 i = (__u32)bpf_get_current_pid_tgid();

	if (!t)
		return 0;
	return t[i] > 5;
}

char LICENSE[] SEC("license") = "GPL";
