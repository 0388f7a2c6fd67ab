// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The smallest proxy on libsockbypass-splice: one client at a time, from
 * 127.0.0.1:LISTEN_PORT to 127.0.0.1:BACKEND_PORT, in the library's auto
 * mode (or the one named). sockbypass-proxy is the full one (epoll over
 * thousands, IPv6, round robin, draining on SIGTERM).
 *
 *   cc example.c -lsockbypass-splice -lbpf -o example
 *   ./example LISTEN_PORT BACKEND_PORT [auto|sockmap|splice|copy [PIN_DIR]]
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include "sockbypass_splice.h"

static int tcp_socket(int port, int listening)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	if (fd < 0)
		return -1;
	if (listening) {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 16))
			return -1;
	} else if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		return -1;
	}
	return fd;
}

int main(int argc, char **argv)
{
	const char *modes[] = { "auto", "sockmap", "splice", "copy" };
	enum sbs_mode mode = SBS_AUTO;
	struct sbs *s;
	int lfd;

	if (argc < 3) {
		fprintf(stderr, "usage: %s LISTEN_PORT BACKEND_PORT [auto|sockmap|splice|copy [PIN_DIR]]\n",
			argv[0]);
		return 2;
	}
	for (int i = 0; argc > 3 && i < 4; i++)
		if (!strcmp(argv[3], modes[i]))
			mode = (enum sbs_mode)i;
	s = sbs_open(mode, argc > 4 ? argv[4] : NULL); /* NULL: /sys/fs/bpf/sockbypass */
	lfd = tcp_socket(atoi(argv[1]), 1);
	if (!s || lfd < 0) {
		perror(!s ? "sbs_open" : "listen");
		return 1;
	}
	fprintf(stderr, "example: %s\n", sbs_why(s));
	for (;;) {
		int cfd = accept(lfd, NULL, NULL), bfd = tcp_socket(atoi(argv[2]), 0);
		struct sbs_pair *p = cfd >= 0 && bfd >= 0 ? sbs_pair_new(s, cfd, bfd) : NULL;
		int ep = epoll_create1(0), r = 1;

		if (!p) {
			perror("example: accept, connect or sbs_pair_new");
			r = 0;
		}

		/* edge-triggered: step on every event of either socket, and every
		 * sbs_pair_tick_ms() ms while that is >= 0 */
		for (int i = 0; r == 1 && i < 2; i++) {
			struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET };

			epoll_ctl(ep, EPOLL_CTL_ADD, i ? bfd : cfd, &ev);
		}
		while (r == 1) {
			struct epoll_event evs[2];

			epoll_wait(ep, evs, 2, sbs_pair_tick_ms(p));
			r = sbs_pair_step(p);
		}
		close(ep);
		if (r < 0) { /* reset both: a stream cut short must not look complete */
			struct linger rst = { 1, 0 };

			fprintf(stderr, "example: %s: reset\n", strerror(-r));
			setsockopt(cfd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
			setsockopt(bfd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
		}
		if (p)
			sbs_pair_free(p);
		if (cfd >= 0)
			close(cfd);
		if (bfd >= 0)
			close(bfd);
	}
}
