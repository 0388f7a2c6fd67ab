// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * tcpcheck: one end of a TCP connection that sends a known byte stream and
 * checks the one it receives, byte by byte. Any loss, reordering or
 * duplication shows as a mismatch. Both directions run at once (a thread
 * each); each side half-closes when it has sent everything.
 *
 *   tcpcheck -l [-a ADDR] -p PORT [options]   listen, serve one connection
 *   tcpcheck -a ADDR -p PORT [options]        connect
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct {
	bool listen, tfo, defer, peek, fionread, waitall, eagain_fatal, splice_read, quit, epoll;
	long timer_us;
	const char *addr, *port, *ready_file, *bind_port, *go_file;
	unsigned long long seed;
	unsigned long long send_bytes, recv_bytes;
	size_t wchunk, rchunk;
	long read_delay_us, read_start_ms, send_start_ms, send_gap_us;
} o = { .wchunk = 65536, .rchunk = 65536, .port = "5555" };

/* The stream: byte i of direction d. Cheap, position-dependent, not periodic at 256. */
static inline unsigned char pattern(int dir, unsigned long long i)
{
	unsigned long long x = i * 0x9E3779B97F4A7C15ULL + (dir ? 0x5bd1e995 : 0) + o.seed * 0xff51afd7ULL;

	return (unsigned char)((x >> 29) ^ (x >> 47) ^ (i >> 8));
}

static void die(const char *what)
{
	fprintf(stderr, "tcpcheck: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void sleep_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

struct side { int fd; int dir; int result; unsigned long long done, eagain; };

/* Read through a pipe with splice(2), as proxies and sendfile-style servers do. */
static ssize_t splice_recv(int fd, unsigned char *buf, size_t len)
{
	static int pipefd[2] = { -1, -1 };
	ssize_t n, got = 0;

	if (pipefd[0] < 0 && pipe(pipefd))
		die("pipe");
	n = splice(fd, NULL, pipefd[1], NULL, len, SPLICE_F_MOVE);
	if (n <= 0)
		return n;
	while (got < n) {
		ssize_t r = read(pipefd[0], buf + got, (size_t)(n - got));

		if (r <= 0)
			die("read pipe");
		got += r;
	}
	return got;
}

static void on_alarm(int sig)
{
	(void)sig;
}

/*
 * A periodic SIGALRM with SA_RESTART: blocking calls must restart, not fail.
 * Blocked here, in the main thread, and unblocked by the reader, so that the
 * signals interrupt the reader's recv() and not the sender.
 */
static void start_timer(void)
{
	struct sigaction sa = { .sa_handler = on_alarm, .sa_flags = SA_RESTART };
	struct itimerval it = { { 0, o.timer_us }, { 0, o.timer_us } };
	sigset_t alrm;

	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	pthread_sigmask(SIG_BLOCK, &alrm, NULL);
	sigaction(SIGALRM, &sa, NULL);
	setitimer(ITIMER_REAL, &it, NULL);
}

static void *reader(void *arg)
{
	struct side *s = arg;
	unsigned char *buf = malloc(o.rchunk), *pk = malloc(o.rchunk);
	unsigned long long pos = 0;
	int flags = o.waitall ? MSG_WAITALL : 0, ep = -1;

	if (o.timer_us) { /* the timer's signals are for this thread's blocking reads */
		sigset_t alrm;

		sigemptyset(&alrm);
		sigaddset(&alrm, SIGALRM);
		pthread_sigmask(SIG_UNBLOCK, &alrm, NULL);
	}
	if (o.epoll) { /* an event loop's reader: wait in epoll_wait, never in recv */
		struct epoll_event ev = { .events = EPOLLIN, .data.fd = s->fd };

		ep = epoll_create1(0);
		if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev))
			die("epoll");
		flags |= MSG_DONTWAIT;
	}
	if (o.read_start_ms)
		sleep_us(o.read_start_ms * 1000);
	/* -G: a test says when, however slow the machine (an emulated guest) */
	while (o.go_file && access(o.go_file, F_OK))
		sleep_us(20000);
	for (;;) {
		ssize_t n, np = -1;

		if (ep >= 0) {
			struct epoll_event ev;

			if (epoll_wait(ep, &ev, 1, 10000) < 0 && errno != EINTR)
				die("epoll_wait");
		}

		if (o.fionread) {
			struct pollfd p = { s->fd, POLLIN, 0 };
			int avail = -1;

			if (poll(&p, 1, 10000) == 1 && !(p.revents & POLLHUP) &&
			    ioctl(s->fd, FIONREAD, &avail) == 0 && avail == 0 && pos < o.recv_bytes) {
				/* readable but FIONREAD says 0: only legal at EOF */
				n = recv(s->fd, buf, 1, MSG_PEEK | MSG_DONTWAIT);
				if (n > 0) {
					fprintf(stderr, "tcpcheck: FIONREAD 0 with data readable at %llu\n", pos);
					s->result = 1;
					break;
				}
			}
		}
		if (o.peek) {
			np = recv(s->fd, pk, o.rchunk, MSG_PEEK);
			if (np < 0 && errno == EINTR)
				continue;
		}
		if (o.splice_read)
			n = splice_recv(s->fd, buf, o.rchunk);
		else
			n = recv(s->fd, buf, o.rchunk, flags);
		if (n < 0 && errno == EINTR)
			continue;
		/* a blocking socket should never say EAGAIN; bypassed ones do (README) */
		if (n < 0 && errno == EAGAIN && ep >= 0)
			continue;
		if (n < 0 && errno == EAGAIN && !o.eagain_fatal) {
			s->eagain++;
			continue;
		}
		if (n < 0) {
			fprintf(stderr, "tcpcheck: recv at byte %llu: %s\n", pos, strerror(errno));
			s->result = 1;
			break;
		}
		if (n == 0)
			break;
		if (o.peek && np > 0 && memcmp(pk, buf, (size_t)(np < n ? np : n))) {
			fprintf(stderr, "tcpcheck: MSG_PEEK saw other bytes than recv at %llu\n", pos);
			s->result = 1;
			break;
		}
		for (ssize_t i = 0; i < n; i++, pos++) {
			if (buf[i] != pattern(s->dir, pos)) {
				fprintf(stderr, "tcpcheck: mismatch at byte %llu\n", pos);
				s->result = 1;
				goto out;
			}
		}
		if (o.read_delay_us)
			sleep_us(o.read_delay_us);
	}
out:
	s->done = pos;
	if (ep >= 0)
		close(ep);
	if (!s->result && pos != o.recv_bytes) {
		fprintf(stderr, "tcpcheck: received %llu bytes, expected %llu\n", pos, o.recv_bytes);
		s->result = 1;
	}
	free(buf);
	free(pk);
	return NULL;
}

