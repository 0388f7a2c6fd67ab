// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * tcpmany: many concurrent TCP connections, each carrying a checked byte
 * stream both ways, in one epoll loop per side.
 *
 *   tcpmany -l -p PORT -n CONNS -k BYTES [-f READY_FILE]   server
 *   tcpmany -a ADDR -p PORT -n CONNS -k BYTES [-H HOLD_MS]  client
 *
 * The client opens all CONNS connections first, waits HOLD_MS with all of
 * them established, then on each sends an 8-byte id and BYTES of a stream
 * that depends on the id and the position, and half-closes. The server
 * checks every byte, answers with BYTES of the id's reply stream and closes;
 * the client checks those. Any loss, reordering or crossing of streams
 * between connections shows as a mismatch. Exit 0 and "ok" when all pass.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
	int fd;
	uint64_t id;
	uint64_t in, out;     /* bytes received / sent, the 8-byte id included */
	bool connected, sent_all, done;
};

static struct { bool listen; const char *addr, *port, *ready; long n, bytes, hold_ms; } o = {
	.port = "5600", .n = 100, .bytes = 65536,
};

static unsigned char pattern(uint64_t id, uint64_t pos, int reply)
{
	uint64_t x = (pos + 1) * 0x9E3779B97F4A7C15ULL ^ (id * 0xff51afd7ed558ccdULL) ^ (reply ? 0xa5a5 : 0);

	return (unsigned char)(x >> 37);
}

static void die(const char *what)
{
	fprintf(stderr, "tcpmany: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void fail(struct conn *c, const char *what, uint64_t pos)
{
	fprintf(stderr, "tcpmany: connection %llu: %s at byte %llu\n", (unsigned long long)c->id, what,
		(unsigned long long)pos);
	exit(1);
}

static void nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* Send what is due: the id (client only) and then the stream, until EAGAIN. */
static void pump_out(struct conn *c, int reply)
{
	unsigned char buf[16384];
	uint64_t head = reply ? 0 : 8, total = head + (uint64_t)o.bytes;

	while (c->out < total) {
		size_t len = 0;

		for (; len < sizeof(buf) && c->out + len < total; len++) {
			uint64_t p = c->out + len;

			buf[len] = p < head ? (unsigned char)(c->id >> (8 * p)) : pattern(c->id, p - head, reply);
		}
		ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n < 0)
			fail(c, strerror(errno), c->out);
		c->out += (uint64_t)n;
	}
	if (!c->sent_all) {
		c->sent_all = true;
		shutdown(c->fd, SHUT_WR);
	}
}

/* Read and check what arrived; returns true at end of stream. */
static bool pump_in(struct conn *c, int reply)
{
	unsigned char buf[16384];
	uint64_t head = reply ? 0 : 8;

	for (;;) {
		ssize_t n = recv(c->fd, buf, sizeof(buf), 0);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return false;
		if (n < 0)
			fail(c, strerror(errno), c->in);
		if (n == 0) {
			if (c->in != head + (uint64_t)o.bytes)
				fail(c, "stream ended early", c->in);
			return true;
		}
		for (ssize_t i = 0; i < n; i++, c->in++) {
			if (c->in < head) {
				c->id |= (uint64_t)buf[i] << (8 * c->in);
				continue;
			}
			if (c->in - head >= (uint64_t)o.bytes)
				fail(c, "more bytes than sent", c->in);
			if (buf[i] != pattern(c->id, c->in - head, reply))
				fail(c, "mismatch", c->in);
		}
	}
}

static struct addrinfo *resolve(const char *addr)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_PASSIVE };
	struct addrinfo *ai;

	if (getaddrinfo(addr, o.port, &hints, &ai))
		die("getaddrinfo");
	return ai;
}

