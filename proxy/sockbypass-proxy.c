// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockbypass-proxy: an L4 TCP forwarder on libsockbypass-splice. Accepts on
 * --listen, connects each client to the next --connect backend (round
 * robin), and lets the library move the bytes. SIGTERM: stop accepting,
 * finish the live connections, exit.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include "sockbypass_splice.h"

/* Exit codes, as the loader's where they mean the same (README). */
enum {
	EXIT_INTERNAL = 1,
	EXIT_USAGE = 2,
	EXIT_PERM = 3,        /* --mode sockmap without privileges */
	EXIT_KERNEL = 4,      /* --mode sockmap on a kernel without it */
	EXIT_NOT_LOADED = 12, /* --mode sockmap, sockbypass not loaded */
	EXIT_LISTEN = 17,     /* cannot listen: address in use, not ours */
	EXIT_STALE = 20,      /* --mode sockmap, sockbypass loaded by another version */
};

#define MAX_BACKENDS 64

struct conn {
	int client, backend;
	bool connecting, dead;
	struct sbs_pair *pair;
	long long stepped_ms; /* the last sbs_pair_step(), for its tick */
	struct conn *prev, *next;
};

static struct {
	struct sockaddr_storage backends[MAX_BACKENDS];
	socklen_t backend_len[MAX_BACKENDS];
	int nbackends, next_backend;
	struct conn *live, *dead; /* the dead are freed after each batch of events */
	struct conn *next_look;   /* where the looks go on (NULL: at the head of live) */
	long nlive;
	long nsockmap; /* live pairs in the sockmap: without one, no pair asks for looks */
	/* the finest tick of the live pairs: of the last sweep, and so far in this one */
	int sweep_tick, sweep_min;
	unsigned long long conns, by_mode[4], failed, bytes;
	int sndbuf; /* --sndbuf: SO_SNDBUF of both sockets, 0: the kernel's */
	int rcvbuf; /* --rcvbuf: SO_RCVBUF of both sockets, set before the handshake */
	bool quiet;
} px = { .sweep_tick = -1, .sweep_min = -1 }; /* -1: no tick seen */

static volatile sig_atomic_t stopping, describe;

static void on_usr1(int sig)
{
	(void)sig;
	describe = 1;
}

static void on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

static void usage(FILE *f)
{
	fputs("Usage: sockbypass-proxy --listen ADDR:PORT --connect ADDR:PORT[,ADDR:PORT...]\n"
	      "                        [--mode auto|sockmap|splice|copy] [--pin-dir DIR]\n"
	      "                        [--sndbuf BYTES] [--rcvbuf BYTES] [--quiet]\n"
	      "\n"
	      "An L4 TCP forwarder: each client accepted on --listen is connected to the next\n"
	      "--connect backend (round robin). In sockmap mode the kernel moves the bytes\n"
	      "between the two sockets (sockbypass loaded, root); auto is sockmap where that\n"
	      "works, else splice(2). IPv6 addresses in brackets: [::1]:8080.\n"
	      "--sndbuf and --rcvbuf fix the socket buffers of both sockets (the kernel\n"
	      "tunes them otherwise); a small --rcvbuf bounds what a slow side can queue.\n"
	      "SIGTERM or SIGINT: stop accepting, finish live connections, exit. SIGUSR1:\n"
	      "one line per live connection on stderr.\n"
	      "\n"
	      "Exit status: 0 done, 1 internal error, 2 bad arguments, 3 sockmap mode without\n"
	      "privileges, 4 kernel without verdict-only sockmap, 12 sockbypass not loaded,\n"
	      "17 cannot listen on ADDR:PORT, 20 sockbypass loaded by another version.\n", f);
}

/* "ADDR:PORT" or "[V6ADDR]:PORT" -> sockaddr; names resolve too. */
static int parse_addr(const char *spec, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[256], *colon;
	const char *port;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;

	if (strlen(spec) >= sizeof(host))
		return -1;
	strcpy(host, spec);
	colon = strrchr(host, ':');
	if (!colon || colon == host || !colon[1])
		return -1;
	*colon = '\0';
	port = colon + 1;
	if (strspn(port, "0123456789") != strlen(port) || atoi(port) < 1 || atoi(port) > 65535)
		return -1;
	char *h = host;
	if (h[0] == '[') {
		size_t n = strlen(h);

		if (n < 3 || h[n - 1] != ']')
			return -1;
		h[n - 1] = '\0';
		h++;
	}
	if (getaddrinfo(h, port, &hints, &res))
		return -1;
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static int listen_on(const struct sockaddr_storage *ss, socklen_t len)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (px.rcvbuf) /* accepted sockets inherit it, and the window they offer */
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &px.rcvbuf, sizeof(px.rcvbuf));
	if (bind(fd, (const struct sockaddr *)ss, len) || listen(fd, 4096)) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

