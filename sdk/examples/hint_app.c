// SPDX-License-Identifier: BSD-2-Clause
/*
 * An application that tells the running policy what it is about to do (libsie-hint), does it,
 * and takes the hint back. Here the job is one write and one read of a file, e.g. sie_target's
 * /sys/kernel/debug/sie_target/call_arg, whose kernel code the policy decides for:
 *
 *	sie_hint_example HINT FILE INPUT
 *
 * prints what FILE reads after INPUT was written to it, under this thread's hint HINT.
 * Build: cc hint_app.c -lsie-hint (sdk/CMakeLists.txt builds it as sie_hint_example).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sie/hint.h>

static int job(const char *file, const char *input)
{
	char out[64] = "";
	FILE *f = fopen(file, "w");

	if (!f || fputs(input, f) < 0 || fclose(f))
		return -1;
	f = fopen(file, "r");
	if (!f || !fgets(out, sizeof(out), f))
		return -1;
	fclose(f);
	fputs(out, stdout);
	return 0;
}

int main(int argc, char **argv)
{
	int err;

	if (argc != 4) {
		fprintf(stderr, "usage: %s HINT FILE INPUT\n", argv[0]);
		return 2;
	}
	err = sie_hint_set(SIE_HINT_THREAD, 0, strtoull(argv[1], NULL, 0));
	if (err) {
		fprintf(stderr, "sie_hint_set: %s (%s)\n", strerror(-err),
			err == -ENOENT ? "no running policy reads hints" : sie_hint_map_path());
		return 1;
	}
	err = job(argv[2], argv[3]);
	sie_hint_clear(SIE_HINT_THREAD, 0);
	if (err) {
		perror(argv[2]);
		return 1;
	}
	return 0;
}
