// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * stall: how much a connection whose receiver stops reading holds, and how
 * its bytes come back once it reads again.
 *
 *   stall -a ADDR -p PORT -n CONNS [-w WRITE] [-i IDLE_MS]
 *
 * Listens on ADDR:PORT, opens CONNS connections to itself and accepts them.
 * Each client writes a checked stream (non-blocking, WRITE bytes a call) until
 * its writes have not moved for IDLE_MS: what it got in is what the
 * connection holds for a reader that does not read. Any write error other
 * than EAGAIN (ENOMEM, a short count on a blocking socket) fails the run.
 * Then every server reads its connection back and checks every byte. Prints
 *
 *   accepted_min=B accepted_median=B accepted_max=B tcp_mem_delta=B readback_s=S longest_stall_s=S
 *
 * tcp_mem_delta is /proc/net/sockstat's TCP "mem" (pages of all TCP sockets
 * of the host) while the queues were full, less before: a rough figure, as
 * other sockets count too. longest_stall_s is the longest time the read-back
 * made no progress. Exit 0 if every byte came back intact.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct { const char *addr, *port; long n, wchunk, idle_ms; } o = {
	.addr = "127.0.0.1", .port = "5700", .n = 16, .wchunk = 65536, .idle_ms = 500,
};

struct conn { int client, server; unsigned long long sent, got; };

static void die(const char *what)
{
	fprintf(stderr, "stall: %s: %s\n", what, strerror(errno));
	exit(2);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Byte i of connection c's stream: position-dependent, differs per connection. */
static unsigned char pattern(long c, unsigned long long i)
{
	unsigned long long x = (i + 1) * 0x9E3779B97F4A7C15ULL ^ (unsigned long long)(c + 1) * 0xff51afd7ULL;

	return (unsigned char)((x >> 31) ^ (x >> 45) ^ (i >> 9));
}

static long sockstat_tcp_mem_pages(void)
{
	char line[256];
	long mem = -1;
	FILE *f = fopen("/proc/net/sockstat", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char *p = strstr(line, " mem ");

		if (!strncmp(line, "TCP:", 4) && p)
			mem = atol(p + 5);
	}
	fclose(f);
	return mem;
}

static int cmp_ull(const void *a, const void *b)
{
	unsigned long long x = *(const unsigned long long *)a, y = *(const unsigned long long *)b;

	return x < y ? -1 : x > y;
}

/* Write until no write has gone in for idle_ms. */
static void fill(struct conn *c, long n)
{
	unsigned char *buf = malloc((size_t)o.wchunk);
	double last = now();

	if (!buf)
		die("malloc");
	while (now() - last < o.idle_ms / 1000.0) {
		bool moved = false;

		for (long i = 0; i < n; i++) {
			for (long k = 0; k < o.wchunk; k++)
				buf[k] = pattern(i, c[i].sent + (unsigned long long)k);
			ssize_t w = write(c[i].client, buf, (size_t)o.wchunk);

			if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
				fprintf(stderr, "stall: write on connection %ld after %llu bytes: %s\n",
					i, c[i].sent, strerror(errno));
				exit(1);
			}
			if (w > 0) {
				c[i].sent += (unsigned long long)w;
				moved = true;
			}
		}
		if (moved)
			last = now();
		else
			usleep(1000);
	}
	free(buf);
}

/* Read every connection back, checking each byte; returns the longest stall. */
static double drain(struct conn *c, long n)
{
	unsigned char buf[65536];
	double last = now(), longest = 0;
	long left = n;

	while (left) {
		bool moved = false;

		for (long i = 0; i < n; i++) {
			if (c[i].got == c[i].sent)
				continue;
			ssize_t r = read(c[i].server, buf, sizeof(buf));

			if (r == 0) {
				fprintf(stderr, "stall: connection %ld ended at %llu of %llu bytes\n",
					i, c[i].got, c[i].sent);
				exit(1);
			}
			if (r < 0) {
				if (errno == EAGAIN)
					continue;
				die("read");
			}
			for (ssize_t k = 0; k < r; k++)
				if (buf[k] != pattern(i, c[i].got + (unsigned long long)k)) {
					fprintf(stderr, "stall: connection %ld: byte %llu differs\n",
						i, c[i].got + (unsigned long long)k);
					exit(1);
				}
			c[i].got += (unsigned long long)r;
			if (c[i].got > c[i].sent) {
				fprintf(stderr, "stall: connection %ld: more bytes than were sent\n", i);
				exit(1);
			}
			if (c[i].got == c[i].sent)
				left--;
			moved = true;
		}
		if (moved) {
			if (now() - last > longest)
				longest = now() - last;
			last = now();
		} else {
			usleep(200);
			if (now() - last > 60) {
				fprintf(stderr, "stall: no progress for 60 s\n");
				exit(1);
			}
		}
	}
	return longest;
}

int main(int argc, char **argv)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST }, *ai;
	unsigned long long *sorted;
	struct conn *c;
	long mem_before, mem_full;
	double start, longest;
	int opt, lfd, one = 1;

	while ((opt = getopt(argc, argv, "a:p:n:w:i:")) != -1) {
		switch (opt) {
		case 'a': o.addr = optarg; break;
		case 'p': o.port = optarg; break;
		case 'n': o.n = atol(optarg); break;
		case 'w': o.wchunk = atol(optarg); break;
		case 'i': o.idle_ms = atol(optarg); break;
		default:
			fprintf(stderr, "usage: stall -a ADDR -p PORT -n CONNS [-w WRITE] [-i IDLE_MS]\n");
			return 2;
		}
	}
	if (o.n < 1 || o.wchunk < 1 || getaddrinfo(o.addr, o.port, &hints, &ai))
		die("arguments");
	c = calloc((size_t)o.n, sizeof(*c));
	sorted = calloc((size_t)o.n, sizeof(*sorted));
	lfd = socket(ai->ai_family, SOCK_STREAM, 0);
	if (!c || !sorted || lfd < 0)
		die("setup");
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, ai->ai_addr, ai->ai_addrlen) || listen(lfd, (int)o.n))
		die("listen");
	mem_before = sockstat_tcp_mem_pages();
	for (long i = 0; i < o.n; i++) {
		c[i].client = socket(ai->ai_family, SOCK_STREAM, 0);
		if (c[i].client < 0 || connect(c[i].client, ai->ai_addr, ai->ai_addrlen))
			die("connect");
		c[i].server = accept(lfd, NULL, NULL);
		if (c[i].server < 0)
			die("accept");
		fcntl(c[i].client, F_SETFL, O_NONBLOCK);
		fcntl(c[i].server, F_SETFL, O_NONBLOCK);
	}
	usleep(100000); /* both ends paired and in the map before the first write */
	fill(c, o.n);
	mem_full = sockstat_tcp_mem_pages();
	for (long i = 0; i < o.n; i++)
		sorted[i] = c[i].sent;
	qsort(sorted, (size_t)o.n, sizeof(*sorted), cmp_ull);
	if (getenv("STALL_PAUSE_MS")) /* a look with ss(8) at the full queues */
		usleep((useconds_t)atol(getenv("STALL_PAUSE_MS")) * 1000);
	start = now();
	longest = drain(c, o.n);
	printf("accepted_min=%llu accepted_median=%llu accepted_max=%llu tcp_mem_delta=%ld "
	       "readback_s=%.3f longest_stall_s=%.3f\n", sorted[0], sorted[o.n / 2], sorted[o.n - 1],
	       (mem_full - mem_before) * 4096, now() - start, longest);
	return 0;
}