static void link_conn(struct conn *c)
{
	c->next = px.live;
	if (px.live)
		px.live->prev = c;
	px.live = c;
	px.nlive++;
}

static void drop_conn(int ep, struct conn *c, bool reset)
{
	if (reset) { /* a truncated stream must not look complete: RST, not FIN */
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };

		setsockopt(c->client, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		setsockopt(c->backend, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		px.failed++;
	}
	if (c->pair) {
		unsigned long long ab, ba;

		sbs_pair_bytes(c->pair, &ab, &ba);
		px.bytes += ab + ba;
		px.nsockmap -= sbs_pair_mode(c->pair) == SBS_SOCKMAP;
		sbs_pair_free(c->pair);
	}
	epoll_ctl(ep, EPOLL_CTL_DEL, c->client, NULL);
	epoll_ctl(ep, EPOLL_CTL_DEL, c->backend, NULL);
	close(c->client);
	close(c->backend);
	if (px.next_look == c)
		px.next_look = c->next;
	if (c->prev)
		c->prev->next = c->next;
	else
		px.live = c->next;
	if (c->next)
		c->next->prev = c->prev;
	px.nlive--;
	c->dead = true;
	c->next = px.dead;
	px.dead = c;
}

static void free_dead(void)
{
	while (px.dead) {
		struct conn *c = px.dead;

		px.dead = c->next;
		free(c);
	}
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void accept_all(int ep, int lfd)
{
	for (;;) {
		int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), i, bfd;
		struct epoll_event ev = { .events = EPOLLOUT | EPOLLET };
		struct conn *c;

		if (cfd < 0)
			return;
		i = px.next_backend++ % px.nbackends;
		bfd = socket(px.backends[i].ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (bfd >= 0 && px.rcvbuf)
			setsockopt(bfd, SOL_SOCKET, SO_RCVBUF, &px.rcvbuf, sizeof(px.rcvbuf));
		c = calloc(1, sizeof(*c));
		if (bfd < 0 || !c ||
		    (connect(bfd, (struct sockaddr *)&px.backends[i], px.backend_len[i]) &&
		     errno != EINPROGRESS)) {
			if (!px.quiet)
				fprintf(stderr, "sockbypass-proxy: connect to backend %d: %s\n", i,
					strerror(errno));
			px.failed++;
			free(c);
			if (bfd >= 0)
				close(bfd);
			close(cfd);
			continue;
		}
		c->client = cfd;
		c->backend = bfd;
		c->connecting = true;
		link_conn(c);
		ev.data.ptr = c;
		epoll_ctl(ep, EPOLL_CTL_ADD, bfd, &ev);
	}
}

/* The backend's connect finished: pair the two sockets. */
static int start_pair(int ep, struct sbs *s, struct conn *c)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = c };
	int err = 0;
	socklen_t len = sizeof(err);

	getsockopt(c->backend, SOL_SOCKET, SO_ERROR, &err, &len);
	if (err) {
		if (!px.quiet)
			fprintf(stderr, "sockbypass-proxy: backend: %s\n", strerror(err));
		return -err;
	}
	c->connecting = false;
	if (px.sndbuf) {
		setsockopt(c->client, SOL_SOCKET, SO_SNDBUF, &px.sndbuf, sizeof(px.sndbuf));
		setsockopt(c->backend, SOL_SOCKET, SO_SNDBUF, &px.sndbuf, sizeof(px.sndbuf));
	}
	c->pair = sbs_pair_new(s, c->client, c->backend);
	if (!c->pair)
		return -errno;
	px.conns++;
	px.by_mode[sbs_pair_mode(c->pair)]++;
	px.nsockmap += sbs_pair_mode(c->pair) == SBS_SOCKMAP;
	epoll_ctl(ep, EPOLL_CTL_MOD, c->backend, &ev);
	epoll_ctl(ep, EPOLL_CTL_ADD, c->client, &ev);
	return 1;
}

/* The finer of two ticks, -1 meaning none. */
static int finer(int a, int b)
{
	return a < 0 || (b >= 0 && b < a) ? b : a;
}

