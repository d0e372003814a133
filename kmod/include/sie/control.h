/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel-only helpers shared by the debugfs control files of sie_kfuncs, sie_native and
 * sie_consistency: one command per write(2), words separated by blanks. Kept in one place so
 * the permission, length and parsing rules cannot drift apart.
 */
#ifndef SIE_CONTROL_H
#define SIE_CONTROL_H

#include <linux/capability.h>
#include <linux/err.h>
#include <linux/string.h>
#include <linux/uaccess.h>

/*
 * Copies one command written to a control file into buf (size bytes) and returns it with
 * surrounding blanks removed: -EPERM without CAP_SYS_ADMIN, -EINVAL when it does not fit.
 */
static inline char *sie_ctl_copy(char *buf, size_t size, const char __user *ubuf, size_t len)
{
	if (!capable(CAP_SYS_ADMIN))
		return ERR_PTR(-EPERM);
	if (len >= size)
		return ERR_PTR(-EINVAL);
	if (copy_from_user(buf, ubuf, len))
		return ERR_PTR(-EFAULT);
	buf[len] = '\0';
	return strim(buf);
}

/* Splits cmd in place into at most max words; returns their number or -EINVAL for more. */
static inline int sie_ctl_split(char *cmd, char **argv, int max)
{
	int argc = 0;
	char *tok;

	while ((tok = strsep(&cmd, " \t")) != NULL) {
		if (!*tok)
			continue;
		if (argc == max)
			return -EINVAL;
		argv[argc++] = tok;
	}
	return argc;
}

#endif /* SIE_CONTROL_H */