static int serve(void)
{
	struct addrinfo *ai = resolve(o.addr ? o.addr : "127.0.0.1");
	int lfd = socket(ai->ai_family, SOCK_STREAM, 0), ep = epoll_create1(0), one = 1;
	struct conn *conns = calloc((size_t)o.n, sizeof(*conns));
	long accepted = 0, finished = 0;
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = UINT64_MAX };

	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, ai->ai_addr, ai->ai_addrlen) || listen(lfd, 4096))
		die("bind/listen");
	nonblock(lfd);
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	if (o.ready)
		fclose(fopen(o.ready, "w"));
	while (finished < o.n) {
		struct epoll_event evs[256];
		int k = epoll_wait(ep, evs, 256, 30000);

		if (k <= 0)
			die("server waited 30 s for progress");
		for (int i = 0; i < k; i++) {
			if (evs[i].data.u64 == UINT64_MAX) {
				int fd;

				while (accepted < o.n && (fd = accept(lfd, NULL, NULL)) >= 0) {
					struct conn *c = &conns[accepted];
					struct epoll_event cev = { .events = EPOLLIN | EPOLLOUT | EPOLLET,
								   .data.u64 = (uint64_t)accepted++ };

					c->fd = fd;
					nonblock(fd);
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
				}
				continue;
			}
			struct conn *c = &conns[evs[i].data.u64];

			if (c->done)
				continue;
			if (pump_in(c, 0))  /* request complete: answer, then done */
				c->connected = true;
			if (c->connected)
				pump_out(c, 1);
			if (c->connected && c->sent_all) {
				c->done = true;
				close(c->fd);
				finished++;
			}
		}
	}
	printf("ok server: %ld connections checked\n", finished);
	return 0;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int client(void)
{
	struct addrinfo *ai = resolve(o.addr);
	struct conn *conns = calloc((size_t)o.n, sizeof(*conns));
	int ep = epoll_create1(0);
	long connected = 0, finished = 0;
	bool sending = false;
	double hold_until = 0;

	for (long i = 0; i < o.n; i++) {
		struct conn *c = &conns[i];
		struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLET, .data.u64 = (uint64_t)i };

		c->id = (uint64_t)i * 2654435761u + 1;
		c->fd = socket(ai->ai_family, SOCK_STREAM, 0);
		if (c->fd < 0)
			die("socket (raise ulimit -n?)");
		nonblock(c->fd);
		if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) && errno != EINPROGRESS)
			die("connect");
		epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
	}
	while (finished < o.n) {
		struct epoll_event evs[256];
		bool waited_sending = sending;
		int k = epoll_wait(ep, evs, 256, sending ? 30000 : 100);

		if (k < 0)
			die("epoll_wait");
		if (waited_sending && k == 0)
			die("client waited 30 s for progress");
		if (!sending && connected == o.n) {
			if (!hold_until) {
				hold_until = now_ms() + o.hold_ms;
				printf("all %ld connections established\n", o.n);
				fflush(stdout);
			}
			if (now_ms() >= hold_until) {
				sending = true;
				for (long i = 0; i < o.n; i++)
					pump_out(&conns[i], 0);
			}
		}
		for (int i = 0; i < k; i++) {
			struct conn *c = &conns[evs[i].data.u64];

			if (!c->connected && (evs[i].events & EPOLLOUT)) {
				int err = 0;
				socklen_t len = sizeof(err);

				getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
				if (err) {
					errno = err;
					die("connect");
				}
				c->connected = true;
				connected++;
			}
			if (!sending || c->done)
				continue;
			pump_out(c, 0);
			if (pump_in(c, 1)) {
				c->done = true;
				close(c->fd);
				finished++;
			}
		}
	}
	printf("ok client: %ld connections, %ld bytes each way on each, checked\n", o.n, o.bytes);
	return 0;
}

int main(int argc, char **argv)
{
	int ch;

	while ((ch = getopt(argc, argv, "la:p:n:k:f:H:")) != -1) {
		switch (ch) {
		case 'l': o.listen = true; break;
		case 'a': o.addr = optarg; break;
		case 'p': o.port = optarg; break;
		case 'n': o.n = atol(optarg); break;
		case 'k': o.bytes = atol(optarg); break;
		case 'f': o.ready = optarg; break;
		case 'H': o.hold_ms = atol(optarg); break;
		default:
			fputs("usage: see the comment at the top of test/tcpmany.c\n", stderr);
			return 2;
		}
	}
	if (o.n <= 0 || o.bytes <= 0 || (!o.listen && !o.addr)) {
		fputs("tcpmany: need -n > 0, -k > 0, and -l or -a\n", stderr);
		return 2;
	}
	return o.listen ? serve() : client();
}