static unsigned long long sent;

/* TCP Fast Open: connect with the first chunk in the SYN. */
static int fastopen_connect(int fd, const struct addrinfo *to)
{
	size_t len = o.wchunk < o.send_bytes ? o.wchunk : o.send_bytes;
	unsigned char *buf = malloc(len + 1);
	ssize_t n;

	for (size_t i = 0; i < len; i++)
		buf[i] = pattern(0, i);
	n = sendto(fd, buf, len, MSG_FASTOPEN, to->ai_addr, to->ai_addrlen);
	free(buf);
	if (n < 0)
		die("sendto MSG_FASTOPEN");
	sent = (size_t)n;
	return 0;
}

static int send_all(int fd, int dir)
{
	unsigned char *buf = malloc(o.wchunk);
	unsigned long long pos = sent;

	if (o.send_start_ms)
		sleep_us(o.send_start_ms * 1000);
	while (pos < o.send_bytes) {
		size_t len = o.wchunk;
		ssize_t n;

		if (len > o.send_bytes - pos)
			len = o.send_bytes - pos;
		for (size_t i = 0; i < len; i++)
			buf[i] = pattern(dir, pos + i);
		n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "tcpcheck: send at byte %llu: %s\n", pos, strerror(errno));
			free(buf);
			return 1;
		}
		pos += (size_t)n;
		if (o.send_gap_us)
			sleep_us(o.send_gap_us);
	}
	free(buf);
	if (shutdown(fd, SHUT_WR))
		die("shutdown");
	return 0;
}

static struct addrinfo *resolve(void)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE };
	struct addrinfo *ai;
	int err = getaddrinfo(o.addr ? o.addr : "::", o.port, &hints, &ai);

	if (err) {
		fprintf(stderr, "tcpcheck: %s: %s\n", o.addr, gai_strerror(err));
		exit(2);
	}
	return ai;
}

static int run(int fd, int dir, const struct addrinfo *tfo_to)
{
	struct side s = { .fd = fd, .dir = !dir };
	pthread_t t;
	int err;

	if (tfo_to)
		fastopen_connect(fd, tfo_to); /* before the reader: recv needs a connection */
	pthread_create(&t, NULL, reader, &s);
	err = send_all(fd, dir);
	pthread_join(t, NULL);
	close(fd);
	if (!err && !s.result)
		printf("ok sent=%llu received=%llu eagain=%llu\n", o.send_bytes, s.done, s.eagain);
	return err || s.result;
}

