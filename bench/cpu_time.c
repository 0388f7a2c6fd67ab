// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Busy CPU time of the machine, and of one process plus the kernel threads
 * that do socket work on its behalf. A sockmap proxy moves its bytes in a
 * kworker (sk_psock_backlog) and in softirq, where its own rusage does not
 * see them; a copy proxy does them in its syscalls. Counting the proxy and
 * those threads together compares the two; the machine's figure adds the
 * clients, backends and anything else running.
 *
 * Neither comes from the user/system ticks of /proc/stat: with a tickless
 * kernel a request that runs between two ticks on an otherwise idle CPU is
 * never sampled, and those counts came out below the proxy's own time. Idle
 * time is exact there, so the machine's busy time is wall time on every CPU
 * less idle; a task's is its scheduler run time (/proc/PID/schedstat).
 */
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cpu_time.h"

static unsigned long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* idle + iowait of every CPU (ns), and the context switches since boot */
static void machine_read(unsigned long long *idle_ns, unsigned long long *switches)
{
	unsigned long long user, nice, sys, idle, iowait;
	FILE *f = fopen("/proc/stat", "r");
	char line[512];

	*idle_ns = *switches = 0;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "cpu %llu %llu %llu %llu %llu", &user, &nice, &sys, &idle,
			   &iowait) == 5)
			*idle_ns = (idle + iowait) * (1000000000ULL / sysconf(_SC_CLK_TCK));
		sscanf(line, "ctxt %llu", switches);
	}
	fclose(f);
}

/* nanoseconds a task ran: the first field of DIR/schedstat */
static unsigned long long run_ns(const char *dir)
{
	unsigned long long ns = 0;
	char path[320];
	FILE *f;

	snprintf(path, sizeof(path), "%s/schedstat", dir);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fscanf(f, "%llu", &ns) != 1)
		ns = 0;
	fclose(f);
	return ns;
}

/* every thread of process pid (HAProxy runs one per CPU) */
static unsigned long long process_ns(int pid)
{
	unsigned long long sum = 0;
	char path[300];
	struct dirent *e;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	if (!d)
		return 0;
	while ((e = readdir(d))) {
		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s", pid, e->d_name);
		sum += run_ns(path);
	}
	closedir(d);
	return sum;
}

static bool kernel_worker(const char *dir)
{
	char path[320], comm[32] = "";
	FILE *f;

	snprintf(path, sizeof(path), "%s/comm", dir);
	f = fopen(path, "r");
	if (!f)
		return false;
	if (!fgets(comm, sizeof(comm), f))
		comm[0] = 0;
	fclose(f);
	return !strncmp(comm, "kworker", 7) || !strncmp(comm, "ksoftirqd", 9);
}

static unsigned long long kernel_workers_ns(void)
{
	unsigned long long sum = 0;
	DIR *d = opendir("/proc");
	struct dirent *e;
	char dir[300];

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		snprintf(dir, sizeof(dir), "/proc/%s", e->d_name);
		if (kernel_worker(dir))
			sum += run_ns(dir);
	}
	closedir(d);
	return sum;
}

void cpu_time_read(struct cpu_time *t, int pid)
{
	unsigned long long idle;

	machine_read(&idle, &t->switches);
	/* busy = wall time on every CPU less idle: the difference of two reads */
	t->machine = now_ns() * sysconf(_SC_NPROCESSORS_ONLN) - idle;
	t->workers = pid > 0 ? kernel_workers_ns() : 0;
	t->side = pid > 0 ? process_ns(pid) + t->workers : 0;
}
