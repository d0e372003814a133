// SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause
/* libsie-hint: sdk/include/sie/hint.h over the bpf(2) system call, no other dependency. */
#define _GNU_SOURCE
#include "sie/hint.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

const char *sie_hint_map_path(void)
{
	const char *p = getenv("SIE_HINTS_PIN");

	return p && *p ? p : "/sys/fs/bpf/" SIE_HINT_MAP;
}

static long sys_bpf(int cmd, union bpf_attr *attr)
{
	return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

/* A fresh fd of the pinned map (the map may be replaced when the policy restarts). */
static int map_fd(int flags)
{
	union bpf_attr a;

	memset(&a, 0, sizeof(a));
	a.pathname = (__u64)(unsigned long)sie_hint_map_path();
	a.file_flags = flags;
	int fd = (int)sys_bpf(BPF_OBJ_GET, &a);

	return fd < 0 ? -errno : fd;
}

static int make_key(enum sie_hint_scope scope, uint64_t id, struct sie_hint_key *k)
{
	memset(k, 0, sizeof(*k));
	k->scope = scope;
	switch (scope) {
	case SIE_HINT_THREAD:
		k->id = id ? id : (uint64_t)gettid();
		return 0;
	case SIE_HINT_PROCESS:
		k->id = id ? id : (uint64_t)getpid();
		return 0;
	case SIE_HINT_CGROUP:
		if (!id) {
			/* The caller's own cgroup: read from /proc/self/cgroup ("0::/path"). */
			char line[4096] = "/sys/fs/cgroup";
			int fd = open("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
			char buf[4000];
			ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);

			if (fd >= 0)
				close(fd);
			if (n <= 3 || strncmp(buf, "0::", 3))
				return -ENOENT;
			buf[n] = 0;
			buf[strcspn(buf, "\n")] = 0;
			strncat(line, buf + 3, sizeof(line) - strlen(line) - 1);
			id = sie_hint_cgroup_id(line);
			if (!id)
				return -errno;
		}
		k->id = id;
		return 0;
	}
	return -EINVAL;
}

static int map_op(int cmd, enum sie_hint_scope scope, uint64_t id, uint64_t *value)
{
	struct sie_hint_key k;
	union bpf_attr a;
	int err = make_key(scope, id, &k);
	int fd;

	if (err)
		return err;
	fd = map_fd(cmd == BPF_MAP_LOOKUP_ELEM ? BPF_F_RDONLY : 0);
	if (fd < 0)
		return fd;
	memset(&a, 0, sizeof(a));
	a.map_fd = fd;
	a.key = (__u64)(unsigned long)&k;
	a.value = (__u64)(unsigned long)value;
	a.flags = cmd == BPF_MAP_UPDATE_ELEM ? BPF_ANY : 0;
	err = sys_bpf(cmd, &a) ? -errno : 0;
	close(fd);
	/* No hint to clear is no error; a missing map (no policy) was reported above. */
	if (cmd == BPF_MAP_DELETE_ELEM && err == -ENOENT)
		return 0;
	return err;
}

int sie_hint_set(enum sie_hint_scope scope, uint64_t id, uint64_t value)
{
	return map_op(BPF_MAP_UPDATE_ELEM, scope, id, &value);
}

int sie_hint_clear(enum sie_hint_scope scope, uint64_t id)
{
	return map_op(BPF_MAP_DELETE_ELEM, scope, id, NULL);
}

int sie_hint_get(enum sie_hint_scope scope, uint64_t id, uint64_t *value)
{
	return map_op(BPF_MAP_LOOKUP_ELEM, scope, id, value);
}

uint64_t sie_hint_cgroup_id(const char *path)
{
	/* The id bpf_get_current_cgroup_id() returns is the cgroup's kernfs id: its file handle. */
	union {
		struct file_handle fh;
		char buf[sizeof(struct file_handle) + sizeof(uint64_t)];
	} h;
	uint64_t id;
	int mount_id;

	h.fh.handle_bytes = sizeof(id);
	if (name_to_handle_at(AT_FDCWD, path, &h.fh, &mount_id, 0))
		return 0;
	if (h.fh.handle_bytes != sizeof(id)) {
		errno = ENOTSUP;
		return 0;
	}
	memcpy(&id, h.fh.f_handle, sizeof(id));
	return id;
}