static int do_listen(void)
{
	struct addrinfo *ai = resolve();
	int one = 1, zero = 0, fd, c;

	fd = socket(ai->ai_family, SOCK_STREAM, 0);
	if (fd < 0)
		die("socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ai->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)); /* dual stack */
	if (o.tfo) {
		int qlen = 16;

		if (setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN, &qlen, sizeof(qlen)))
			die("TCP_FASTOPEN");
	}
	if (o.defer) {
		int secs = 5;

		if (setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, sizeof(secs)))
			die("TCP_DEFER_ACCEPT");
	}
	if (bind(fd, ai->ai_addr, ai->ai_addrlen))
		die("bind");
	if (listen(fd, 16))
		die("listen");
	freeaddrinfo(ai);
	if (o.ready_file) {
		FILE *f = fopen(o.ready_file, "w");

		if (f)
			fclose(f);
	}
	c = accept(fd, NULL, NULL);
	if (c < 0)
		die("accept");
	close(fd);
	if (o.quit) { /* close with whatever arrives unread: the peer sees a reset */
		sleep_us(200000);
		close(c);
		printf("ok closed unread\n");
		return 0;
	}
	return run(c, 1, NULL);
}

static int do_connect(void)
{
	struct addrinfo *ai = resolve();
	int fd = socket(ai->ai_family, SOCK_STREAM, 0), ret, one = 1;

	if (fd < 0)
		die("socket");
	if (o.bind_port) { /* a fixed source port, for identical tuples in two netns */
		struct sockaddr_storage ss = { .ss_family = ai->ai_family };

		if (ai->ai_family == AF_INET)
			((struct sockaddr_in *)&ss)->sin_port = htons(atoi(o.bind_port));
		else
			((struct sockaddr_in6 *)&ss)->sin6_port = htons(atoi(o.bind_port));
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&ss, ai->ai_addrlen))
			die("bind source port");
	}
	if (!o.tfo && connect(fd, ai->ai_addr, ai->ai_addrlen))
		die("connect");
	ret = run(fd, 0, o.tfo ? ai : NULL);
	freeaddrinfo(ai);
	return ret;
}

static unsigned long long num(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 0);

	if (*end == 'K' || *end == 'k')
		v <<= 10, end++;
	else if (*end == 'M' || *end == 'm')
		v <<= 20, end++;
	else if (*end == 'G' || *end == 'g')
		v <<= 30, end++;
	if (*end) {
		fprintf(stderr, "tcpcheck: bad number '%s'\n", s);
		exit(2);
	}
	return v;
}

static void usage(void)
{
	fputs("usage: tcpcheck [-l] [-a ADDR] [-p PORT] [-s SEND_BYTES] [-r RECV_BYTES]\n"
	      "  [-w WRITE_CHUNK] [-R READ_CHUNK] [-d READ_DELAY_US] [-P READ_START_MS]\n"
	      "  [-S SEND_START_MS] [-g SEND_GAP_US] [-T TIMER_US] [-X splice reads] [-Q close unread] [-F tfo] [-D defer-accept] [-K peek] [-I fionread]\n"
	      "  [-W waitall] [-E EAGAIN is fatal] [-e epoll reader] [-f READY_FILE] [-G GO_FILE] [-k SEED] [-b SRC_PORT]\n", stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	int c;

	while ((c = getopt(argc, argv, "la:p:s:r:w:R:d:P:S:g:T:XQFDKIWEef:G:k:b:h")) != -1) {
		switch (c) {
		case 'l': o.listen = true; break;
		case 'a': o.addr = optarg; break;
		case 'p': o.port = optarg; break;
		case 's': o.send_bytes = num(optarg); break;
		case 'r': o.recv_bytes = num(optarg); break;
		case 'w': o.wchunk = num(optarg); break;
		case 'R': o.rchunk = num(optarg); break;
		case 'd': o.read_delay_us = (long)num(optarg); break;
		case 'P': o.read_start_ms = (long)num(optarg); break;
		case 'S': o.send_start_ms = (long)num(optarg); break;
		case 'g': o.send_gap_us = (long)num(optarg); break;
		case 'T': o.timer_us = (long)num(optarg); break;
		case 'X': o.splice_read = true; break;
		case 'Q': o.quit = true; break;
		case 'F': o.tfo = true; break;
		case 'D': o.defer = true; break;
		case 'K': o.peek = true; break;
		case 'I': o.fionread = true; break;
		case 'W': o.waitall = true; break;
		case 'E': o.eagain_fatal = true; break;
		case 'e': o.epoll = true; break;
		case 'f': o.ready_file = optarg; break;
		case 'G': o.go_file = optarg; break;
		case 'k': o.seed = num(optarg); break;
		case 'b': o.bind_port = optarg; break;
		default: usage();
		}
	}
	if (optind != argc || !o.wchunk || !o.rchunk || (!o.listen && !o.addr) ||
	    o.timer_us >= 1000000)
		usage();
	if (o.timer_us)
		start_timer();
	return o.listen ? do_listen() : do_connect();
}
