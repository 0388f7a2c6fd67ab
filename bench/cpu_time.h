/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef SOCKBENCH_CPU_TIME_H
#define SOCKBENCH_CPU_TIME_H

#include <stdbool.h>

/*
 * CPU time read at the start and the end of a benchmark's timed window, so
 * that connection set-up and whatever the machine did before stays out.
 * Only differences between two reads mean anything.
 */
struct cpu_time {
	unsigned long long machine;  /* busy ns of every CPU */
	unsigned long long switches; /* the machine's context switches */
	unsigned long long side;     /* ns one process (all its threads) and the kernel's
					workers (kworker, ksoftirqd) ran: a proxy's own cost,
					the work its sockets hand to the kernel included */
	unsigned long long workers;  /* the kernel workers' part of side */
};

/* pid 0: side stays 0 */
void cpu_time_read(struct cpu_time *t, int pid);

#endif