static void step(int ep, struct sbs *s, struct conn *c)
{
	int r = c->connecting ? start_pair(ep, s, c) : 1;

	c->stepped_ms = now_ms();
	if (r > 0)
		r = sbs_pair_step(c->pair);
	if (r > 0) { /* a pair an event woke may want looks sooner than the sweep gives */
		int tick = sbs_pair_tick_ms(c->pair);

		px.sweep_tick = finer(px.sweep_tick, tick);
		px.sweep_min = finer(px.sweep_min, tick);
	}
	if (r < 0 && !px.quiet) {
		char line[1024] = "";

		if (c->pair)
			sbs_pair_describe(c->pair, line, sizeof(line));
		fprintf(stderr, "sockbypass-proxy: connection reset: %s (%s)\n", strerror(-r), line);
	}
	if (r <= 0)
		drop_conn(ep, c, r < 0);
}

/*
 * Directions the kernel moves raise no event: a pair that asks for a look
 * gets one when its tick (sbs_pair_tick_ms(): 20 ms, or 1 s while idle)
 * passed since its last step. The live list is visited a slice at a time
 * (credit: visits owed), all of it four times per finest tick: every pair
 * at once took about 3 ms at 3,000 pairs, and a request that came then
 * waited (that was the p99); a proxy whose pairs are idle wakes 4 times a
 * second.
 */
static long long sweep_ms(void)
{
	return px.sweep_tick > 4 ? px.sweep_tick / 4 : 1;
}

static void look_some(int ep, struct sbs *s, long long *last, long long *credit)
{
	long long now = now_ms(), n;

	*credit += px.nlive * (now - *last);
	*last = now;
	n = *credit / sweep_ms();
	*credit %= sweep_ms();
	if (n >= px.nlive) {
		n = px.nlive;
		*credit = 0;
	}
	while (n-- > 0 && px.live) {
		struct conn *c = px.next_look ? px.next_look : px.live;
		int tick = c->pair ? sbs_pair_tick_ms(c->pair) : -1;

		if (c == px.live) { /* a new sweep: the last one's finest tick holds */
			px.sweep_tick = px.sweep_min;
			px.sweep_min = -1;
		}
		px.next_look = c->next;
		if (tick >= 0 && now - c->stepped_ms >= tick)
			step(ep, s, c); /* which counts the pair's new tick */
		else
			px.sweep_min = finer(px.sweep_min, tick);
	}
}

static int mode_exit(int err)
{
	switch (err) {
	case EPERM: case EACCES: return EXIT_PERM;
	case EOPNOTSUPP: return EXIT_KERNEL;
	case ENOENT: return EXIT_NOT_LOADED;
	case EPROTO: return EXIT_STALE;
	default: return EXIT_INTERNAL;
	}
}

/* --sndbuf, --rcvbuf: bytes, 4096 to 1 GiB. */
static int parse_buf_size(const char *opt, const char *arg, int *out)
{
	long v = strtol(arg, NULL, 10);

	if (!*arg || strspn(arg, "0123456789") != strlen(arg) || v < 4096 || v > (1L << 30)) {
		fprintf(stderr, "sockbypass-proxy: %s wants a size in bytes, 4096 to 1073741824, "
			"not '%s'\n", opt, arg);
		return -1;
	}
	*out = v;
	return 0;
}

