/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel-only helpers shared by sie_kfuncs and sie_native: the one store both use to rewrite a
 * Critical Span's memory cell. Kept in one place so the address checks cannot drift apart.
 */
#ifndef SIE_KSTORE_H
#define SIE_KSTORE_H

#include <linux/mm.h>
#include <linux/uaccess.h>
#include <asm/processor.h>
#include <asm/vsyscall.h>

/*
 * One store of exactly `width` bytes (1, 2, 4 or 8) to a kernel address. User, non-canonical
 * and vsyscall addresses are refused, and a fault gives -EFAULT instead of an oops.
 */
static inline int sie_store_nofault(unsigned long addr, u64 val, u32 width)
{
	u8 v8 = val;
	u16 v16 = val;
	u32 v32 = val;

	if (addr < TASK_SIZE_MAX + PAGE_SIZE || is_vsyscall_vaddr(addr) ||
	    !__is_canonical_address(addr, boot_cpu_data.x86_virt_bits))
		return -EFAULT;
	pagefault_disable();
	switch (width) {
	case 1:
		__put_kernel_nofault((void *)addr, &v8, u8, fault);
		break;
	case 2:
		__put_kernel_nofault((void *)addr, &v16, u16, fault);
		break;
	case 4:
		__put_kernel_nofault((void *)addr, &v32, u32, fault);
		break;
	case 8:
		__put_kernel_nofault((void *)addr, &val, u64, fault);
		break;
	}
	pagefault_enable();
	return 0;
fault:
	pagefault_enable();
	return -EFAULT;
}

#endif /* SIE_KSTORE_H */
