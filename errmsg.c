// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* How every part of the loader reports a failure: one line, one exit code. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include "loader.h"

void err_line(const char *fmt, ...)
{
	va_list ap;

	fputs("Error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int errno_exit(int err)
{
	return (err == -EPERM || err == -EACCES) ? SB_EXIT_PERM : SB_EXIT_INTERNAL;
}
