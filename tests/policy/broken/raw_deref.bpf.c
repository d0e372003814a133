// SPDX-License-Identifier: GPL-2.0
/* Deliberately broken: dereferences a kernel pointer without BPF_CORE_READ. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

SEC("kprobe/tcp_v4_rcv")
int broken(struct pt_regs *ctx)
{
	struct sk_buff *skb = (struct sk_buff *)PT_REGS_PARM1(ctx);

	return skb->len > 100;
}

char LICENSE[] SEC("license") = "GPL";