/* Two fds per connection: thousands of connections need more than the soft 1024. */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' }, { "connect", required_argument, NULL, 'c' },
		{ "mode", required_argument, NULL, 'm' }, { "pin-dir", required_argument, NULL, 'p' },
		{ "quiet", no_argument, NULL, 'q' }, { "sndbuf", required_argument, NULL, 'b' },
		{ "rcvbuf", required_argument, NULL, 'r' }, { "help", no_argument, NULL, 'h' }, {},
	};
	const char *listen_spec = NULL, *connect_spec = NULL, *pin_dir = NULL;
	enum sbs_mode mode = SBS_AUTO;
	struct sockaddr_storage lss;
	socklen_t llen;
	struct sbs *s;
	int o, lfd, ep;

	while ((o = getopt_long(argc, argv, "l:c:m:p:qb:r:h", opts, NULL)) != -1) {
		switch (o) {
		case 'l': listen_spec = optarg; break;
		case 'c': connect_spec = optarg; break;
		case 'p': pin_dir = optarg; break;
		case 'q': px.quiet = true; break;
		case 'b':
		case 'r':
			if (parse_buf_size(o == 'b' ? "--sndbuf" : "--rcvbuf", optarg,
					   o == 'b' ? &px.sndbuf : &px.rcvbuf))
				return EXIT_USAGE;
			break;
		case 'h': usage(stdout); return 0;
		case 'm':
			if (!strcmp(optarg, "auto")) mode = SBS_AUTO;
			else if (!strcmp(optarg, "sockmap")) mode = SBS_SOCKMAP;
			else if (!strcmp(optarg, "splice")) mode = SBS_SPLICE;
			else if (!strcmp(optarg, "copy")) mode = SBS_COPY;
			else {
				fprintf(stderr, "sockbypass-proxy: --mode must be auto, sockmap, splice "
					"or copy, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			break;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind != argc || !listen_spec || !connect_spec) {
		fprintf(stderr, "sockbypass-proxy: needs --listen ADDR:PORT and --connect ADDR:PORT "
			"(--help)\n");
		return EXIT_USAGE;
	}
	if (parse_addr(listen_spec, &lss, &llen)) {
		fprintf(stderr, "sockbypass-proxy: bad --listen address '%s': want ADDR:PORT or "
			"[V6ADDR]:PORT\n", listen_spec);
		return EXIT_USAGE;
	}
	for (char *list = strdup(connect_spec), *save = NULL, *tok = strtok_r(list, ",", &save);
	     tok; tok = strtok_r(NULL, ",", &save)) {
		if (px.nbackends == MAX_BACKENDS ||
		    parse_addr(tok, &px.backends[px.nbackends], &px.backend_len[px.nbackends])) {
			fprintf(stderr, "sockbypass-proxy: bad --connect address '%s': want "
				"ADDR:PORT[,ADDR:PORT...] (at most %d)\n", tok, MAX_BACKENDS);
			return EXIT_USAGE;
		}
		px.nbackends++;
	}
	s = sbs_open(mode, pin_dir);
	if (!s) {
		int err = errno;

		fprintf(stderr, "sockbypass-proxy: --mode sockmap: %s\n",
			err == ENOENT ? "sockbypass is not loaded (sudo ./load.sh first)" :
			err == EOPNOTSUPP ? "this kernel cannot splice in sockmap (Linux 5.13+, and "
					    "load.sh did not warn); use --mode splice" :
			err == EPERM ? "no permission to open sockbypass's pins: run as root" :
			err == EPROTO ? "sockbypass was loaded by another version; reload it "
					"(sudo ./unload.sh && sudo ./load.sh)" :
			strerror(err));
		return mode_exit(err);
	}
	lfd = listen_on(&lss, llen);
	if (lfd < 0) {
		fprintf(stderr, "sockbypass-proxy: cannot listen on %s: %s\n", listen_spec,
			strerror(-lfd));
		return EXIT_LISTEN;
	}
	if (!px.quiet)
		fprintf(stderr, "sockbypass-proxy: listening on %s, mode %s\n", listen_spec,
			sbs_why(s));
	raise_fd_limit();
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	signal(SIGUSR1, on_usr1);
	ep = epoll_create1(EPOLL_CLOEXEC);
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &(struct epoll_event){ .events = EPOLLIN, .data.ptr = NULL });
	long long last_look = now_ms(), look_credit = 0;
	while (!stopping || px.live) {
		struct epoll_event evs[256];
		bool looks = false;
		int n;

		if (stopping && lfd >= 0) {
			close(lfd); /* finish what is live, take nothing new */
			lfd = -1;
		}
		/* copy and splice pairs never ask: with thousands of them this
		 * walk per wake-up was the copy mode's cost (655 requests/s at
		 * 9,500 pairs) */
		for (struct conn *c = px.nsockmap ? px.live : NULL; c && !looks; c = c->next)
			looks = c->pair && sbs_pair_tick_ms(c->pair) >= 0;
		/* wake when the next slice of the sweep is due */
		n = epoll_wait(ep, evs, 256, looks ? sweep_ms() / px.nlive ?: 1 : -1);
		if (n < 0 && errno != EINTR) {
			perror("sockbypass-proxy: epoll_wait");
			return EXIT_INTERNAL;
		}
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;

			if (!c) {
				if (lfd >= 0)
					accept_all(ep, lfd);
			} else if (!c->dead) {
				step(ep, s, c);
			}
		}
		if (looks)
			look_some(ep, s, &last_look, &look_credit);
		else
			last_look = now_ms(), look_credit = 0;
		free_dead();
		if (describe) { /* SIGUSR1: each live connection's state, on stderr */
			char line[1024];

			describe = 0;
			for (struct conn *c = px.live; c; c = c->next)
				if (c->pair && sbs_pair_describe(c->pair, line, sizeof(line)) > 0)
					fprintf(stderr, "sockbypass-proxy: fds %d/%d: %s\n", c->client,
						c->backend, line);
		}
	}
	if (!px.quiet)
		fprintf(stderr, "sockbypass-proxy: %llu connections (sockmap %llu, splice %llu, copy %llu), "
			"%llu reset, %llu bytes\n", px.conns, px.by_mode[SBS_SOCKMAP],
			px.by_mode[SBS_SPLICE], px.by_mode[SBS_COPY], px.failed, px.bytes);
	sbs_close(s);
	return 0;
}
