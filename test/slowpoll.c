// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * LD_PRELOAD shim for a proxy on libsockbypass-splice: the first poll()
 * after the library set "flushed" in sbs_ctl waits SLOWPOLL_US microseconds
 * (default 3000) before it polls. That update tells the verdict it may
 * redirect again, and the poll asks whether the source has bytes again;
 * widening the moment between lets a test see what the kernel does in it,
 * which at full speed happens about once in a hundred runs. libbpf calls
 * bpf(2) through glibc's syscall(), which this wraps. Any map update's value
 * is read as a struct sbs_ctl: the library writes only sbs_ctl while a pair
 * runs, and sbs_dirs (larger, its word there 0) when it registers one.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/bpf.h>
#include "bpf/splice.h"

static int armed;

long syscall(long nr, ...)
{
	static long (*real)(long, ...);
	long a[6];
	va_list ap;

	if (!real)
		real = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
	va_start(ap, nr);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (nr == SYS_bpf && a[0] == BPF_MAP_UPDATE_ELEM) {
		const union bpf_attr *attr = (const void *)a[1];
		const struct sbs_ctl *ctl = (const void *)(unsigned long)attr->value;

		armed = ctl->flushed;
	}
	return real(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

int poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
	static int (*real)(struct pollfd *, nfds_t, int);
	const char *v = getenv("SLOWPOLL_US");

	if (!real)
		real = (int (*)(struct pollfd *, nfds_t, int))dlsym(RTLD_NEXT, "poll");
	if (armed) {
		armed = 0;
		usleep(v ? atol(v) : 3000);
	}
	return real(fds, nfds, timeout);
}
