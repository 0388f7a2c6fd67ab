// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockbench: one code path for TCP and AF_UNIX stream sockets, so that the
 * plain TCP, sockbypass and AF_UNIX columns of `make bench` differ only in
 * the socket underneath.
 *
 *   sockbench -l ADDR [-c CPU]                  serve (forever, one client at a time)
 *   sockbench -m stream -a ADDR -s SIZE -t SECS [-c CPU]   bytes/s of SIZE writes
 *   sockbench -m rr     -a ADDR -s SIZE -t SECS [-c CPU]   round trips of SIZE bytes
 *   sockbench -m conn   -a ADDR -t SECS [-c CPU]           connect/1-byte echo/close
 *   sockbench -m rr     -a ADDR -s SIZE -n COUNT [-c CPU]  COUNT round trips, not SECS
 *   sockbench -L ADDR [-c CPU]                  serve many clients at once (epoll echo)
 *   sockbench -m many   -a ADDR -s SIZE -n CONNS -t SECS   CONNS open connections, round
 *                       trips on each in turn; kernel slab per connection (both ends),
 *                       busy CPU and context switches per round trip of the machine;
 *                       with -p PID, CPU of process PID with the kernel's workers too
 *   sockbench -m bind    -a ADDR -t SECS       socket/bind ADDR/close: what a bind costs
 *   sockbench -m refused -a ADDR -t SECS       socket/connect to ADDR, no listener/close
 *                       (the cgroup bind and connect hooks' cost: virtual ports)
 *
 * ADDR is HOST:PORT for TCP (127.0.0.1:5000, [::1]:5000) or unix:PATH.
 * Prints one line of key=value results.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "cpu_time.h"

#define MAX_SIZE (4 << 20)

static void die(const char *what)
{
	fprintf(stderr, "sockbench: %s: %s\n", what, strerror(errno));
	exit(2);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static socklen_t parse_addr(const char *s, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (!strncmp(s, "unix:", 5)) {
		struct sockaddr_un *un = (void *)ss;

		un->sun_family = AF_UNIX;
		snprintf(un->sun_path, sizeof(un->sun_path), "%s", s + 5);
		return sizeof(*un);
	}
	char host[64];
	const char *colon = strrchr(s, ':');
	int port;

	if (!colon || colon - s >= (long)sizeof(host)) {
		fprintf(stderr, "sockbench: bad address '%s'\n", s);
		exit(2);
	}
	snprintf(host, sizeof(host), "%.*s", (int)(colon - s), s);
	port = atoi(colon + 1);
	if (host[0] == '[') {
		struct sockaddr_in6 *in6 = (void *)ss;

		host[strlen(host) - 1] = '\0';
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		if (inet_pton(AF_INET6, host + 1, &in6->sin6_addr) != 1)
			die("inet_pton");
		return sizeof(*in6);
	}
	struct sockaddr_in *in = (void *)ss;

	in->sin_family = AF_INET;
	in->sin_port = htons(port);
	if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
		die("inet_pton");
	return sizeof(*in);
}

static int connect_to(const char *addr)
{
	struct sockaddr_storage ss;
	socklen_t len = parse_addr(addr, &ss);
	int fd = socket(ss.ss_family, SOCK_STREAM, 0), one = 1;

	if (fd < 0)
		die("socket");
	if (connect(fd, (struct sockaddr *)&ss, len))
		die("connect");
	if (ss.ss_family != AF_UNIX)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static int read_full(int fd, char *buf, size_t len)
{
	while (len) {
		ssize_t n = read(fd, buf, len);

		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue; /* EAGAIN: see README, Known limits */
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int write_full(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Server: a 1-byte header says what the client wants: 's' stream (read until
 * EOF), 'r' round trips (echo SIZE-byte messages; SIZE follows as 4 bytes),
 * 'c' one byte echoed, then close.
 */
static void serve_one(int fd, char *buf)
{
	char mode;
	unsigned int size;

	if (read_full(fd, &mode, 1))
		return;
	switch (mode) {
	case 's':
		while (1) {
			ssize_t n = read(fd, buf, MAX_SIZE);

			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n <= 0)
				break;
		}
		write_full(fd, "k", 1); /* everything arrived */
		break;
	case 'r':
		if (read_full(fd, (char *)&size, 4) || size > MAX_SIZE)
			return;
		while (!read_full(fd, buf, size) && !write_full(fd, buf, size))
			;
		break;
	case 'c':
		write_full(fd, buf, 1);
		break;
	}
}

/* A listening socket on addr (its family in *family), "listening" printed. */
static int listen_on(const char *addr, int backlog, int *family)
{
	struct sockaddr_storage ss;
	socklen_t len = parse_addr(addr, &ss);
	int fd = socket(ss.ss_family, SOCK_STREAM, 0), one = 1;

	if (fd < 0)
		die("socket");
	if (ss.ss_family == AF_UNIX)
		unlink(((struct sockaddr_un *)&ss)->sun_path);
	else
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) || listen(fd, backlog))
		die("bind/listen");
	printf("listening\n");
	fflush(stdout);
	*family = ss.ss_family;
	return fd;
}

static void __attribute__((noreturn)) do_listen(const char *addr)
{
	int family, fd = listen_on(addr, 128, &family), one = 1;
	char *buf = malloc(MAX_SIZE);

	if (!buf)
		die("malloc");
	for (;;) {
		int c = accept(fd, NULL, NULL);

		if (c < 0) {
			if (errno == EINTR)
				continue;
			die("accept");
		}
		if (family != AF_UNIX)
			setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		serve_one(c, buf);
		close(c);
	}
}

/* Echo whatever arrives, on any number of connections at once (mode many). */
static void __attribute__((noreturn)) do_listen_many(const char *addr)
{
	int family, fd = listen_on(addr, 4096, &family), one = 1, ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN }, evs[256];
	char *buf = malloc(MAX_SIZE);

	if (ep < 0 || !buf)
		die("epoll_create1/malloc");
	ev.data.fd = fd;
	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	for (;;) {
		int n = epoll_wait(ep, evs, 256, -1);

		for (int i = 0; i < n; i++) {
			int c = evs[i].data.fd;

			if (c == fd) {
				c = accept(fd, NULL, NULL);
				if (c < 0)
					continue;
				if (family != AF_UNIX)
					setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
				ev.data.fd = c;
				epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
				continue;
			}
			ssize_t got = read(c, buf, MAX_SIZE);

			if (got < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (got <= 0 || write_full(c, buf, (size_t)got))
				close(c); /* also leaves the epoll set */
		}
	}
}

/* Kernel slab in use, bytes (SReclaimable + SUnreclaim). */
static long long slab_bytes(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[128];
	long long kb = 0, v;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Slab: %lld kB", &v) == 1)
			kb = v;
	fclose(f);
	return kb * 1024;
}

/*
 * Bytes in use per slab cache (active objects x object size), from
 * /proc/slabinfo (root only; n = 0 without it): says which kernel objects
 * a connection adds.
 */
#define MAX_CACHES 512
struct slab_use {
	char name[40];
	long long bytes;
};

static size_t slab_caches(struct slab_use *u)
{
	FILE *f = fopen("/proc/slabinfo", "r");
	char line[512];
	long long active, total, size;
	size_t n = 0;

	if (!f)
		return 0;
	while (n < MAX_CACHES && fgets(line, sizeof(line), f))
		if (sscanf(line, "%39s %lld %lld %lld", u[n].name, &active, &total, &size) == 4) {
			u[n].bytes = active * size;
			n++;
		}
	fclose(f);
	return n;
}

/* "slab_caches=name:bytes,..." per connection, the caches that grew most */
static void print_slab_growth(const struct slab_use *before, size_t nb, struct slab_use *after,
			      size_t na, size_t conns)
{
	/* after[i].bytes becomes cache i's growth */
	for (size_t i = 0; i < na; i++)
		for (size_t j = 0; j < nb; j++)
			if (!strcmp(before[j].name, after[i].name)) {
				after[i].bytes -= before[j].bytes;
				break;
			}
	printf("slab_caches=");
	for (int shown = 0; shown < 6; shown++) {
		size_t pick = 0;

		for (size_t i = 1; i < na; i++)
			if (after[i].bytes > after[pick].bytes)
				pick = i;
		if (!na || after[pick].bytes < 16 * (long long)conns)
			break;
		printf("%s%s:%lld", shown ? "," : "", after[pick].name,
		       after[pick].bytes / (long long)conns);
		after[pick].bytes = 0; /* not picked again */
	}
	printf(" ");
}

static void raise_fd_limit(void)
{
	struct rlimit r;

	if (!getrlimit(RLIMIT_NOFILE, &r)) {
		r.rlim_cur = r.rlim_max;
		setrlimit(RLIMIT_NOFILE, &r);
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* mean, p50, p99 of n samples, in microseconds */
static void print_latency(const char *what, double *lat, size_t n, double secs)
{
	double sum = 0;

	qsort(lat, n, sizeof(*lat), cmp_double);
	for (size_t i = 0; i < n; i++)
		sum += lat[i];
	printf("%s=%.0f mean_us=%.2f p50_us=%.2f p99_us=%.2f\n", what, n / secs,
	       n ? sum / n * 1e6 : 0, n ? lat[n / 2] * 1e6 : 0, n ? lat[n * 99 / 100] * 1e6 : 0);
}

int main(int argc, char **argv)
{
	const char *addr = NULL, *mode = "stream";
	double secs = 2, t0, t;
	size_t size = 65536, cap = 1 << 22, n = 0;
	int c, cpu = -1, listen_mode = 0, side_pid = 0;
	unsigned long count = 0;

	while ((c = getopt(argc, argv, "l:L:a:m:s:t:c:n:p:")) != -1) {
		switch (c) {
		case 'p': side_pid = atoi(optarg); break;
		case 'l': listen_mode = 1; addr = optarg; break;
		case 'L': listen_mode = 2; addr = optarg; break;
		case 'n': count = strtoul(optarg, NULL, 0); break;
		case 'a': addr = optarg; break;
		case 'm': mode = optarg; break;
		case 's': size = strtoul(optarg, NULL, 0); break;
		case 't': secs = atof(optarg); break;
		case 'c': cpu = atoi(optarg); break;
		default: fputs("see the comment at the top of bench/sockbench.c\n", stderr); return 2;
		}
	}
	if (!addr || !size || size > MAX_SIZE || secs <= 0) {
		fputs("sockbench: need -l ADDR or -a ADDR, 0 < -s <= 4M, -t > 0\n", stderr);
		return 2;
	}
	if (cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set))
			die("sched_setaffinity");
	}
	raise_fd_limit();
	if (listen_mode == 1)
		do_listen(addr);
	if (listen_mode == 2)
		do_listen_many(addr);

	char *buf = calloc(1, size);
	double *lat = malloc(cap * sizeof(double));

	if (!buf || !lat)
		die("malloc");
	if (!strcmp(mode, "stream")) {
		int fd = connect_to(addr);
		unsigned long long bytes = 0;

		write_full(fd, "s", 1);
		t0 = now();
		do {
			if (write_full(fd, buf, size))
				die("write");
			bytes += size;
		} while (now() - t0 < secs);
		shutdown(fd, SHUT_WR);
		if (read_full(fd, buf, 1)) /* the server read it all */
			die("stream end");
		t = now() - t0;
		printf("gbit_s=%.3f bytes=%llu secs=%.3f\n", bytes * 8 / t / 1e9, bytes, t);
		close(fd);
	} else if (!strcmp(mode, "rr")) {
		int fd = connect_to(addr);
		unsigned int s32 = (unsigned int)size;

		write_full(fd, "r", 1);
		write_full(fd, (char *)&s32, 4);
		t0 = now();
		do {
			double s = now();

			if (write_full(fd, buf, size) || read_full(fd, buf, size))
				die("round trip");
			if (n < cap)
				lat[n++] = now() - s;
		} while (count ? n < count : now() - t0 < secs);
		print_latency("rtt_per_s", lat, n, now() - t0);
		close(fd);
	} else if (!strcmp(mode, "many")) {
		int *fds = calloc(count ? count : 1, sizeof(int));
		static struct slab_use caches0[MAX_CACHES], caches1[MAX_CACHES];
		struct cpu_time cpu0, cpu1;
		size_t ncaches0 = slab_caches(caches0), ncaches1;
		long long slab0 = slab_bytes(), slab1;

		if (!count || !fds)
			die("many needs -n CONNS");
		for (size_t i = 0; i < count; i++) {
			fds[i] = connect_to(addr);
			/* one round trip each: both ends established (and in the map) */
			if (write_full(fds[i], buf, size) || read_full(fds[i], buf, size))
				die("first round trip");
		}
		slab1 = slab_bytes();
		ncaches1 = slab_caches(caches1);
		cpu_time_read(&cpu0, side_pid);
		t0 = now();
		for (size_t i = 0; now() - t0 < secs; i = (i + 1) % count) {
			double s = now();

			if (write_full(fds[i], buf, size) || read_full(fds[i], buf, size))
				die("round trip");
			if (n < cap)
				lat[n++] = now() - s;
		}
		cpu_time_read(&cpu1, side_pid);
		if (n) {
			double us = 1e-3 / n; /* ns in all to µs per round trip */

			printf("cpu_us=%.1f switches=%.2f ", (cpu1.machine - cpu0.machine) * us,
			       (double)(cpu1.switches - cpu0.switches) / n);
			if (side_pid)
				printf("side_cpu_us=%.1f worker_cpu_us=%.1f ", (cpu1.side - cpu0.side) * us,
				       (cpu1.workers - cpu0.workers) * us);
		}
		printf("slab_per_conn=%lld ", (slab1 - slab0) / (long long)count);
		print_slab_growth(caches0, ncaches0, caches1, ncaches1, count);
		print_latency("rtt_per_s", lat, n, now() - t0);
		for (size_t i = 0; i < count; i++)
			close(fds[i]);
	} else if (!strcmp(mode, "conn")) {
		t0 = now();
		do {
			double s = now();
			int fd = connect_to(addr);

			if (write_full(fd, "c", 1) || read_full(fd, buf, 1))
				die("connection");
			close(fd);
			if (n < cap)
				lat[n++] = now() - s;
		} while (now() - t0 < secs);
		print_latency("conn_per_s", lat, n, now() - t0);
	} else if (!strcmp(mode, "bind") || !strcmp(mode, "refused")) {
		struct sockaddr_storage ss;
		socklen_t len = parse_addr(addr, &ss);
		bool bind_mode = mode[0] == 'b';

		t0 = now();
		do {
			double s = now();
			int fd = socket(ss.ss_family, SOCK_STREAM, 0), one = 1;

			if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)))
				die("socket");
			if (bind_mode ? bind(fd, (struct sockaddr *)&ss, len) :
					!connect(fd, (struct sockaddr *)&ss, len) || errno != ECONNREFUSED)
				die(bind_mode ? "bind" : "connect: not refused");
			close(fd);
			if (n < cap)
				lat[n++] = now() - s;
		} while (now() - t0 < secs);
		print_latency("ops_per_s", lat, n, now() - t0);
	} else {
		fprintf(stderr, "sockbench: unknown mode '%s'\n", mode);
		return 2;
	}
	return 0;
}
