// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* How every part of the loader reports: a failure in one line with one exit code; JSON strings. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>
#include "errmsg.h"

void err_line(const char *fmt, ...)
{
	va_list ap;

	fputs("Error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int need_root(const char *who, const char *caps)
{
	if (geteuid() == 0)
		return 0;
	err_line("%s needs root (%s): run it with sudo", who, caps);
	return SB_EXIT_PERM;
}

int errno_exit(int err)
{
	return (err == -EPERM || err == -EACCES) ? SB_EXIT_PERM : SB_EXIT_INTERNAL;
}

/* s as a JSON string, quotes and escapes included. */
void json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}
