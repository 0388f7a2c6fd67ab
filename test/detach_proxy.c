// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * A one-connection proxy for the tests of sbs_pair_detach(): from
 * 127.0.0.1:LISTEN_PORT to 127.0.0.1:BACKEND_PORT, the library forwards
 * until AFTER bytes went through (both ways together), or for AFTER
 * milliseconds ("500ms"), then takes the sockets back and forwards the rest
 * with its own recv() and send(), passing each EOF on. Prints what it did
 * on stderr; exit 1 on an error.
 *
 * With SNDBUF, both sockets' SO_SNDBUF: a backend that stalls then takes
 * little, so bytes the kernel redirected wait in its queue for room.
 *
 *   detach_proxy LISTEN_PORT BACKEND_PORT MODE PIN_DIR AFTER [SNDBUF]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "sockbypass_splice.h"

static struct sockaddr_in loopback(int port)
{
	return (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons(port),
				     .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
}

/* A listening socket on 127.0.0.1:port, or -1. */
static int listen_on(int port)
{
	struct sockaddr_in a = loopback(port);
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 1)) {
		close(fd);
		return -1;
	}
	return fd;
}

static int connect_to(int port)
{
	struct sockaddr_in a = loopback(port);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -1;
	}
	return fd;
}

static unsigned long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ULL + ts.tv_nsec / 1000000;
}

/*
 * Run the library's loop on ep until step() says stop (that result), or
 * returns 1 once `bytes` went through or at `deadline` (ms, 0: none);
 * counts in *busy (if given) the steps that said "not yet".
 */
static int run(int ep, struct sbs_pair *p, int (*step)(struct sbs_pair *),
	       unsigned long long bytes, unsigned long long deadline, unsigned long *busy)
{
	unsigned long long ab, ba;
	int r;

	for (;;) {
		struct epoll_event evs[2];

		epoll_wait(ep, evs, 2, sbs_pair_tick_ms(p) < 0 ? 20 : sbs_pair_tick_ms(p));
		r = step(p);
		if (r != 1)
			return r;
		if (busy)
			(*busy)++;
		sbs_pair_bytes(p, &ab, &ba);
		if (ab + ba >= bytes || (deadline && now_ms() >= deadline))
			return 1;
	}
}

/* The rest, ours: poll both, copy what comes, pass each EOF on. */
static int copy_rest(int a, int b, unsigned long long *copied)
{
	int fds[2] = { a, b };
	bool eof[2] = { false, false };
	static char buf[65536];

	while (!eof[0] || !eof[1]) {
		struct pollfd pfd[2] = { { .fd = a, .events = eof[0] ? 0 : POLLIN },
					 { .fd = b, .events = eof[1] ? 0 : POLLIN } };

		if (poll(pfd, 2, 5000) <= 0)
			return -1;
		for (int i = 0; i < 2; i++) {
			ssize_t n, off = 0, w;

			if (eof[i] || !(pfd[i].revents & (POLLIN | POLLHUP)))
				continue;
			n = recv(fds[i], buf, sizeof(buf), MSG_DONTWAIT);
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				continue;
			if (n < 0)
				return -1;
			if (n == 0) {
				eof[i] = true;
				shutdown(fds[!i], SHUT_WR);
				continue;
			}
			while (off < n) {
				struct pollfd out = { .fd = fds[!i], .events = POLLOUT };

				w = send(fds[!i], buf + off, n - off, MSG_DONTWAIT | MSG_NOSIGNAL);
				if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
					poll(&out, 1, 1000);
					continue;
				}
				if (w < 0)
					return -1;
				off += w;
			}
			*copied += n;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *modes[] = { "auto", "sockmap", "splice", "copy" };
	enum sbs_mode mode = SBS_AUTO;
	unsigned long long ab, ba, copied = 0, after;
	unsigned long waits = 0;
	char *unit;
	struct sbs_pair *p;
	struct sbs *s;
	int lfd, cfd, bfd, ep, r;

	if (argc != 6 && argc != 7) {
		fprintf(stderr, "usage: %s LISTEN_PORT BACKEND_PORT MODE PIN_DIR AFTER [SNDBUF]\n",
			argv[0]);
		return 2;
	}
	for (int i = 0; i < 4; i++)
		if (!strcmp(argv[3], modes[i]))
			mode = (enum sbs_mode)i;
	s = sbs_open(mode, argv[4]);
	lfd = listen_on(atoi(argv[1]));
	if (!s || lfd < 0) {
		perror(!s ? "sbs_open" : "listen");
		return 1;
	}
	/* the test waits for this line before it connects */
	fprintf(stderr, "detach_proxy: %s\n", sbs_why(s));
	cfd = accept(lfd, NULL, NULL);
	close(lfd);
	bfd = connect_to(atoi(argv[2]));
	if (argc == 7 && cfd >= 0 && bfd >= 0) {
		int sndbuf = atoi(argv[6]);

		setsockopt(cfd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
		setsockopt(bfd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	}
	p = cfd >= 0 && bfd >= 0 ? sbs_pair_new(s, cfd, bfd) : NULL;
	ep = epoll_create1(0);
	if (!p || ep < 0) {
		perror("detach_proxy: accept, connect or sbs_pair_new");
		return 1;
	}
	for (int i = 0; i < 2; i++) {
		struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET };

		epoll_ctl(ep, EPOLL_CTL_ADD, i ? bfd : cfd, &ev);
	}
	after = strtoull(argv[5], &unit, 0);
	if (!strcmp(unit, "ms"))
		r = run(ep, p, sbs_pair_step, ~0ULL, now_ms() + after, NULL);
	else
		r = run(ep, p, sbs_pair_step, after, 0, NULL);
	if (r == 1)
		r = run(ep, p, sbs_pair_detach, ~0ULL, 0, &waits);
	sbs_pair_bytes(p, &ab, &ba);
	fprintf(stderr, "detach_proxy: %s, the library moved %llu and %llu bytes, %s (%lu looks waited)\n",
		sbs_mode_name(sbs_pair_mode(p)), ab, ba,
		r == 0 ? "then gave the sockets back" : "error", waits);
	sbs_pair_free(p);
	close(ep);
	if (r < 0) {
		fprintf(stderr, "detach_proxy: %s\n", strerror(-r));
		return 1;
	}
	r = copy_rest(cfd, bfd, &copied);
	fprintf(stderr, "detach_proxy: %s, %llu bytes copied after\n",
		r ? "copying the rest failed" : "done", copied);
	close(cfd);
	close(bfd);
	return r ? 1 : 0;
}
