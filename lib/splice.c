// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libsockbypass-splice: one pair is two directions; each direction moves the
 * bytes one socket receives to the other, then passes its EOF on, only once
 * every byte before it is in the destination's TCP.
 *
 * In sockmap mode the kernel (sbs_verdict) moves the bytes. What it leaves
 * on the source (a redirect was refused) the library copies, but only after the destination's TCP holds every
 * byte the kernel sent on before it: nothing overtakes. Byte counts come
 * from TCP itself (tcpi_bytes_received, tcpi_bytes_acked + SIOCOUTQ), so
 * "done" means delivered to TCP, not "the socket said EOF".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <linux/tcp.h> /* glibc's tcp_info lacks the byte counts */
#include <linux/sockios.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include "splice.h"
#include "sockbypass.h"
#include "sockbypass_splice.h"

#define COPY_BUF (64 << 10)
#define TICK_MS 20
#define IDLE_TICK_MS 1000
#define TAIL_GIVE_UP_MS 30000

struct sbs {
	enum sbs_mode mode;
	int sockhash_fd, dirs_fd, ctl_fd;
	int local_fd; /* the local bypass's sb_sockhash */
	char why[256];
};

struct dir {
	int src, dst;
	__u64 src_cookie;
	bool sockmap;          /* the kernel moves this direction's bytes */
	bool rdhup;            /* copy, splice: src's read returned 0 */
	bool fin_seen;         /* sockmap: src's peer sent its FIN */
	bool eof_read;         /* sockmap: src's read returned 0 (nothing left on it) */
	bool flushed;          /* sockmap: what sbs_ctl says for this direction */
	bool detached;         /* sockmap: sbs_ctl says the caller took the sockets back */
	unsigned long long ctl_consumed;
	/* sockmap: we read bytes the verdict never saw (TCP's own queue, on
	 * kernels whose recv() does not run the verdict first): our count
	 * cannot tell the kernel when we caught up, so it never resumes */
	bool direct_reads;
	bool done;             /* EOF passed on: shutdown(dst, SHUT_WR) */
	/* sockmap: since when (ms) src's tail after its FIN is short, at what read count */
	unsigned long long tail_since, tail_read;
	unsigned long long moved;
	/* bytes of src the app read before us; of dst's TCP before us */
	unsigned long long src_base, dst_base;
	unsigned long long unread_before; /* in src's TCP queue when the pair began */
	unsigned long long user_read, user_written; /* our own copies */
	/* copy and splice; sockmap: what the verdict left */
	char *buf;
	size_t len, off, cap;
	int pipe[2];
	size_t in_pipe;
};

struct sbs_pair {
	struct sbs *s;
	enum sbs_mode mode;
	bool registered;
	bool detached; /* sbs_pair_detach() returned 0: the sockets are the caller's */
	struct dir d[2]; /* a -> b, b -> a */
};

const char *sbs_mode_name(enum sbs_mode mode)
{
	switch (mode) {
	case SBS_SOCKMAP: return "sockmap";
	case SBS_SPLICE: return "splice";
	case SBS_COPY: return "copy";
	default: return "auto";
	}
}

/* Verdict-only sockmap (no stream parser) came with Linux 5.13. */
static bool kernel_has_verdict_only(void)
{
	struct btf *vmlinux = btf__load_vmlinux_btf();
	bool ok = false;
	int id;

	if (!vmlinux)
		return false;
	id = btf__find_by_name_kind(vmlinux, "sk_psock_progs", BTF_KIND_STRUCT);
	if (id > 0) {
		const struct btf_type *t = btf__type_by_id(vmlinux, id);
		const struct btf_member *m = btf_members(t);

		for (int i = 0; i < btf_vlen(t); i++)
			if (!strcmp(btf__name_by_offset(vmlinux, m[i].name_off), "skb_verdict"))
				ok = true;
	}
	btf__free(vmlinux);
	return ok;
}

static int open_pin(const char *dir, const char *name)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return bpf_obj_get(path);
}

static bool same_value_size(int map_fd, size_t size)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);

	return !bpf_obj_get_info_by_fd(map_fd, &info, &len) && info.value_size == size;
}

/* sockmap's maps, or why not (errno). */
static int open_sockmap(struct sbs *s, const char *pin_dir)
{
	if (!kernel_has_verdict_only()) {
		snprintf(s->why, sizeof(s->why), "this kernel has no verdict-only sockmap (Linux 5.13+)");
		return -EOPNOTSUPP;
	}
	s->sockhash_fd = open_pin(pin_dir, SBS_PIN_SOCKHASH);
	if (s->sockhash_fd < 0) {
		int err = errno == EACCES ? EPERM : errno;

		if (err == ENOENT) {
			int local = open_pin(pin_dir, "sb_sockhash");

			if (local >= 0) { /* loaded, but this kernel refused the verdict */
				close(local);
				snprintf(s->why, sizeof(s->why), "this kernel refused the proxy "
					 "splice's verdict program (load.sh warned)");
				return -EOPNOTSUPP;
			}
		}
		snprintf(s->why, sizeof(s->why), err == ENOENT ?
			 "sockbypass is not loaded at %s (sudo ./load.sh)" :
			 "cannot open %s/" SBS_PIN_SOCKHASH ": %s (sockmap needs root)",
			 pin_dir, strerror(err));
		return -err;
	}
	s->dirs_fd = open_pin(pin_dir, SBS_PIN_DIRS);
	s->ctl_fd = open_pin(pin_dir, SBS_PIN_CTL);
	s->local_fd = open_pin(pin_dir, "sb_sockhash");
	if (s->dirs_fd < 0 || s->ctl_fd < 0) {
		snprintf(s->why, sizeof(s->why), "%s holds a partial load: %s", pin_dir,
			 strerror(errno));
		return -ENOENT;
	}
	/* a load by another build would read our sbs_ctl by its own layout */
	if (!same_value_size(s->ctl_fd, sizeof(struct sbs_ctl)) ||
	    !same_value_size(s->dirs_fd, sizeof(struct sbs_dir))) {
		snprintf(s->why, sizeof(s->why), "sockbypass at %s was loaded by another version "
			 "(sudo ./unload.sh && sudo ./load.sh)", pin_dir);
		return -EPROTO;
	}
	return 0;
}

/* The pinned maps open_sockmap() opened, if any (it may stop half way). */
static void close_maps(struct sbs *s)
{
	int *fds[] = { &s->sockhash_fd, &s->dirs_fd, &s->ctl_fd, &s->local_fd };

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

struct sbs *sbs_open(enum sbs_mode mode, const char *pin_dir)
{
	struct sbs *s = calloc(1, sizeof(*s));
	int err = 0;

	if (!s)
		return NULL;
	s->sockhash_fd = s->dirs_fd = s->ctl_fd = s->local_fd = -1;
	if (!pin_dir)
		pin_dir = SB_DEFAULT_PIN_DIR;
	libbpf_set_print(NULL); /* the library prints nothing */
	if (mode == SBS_SOCKMAP) {
		err = open_sockmap(s, pin_dir);
		if (err) {
			sbs_close(s);
			errno = -err;
			return NULL;
		}
		s->mode = SBS_SOCKMAP;
		snprintf(s->why, sizeof(s->why), "sockmap: sockbypass is loaded at %s", pin_dir);
		return s;
	}
	if (mode == SBS_AUTO) {
		/* the kernel path where it works, else splice(2). Not for speed:
		 * on the kernels measured (bench/proxy.sh, README) the copy mode
		 * is faster, as each redirected skb is sent from a kworker */
		char why[sizeof(s->why)];

		if (!open_sockmap(s, pin_dir)) {
			s->mode = SBS_SOCKMAP;
			snprintf(s->why, sizeof(s->why), "sockmap: sockbypass is loaded at %s",
				 pin_dir);
			return s;
		}
		close_maps(s);
		snprintf(why, sizeof(why), "%s", s->why);
		s->mode = SBS_SPLICE;
		snprintf(s->why, sizeof(s->why), "splice: no sockmap (%.200s)", why);
	} else {
		s->mode = mode;
		snprintf(s->why, sizeof(s->why), "%s: asked for", sbs_mode_name(mode));
	}
	return s;
}

void sbs_close(struct sbs *s)
{
	if (!s)
		return;
	close_maps(s);
	free(s);
}

enum sbs_mode sbs_mode(const struct sbs *s) { return s->mode; }
const char *sbs_why(const struct sbs *s) { return s->why; }
enum sbs_mode sbs_pair_mode(const struct sbs_pair *p) { return p->mode; }

static int tcp_info_of(int fd, struct tcp_info *ti)
{
	socklen_t len = sizeof(*ti);

	memset(ti, 0, sizeof(*ti));
	return getsockopt(fd, IPPROTO_TCP, TCP_INFO, ti, &len);
}

/* Bytes fd's TCP ever received (a FIN counts 1). */
static int received(int fd, unsigned long long *total)
{
	struct tcp_info ti;

	if (tcp_info_of(fd, &ti))
		return -errno;
	*total = ti.tcpi_bytes_received;
	return 0;
}

/*
 * Bytes ever written into fd's TCP (acknowledged or still queued). An ACK
 * between reading the acked count and the queue would make it look short,
 * so read until the acked count held still around the queue's size.
 */
static int taken(int fd, unsigned long long *total)
{
	struct tcp_info t1, t2;
	int outq = 0;

	do {
		if (tcp_info_of(fd, &t1) || ioctl(fd, SIOCOUTQ, &outq) || tcp_info_of(fd, &t2))
			return -errno;
	} while (t1.tcpi_bytes_acked != t2.tcpi_bytes_acked);
	*total = t2.tcpi_bytes_acked + (outq > 0 ? outq : 0);
	return 0;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) ? -errno : 0;
}

/* The buffer (copy; sockmap's copies of what the verdict left) or the pipe (splice). */
static int dir_init(struct dir *d, enum sbs_mode mode)
{
	if (mode == SBS_SPLICE) {
		if (pipe2(d->pipe, O_NONBLOCK | O_CLOEXEC))
			return -errno;
		/* as much as a copy loop holds */
		fcntl(d->pipe[1], F_SETPIPE_SZ, COPY_BUF);
		return 0;
	}
	d->buf = malloc(COPY_BUF);
	d->cap = COPY_BUF;
	return d->buf ? 0 : -ENOMEM;
}

static void dir_fini(struct dir *d)
{
	free(d->buf);
	d->buf = NULL;
	if (d->pipe[0] >= 0) {
		close(d->pipe[0]);
		close(d->pipe[1]);
	}
}

/*
 * Put both sockets in sbs_sockhash. Both directions are written first and
 * the destination of the first inserted socket is inserted first: an skb
 * that arrives in between finds its way (or stays on the source).
 */
static int register_pair(struct sbs_pair *p)
{
	struct sbs *s = p->s;
	int fds[2] = { p->d[0].src, p->d[1].src }, err = 0, i;

	for (i = 0; i < 2; i++) {
		socklen_t len = sizeof(p->d[i].src_cookie);

		if (getsockopt(fds[i], SOL_SOCKET, SO_COOKIE, &p->d[i].src_cookie, &len))
			return -errno;
	}
	for (i = 0; i < 2; i++) {
		/* what arrived before registration is read by us, first */
		struct sbs_dir v = { .peer = p->d[!i].src_cookie, .passing = 1 };
		struct sbs_ctl c = { .dst_base = p->d[i].dst_base };

		if (bpf_map_update_elem(s->ctl_fd, &p->d[i].src_cookie, &c, BPF_ANY) ||
		    bpf_map_update_elem(s->dirs_fd, &p->d[i].src_cookie, &v, BPF_NOEXIST))
			err = -errno;
	}
	if (err)
		goto undo;
	/* a socket whose FIN came cannot enter a SOCKHASH: find out before the
	 * other one is in (taking that one out again would drop what the
	 * verdict left on it) */
	for (i = 0; i < 2; i++) {
		struct tcp_info ti;

		if (tcp_info_of(fds[i], &ti))
			err = -errno;
		else if (ti.tcpi_state != BPF_TCP_ESTABLISHED) /* the kernel's numbering */
			err = -EOPNOTSUPP;
	}
	if (err)
		goto undo;
	/* a socket of the local bypass: sk_msg hands its peer's bytes to it
	 * without an skb, so no verdict would see them; the local bypass
	 * skips the stack there already, and a copy can read such a socket */
	for (i = 0; i < 2 && s->local_fd >= 0; i++) {
		__u64 v;

		if (bpf_map_lookup_elem(s->local_fd, &p->d[i].src_cookie, &v) == 0)
			err = -EBUSY;
	}
	if (err)
		goto undo;
	/* b first (a's destination), then a */
	for (i = 1; i >= 0; i--) {
		__u64 fd = fds[i];

		if (bpf_map_update_elem(s->sockhash_fd, &p->d[i].src_cookie, &fd, BPF_NOEXIST)) {
			err = -errno;
			break;
		}
	}
	if (err) {
undo:
		for (i = 0; i < 2; i++) {
			bpf_map_delete_elem(s->sockhash_fd, &p->d[i].src_cookie);
			bpf_map_delete_elem(s->dirs_fd, &p->d[i].src_cookie);
			bpf_map_delete_elem(s->ctl_fd, &p->d[i].src_cookie);
		}
		return err;
	}
	p->registered = true;
	return 0;
}

static void unregister_pair(struct sbs_pair *p)
{
	if (!p->registered)
		return;
	for (int i = 0; i < 2; i++) {
		/* a detached socket stays in the SOCKHASH until it closes (the
		 * kernel takes it out then): taking it out now would drop the
		 * bytes the verdict left on it for the caller. Without its
		 * entries the verdict still leaves every skb there */
		if (!p->detached)
			bpf_map_delete_elem(p->s->sockhash_fd, &p->d[i].src_cookie);
		bpf_map_delete_elem(p->s->dirs_fd, &p->d[i].src_cookie);
		bpf_map_delete_elem(p->s->ctl_fd, &p->d[i].src_cookie);
	}
	p->registered = false;
}

/* src's peer closed its side (a FIN); POLLERR is not an EOF. */
static bool peer_closed(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLRDHUP };

	return poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLRDHUP | POLLHUP));
}

/*
 * What each socket carried before the pair took it over: received minus
 * still unread. A byte or the FIN arriving between reading the count and
 * the queue would skew the base (a hung pair once showed -54), so read
 * until the count held still around the queue's size and the FIN check.
 */
static int note_bases(struct sbs_pair *p)
{
	for (int i = 0; i < 2; i++) {
		unsigned long long t1, t2;
		int inq = 0, err;
		bool fin;

		do {
			err = received(p->d[i].src, &t1);
			if (!err && ioctl(p->d[i].src, SIOCINQ, &inq))
				err = -errno;
			fin = peer_closed(p->d[i].src);
			err = err ?: received(p->d[i].src, &t2);
			if (err)
				return err;
		} while (t1 != t2);
		/* a FIN that came already counts 1 in bytes_received, not in SIOCINQ:
		 * it is still the pair's to pass on */
		p->d[i].src_base = t2 - (inq > 0 ? inq : 0) - (fin ? 1 : 0);
		p->d[i].unread_before = inq > 0 ? inq : 0;
		err = taken(p->d[i].dst, &p->d[i].dst_base);
		if (err)
			return err;
	}
	return 0;
}

struct sbs_pair *sbs_pair_new(struct sbs *s, int a, int b)
{
	struct sbs_pair *p = calloc(1, sizeof(*p));
	int err, i;

	if (!p)
		return NULL;
	p->s = s;
	p->mode = s->mode;
	p->d[0].src = a, p->d[0].dst = b, p->d[1].src = b, p->d[1].dst = a;
	p->d[0].pipe[0] = p->d[1].pipe[0] = -1;
	err = set_nonblock(a) ?: set_nonblock(b) ?: note_bases(p);
	if (!err && p->mode == SBS_SOCKMAP) {
		err = register_pair(p);
		/* a socket the local bypass already has (its psock has other
		 * programs): the local bypass skips the stack there already;
		 * splice(2) cannot read such a socket, a copy can */
		if (err == -EBUSY || err == -EOPNOTSUPP || err == -EINVAL) {
			p->mode = SBS_COPY;
			err = 0;
		}
	}
	for (i = 0; !err && i < 2; i++) {
		p->d[i].sockmap = p->mode == SBS_SOCKMAP;
		err = dir_init(&p->d[i], p->mode);
	}
	if (err) {
		sbs_pair_free(p);
		errno = -err;
		return NULL;
	}
	return p;
}

void sbs_pair_free(struct sbs_pair *p)
{
	if (!p)
		return;
	unregister_pair(p);
	dir_fini(&p->d[0]);
	dir_fini(&p->d[1]);
	free(p);
}

void sbs_pair_bytes(const struct sbs_pair *p, unsigned long long *a_to_b,
		    unsigned long long *b_to_a)
{
	*a_to_b = p->d[0].moved;
	*b_to_a = p->d[1].moved;
}

static bool again(int err)
{
	return err == EAGAIN || err == EWOULDBLOCK;
}


/* The kernel's figures for a sockmap direction. */
static int kernel_moved(struct sbs_pair *p, struct dir *d, struct sbs_dir *v)
{
	if (bpf_map_lookup_elem(p->s->dirs_fd, &d->src_cookie, v))
		return -errno;
	return 0;
}

/*
 * sockmap: has the destination's TCP taken every byte the kernel sent on
 * and every byte we wrote? Then what we copy next cannot overtake.
 */
static int dst_caught_up(struct sbs_pair *p, struct dir *d, bool *yes)
{
	unsigned long long now;
	struct sbs_dir v;
	int err;

	int soerr = 0;
	socklen_t len = sizeof(soerr);

	/* a destination reset by its peer never takes more: waiting would hang
	 * the pair (iperf3 resets its data connections), so the pair resets */
	if (!getsockopt(d->dst, SOL_SOCKET, SO_ERROR, &soerr, &len) && soerr)
		return -soerr;
	err = kernel_moved(p, d, &v) ?: taken(d->dst, &now);
	if (err)
		return err;
	*yes = now - d->dst_base >= v.redirected_bytes + d->user_written;
	return 0;
}

/*
 * splice(2) reads TCP's receive queue. Bytes the local bypass hands to src
 * wait in its psock instead, where only recv() sees them: splice says
 * EAGAIN (or 0 after the FIN) with bytes there. Such a direction is copied
 * from then on (the pipe is empty when this is asked).
 */
static int splice_or_copy(struct dir *d, ssize_t *n)
{
	char c;

	for (int tries = 0; tries < 2; tries++) {
		*n = splice(d->src, NULL, d->pipe[1], NULL, COPY_BUF, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
		if (*n > 0 || (*n < 0 && !again(errno)))
			return 0;
		if (recv(d->src, &c, 1, MSG_PEEK | MSG_DONTWAIT) != 1)
			return 0; /* really nothing (or the FIN) */
		/* once more: a byte that reached TCP's queue just now shows to splice */
	}
	d->buf = malloc(COPY_BUF);
	if (!d->buf)
		return -ENOMEM;
	close(d->pipe[0]);
	close(d->pipe[1]);
	d->pipe[0] = d->pipe[1] = -1;
	*n = -1;
	errno = EAGAIN;
	return 1;
}

/* Give dst what we hold of this direction: 1 while some is left (EAGAIN). */
static int flush_in_hand(struct dir *d)
{
	ssize_t n;

	while (d->in_pipe) {
		n = splice(d->pipe[0], NULL, d->dst, NULL, d->in_pipe, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
		if (n < 0)
			return again(errno) ? 1 : -errno;
		d->in_pipe -= n, d->moved += n, d->user_written += n;
	}
	while (d->off < d->len) {
		n = send(d->dst, d->buf + d->off, d->len - d->off, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0)
			return again(errno) ? 1 : -errno;
		d->off += n, d->moved += n, d->user_written += n;
	}
	return 0;
}

/* Copy (or splice) what src has for dst: until EAGAIN on either side. */
static int copy_some(struct dir *d)
{
	ssize_t n;
	int err;

	for (;;) {
		if (d->pipe[0] >= 0) {
			if (!d->in_pipe && !d->rdhup) {
				err = splice_or_copy(d, &n);
				if (err < 0)
					return err;
				if (err > 0)
					continue; /* copied from now on */
				if (n == 0)
					d->rdhup = true;
				else if (n < 0)
					return again(errno) ? 0 : -errno;
				else
					d->in_pipe = n, d->user_read += n;
			}
			err = flush_in_hand(d);
			if (err)
				return err < 0 ? err : 0;
			if (d->rdhup)
				return 0;
			continue;
		}
		if (d->off == d->len && !d->rdhup) {
			n = recv(d->src, d->buf, COPY_BUF, MSG_DONTWAIT);
			if (n == 0)
				d->rdhup = true;
			else if (n < 0)
				return again(errno) ? 0 : -errno;
			else
				d->off = 0, d->len = n, d->user_read += n;
		}
		err = flush_in_hand(d);
		if (err)
			return err < 0 ? err : 0;
		if (d->rdhup)
			return 0;
	}
}

/* copy or splice: EOF is read(2) returning 0 with nothing left to write. */
static int step_copy(struct dir *d)
{
	int err = copy_some(d);

	if (err)
		return err;
	if (d->rdhup && d->off == d->len && !d->in_pipe) {
		if (shutdown(d->dst, SHUT_WR) && errno != ENOTCONN)
			return -errno;
		d->done = true;
	}
	return 0;
}

/* Write this direction's sbs_ctl, and keep what it says in d. */
static int write_ctl(struct sbs_pair *p, struct dir *d, bool flushed, bool detached)
{
	struct sbs_ctl c = { .dst_base = d->dst_base, .consumed = d->user_read, .flushed = flushed,
			     .detached = detached };

	if (bpf_map_update_elem(p->s->ctl_fd, &d->src_cookie, &c, BPF_EXIST))
		return -errno;
	d->flushed = flushed;
	d->detached = detached;
	d->ctl_consumed = d->user_read;
	return 0;
}

/* Tell the verdict what this direction's library side is doing. */
static int set_ctl(struct sbs_pair *p, struct dir *d, bool flushed)
{
	if (d->flushed == flushed && d->ctl_consumed == d->user_read)
		return 0;
	return write_ctl(p, d, flushed, d->detached);
}

/* Bytes (or the EOF) wait on fd for a read. */
static bool readable(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN);
}

/*
 * sockmap, after src's FIN: every byte src's TCP received (total, the FIN
 * counting 1) came before the pair, was redirected by the kernel or read by us.
 */
static bool all_handled(const struct dir *d, const struct sbs_dir *v, unsigned long long total)
{
	return d->src_base + v->redirected_bytes + d->user_read + 1 >= total;
}

/*
 * An skb the verdict left that the kernel could not queue for our recv()
 * at once (an allocation failed, then the buffer was full) waits in the
 * psock's work, and 5.10 retries it only when a new skb comes or src gets
 * write space (read in the 5.10.223 source): after the FIN neither comes.
 * Setting TCP_NOTSENT_LOWAT to the value it has calls src's write-space
 * callback, which schedules that work; nothing else changes.
 */
static int kick_backlog(int fd)
{
	socklen_t len;
	int v = 0;

	len = sizeof(v);
	if (getsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &v, &len) ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &v, len))
		return -errno;
	return 0;
}

static unsigned long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ULL + ts.tv_nsec / 1000000;
}

/*
 * After the FIN, bytes src received are neither redirected nor read yet:
 * look again and kick on every look, unless none of them came for
 * TAIL_GIVE_UP_MS. Then the kernel lost them, and the pair resets (-EPIPE)
 * so the stream cannot look complete.
 */
static bool tail_is_coming(struct dir *d)
{
	unsigned long long now = now_ms();

	if (!d->tail_since || d->tail_read != d->user_read) {
		d->tail_since = now;
		d->tail_read = d->user_read;
	}
	return now - d->tail_since < TAIL_GIVE_UP_MS;
}

/*
 * sockmap, with nothing in hand: recv() what the verdict left. Bytes that
 * came before the pair are still in src's TCP queue, where recv() reads
 * them itself, and 5.10's verdict takes an skb such a read left half done
 * whole, ignoring the offset: the half read came again (a 5.10 guest: a
 * stream repeated from byte 65,536, where a 64 KiB read ended inside an
 * skb). So while those bytes are not all read, read all the queue holds
 * (SIOCINQ) at once; then the buffer shrinks back. Only then: on 6.18 a
 * stalled pair that always read all SIOCINQ said held 12.6 MB against a
 * copy proxy's 8.3 (proxy: stalled_backend_holds_what_a_copy_proxy_holds).
 */
static ssize_t recv_left(struct dir *d)
{
	size_t want = COPY_BUF;
	int inq = 0;

	if (d->user_read < d->unread_before && !ioctl(d->src, SIOCINQ, &inq) && inq > 0)
		want += inq; /* a short read then says the queue is empty */
	if (want != d->cap) {
		char *buf = realloc(d->buf, want);

		if (!buf)
			return -1; /* errno ENOMEM */
		d->buf = buf, d->cap = want;
	}
	return recv(d->src, d->buf, want, MSG_DONTWAIT);
}

/*
 * sockmap: copy what the verdict left on src, once the destination caught
 * up. "flushed" goes to 1 only with nothing in hand, and before one more
 * look at src: the verdict resumes redirecting on an empty source with
 * flushed set, so nothing it redirects can overtake a byte we copy.
 */
static int copy_left(struct sbs_pair *p, struct dir *d)
{
	bool caught_up = false, looked = false, recv_after_eof = false;
	ssize_t n;
	int err;

	for (;;) {
		if (d->off < d->len) {
			if (!caught_up) {
				if (looked)
					return 0; /* the kernel's skbs go first: later */
				err = dst_caught_up(p, d, &caught_up);
				looked = true;
				if (err || !caught_up)
					return err;
			}
			n = send(d->dst, d->buf + d->off, d->len - d->off, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n < 0)
				return again(errno) ? 0 : -errno;
			d->off += n, d->moved += n, d->user_written += n;
			continue;
		}
		if (d->eof_read) {
			unsigned long long total;
			struct sbs_dir v;

			/* recv() says 0 when the FIN came and the ready queue is
			 * empty, also while skbs the verdict left are still on
			 * their way to it: done only when every byte src received
			 * was redirected or read. TCP's count, not the verdict's:
			 * after direct reads ours passes the verdict's early (a
			 * 5.10 pair hung 108 bytes short, CI 2026-12-02) */
			err = kernel_moved(p, d, &v) ?: received(d->src, &total);
			if (err || all_handled(d, &v, total))
				return err;
			if (recv_after_eof)
				return tail_is_coming(d) ? kick_backlog(d->src) : -EPIPE;
			recv_after_eof = true;
		} else if (!readable(d->src)) {
			if (d->flushed || d->direct_reads)
				return 0;
			err = set_ctl(p, d, true);
			if (err || !readable(d->src))
				return err;
			/* while flushed was set the verdict may have redirected
			 * skbs (then left the next one here): the destination
			 * must take those before what we read now. A caught_up
			 * from before would let our copy overtake them */
			caught_up = false, looked = false;
		}
		err = set_ctl(p, d, false);
		if (err)
			return err;
		n = recv_left(d);
		if (n == 0) {
			d->eof_read = true;
		} else if (n < 0 && again(errno)) {
			continue; /* readable, but nothing for us: look again */
		} else if (n < 0) {
			return -errno;
		} else {
			struct sbs_dir v;

			d->off = 0, d->len = n, d->user_read += n;
			/* the verdict counts what it leaves before we can read it */
			err = kernel_moved(p, d, &v);
			if (err)
				return err;
			if (d->user_read > v.passed_bytes)
				d->direct_reads = true;
		}
	}
}

/*
 * sockmap. EOF: src saw the FIN and every byte it received (plus 1 for the
 * FIN) was sent on by the kernel or copied by us; then, once the
 * destination's TCP holds it all, the FIN goes on.
 */
static int step_sockmap(struct sbs_pair *p, struct dir *d)
{
	unsigned long long total;
	struct sbs_dir v;
	bool caught_up;
	int err;

	err = copy_left(p, d);
	if (err)
		return err;
	if (!d->fin_seen && !peer_closed(d->src))
		return 0;
	d->fin_seen = true;
	err = received(d->src, &total) ?: kernel_moved(p, d, &v);
	if (err)
		return err;
	if (!all_handled(d, &v, total) || d->off < d->len)
		return 0; /* the verdict (or we) have not handled every byte yet */
	err = dst_caught_up(p, d, &caught_up);
	if (err || !caught_up)
		return err;
	d->moved = v.redirected_bytes + d->user_written;
	if (shutdown(d->dst, SHUT_WR) && errno != ENOTCONN)
		return -errno;
	d->done = true;
	return 0;
}

/*
 * sockmap, nothing to do: flushed (or reading TCP's queue itself), nothing
 * in hand, no FIN. copy_left() and step_sockmap() would each poll src to
 * find that out; one poll answers for both.
 */
static bool idle(const struct dir *d)
{
	return d->sockmap && d->off >= d->len && !d->eof_read && !d->fin_seen &&
	       (d->flushed || d->direct_reads);
}

/*
 * Every direction that is not done is idle and neither source has a byte,
 * an EOF or an error: one poll() for the pair, where the full step takes
 * four. Most of a proxy's looks at thousands of pairs end here.
 */
static bool nothing_to_do(const struct sbs_pair *p)
{
	struct pollfd pfd[2];
	nfds_t n = 0;

	for (int i = 0; i < 2; i++) {
		if (p->d[i].done)
			continue;
		if (!idle(&p->d[i]))
			return false;
		pfd[n++] = (struct pollfd){ .fd = p->d[i].src, .events = POLLIN | POLLRDHUP };
	}
	return n && poll(pfd, n, 0) == 0;
}

int sbs_pair_step(struct sbs_pair *p)
{
	if (p->detached)
		return -EINVAL; /* the sockets are the caller's */
	if (nothing_to_do(p))
		return 1;
	for (int i = 0; i < 2; i++) {
		struct dir *d = &p->d[i];
		int err;

		if (d->done)
			continue;
		err = d->sockmap ? step_sockmap(p, d) : step_copy(d);
		if (err)
			return err;
	}
	if (p->d[0].done && p->d[1].done) {
		unregister_pair(p);
		return 0;
	}
	return 1;
}

/*
 * sockmap: tell the verdict to leave every skb on src from now on, and wait
 * out a verdict that read the old word: it runs under src's socket lock,
 * which TCP_INFO takes. After this no skb goes to dst that we do not count.
 */
static int detach_ctl(struct sbs_pair *p, struct dir *d)
{
	unsigned long long total;

	if (d->detached)
		return 0;
	return write_ctl(p, d, d->flushed, true) ?: received(d->src, &total);
}

int sbs_pair_detach(struct sbs_pair *p)
{
	int busy = 0;

	for (int i = 0; i < 2; i++) {
		struct dir *d = &p->d[i];
		bool caught_up = true;
		int err;

		if (d->sockmap) {
			/* the kernel's bytes go first, then what we hold */
			err = detach_ctl(p, d) ?: dst_caught_up(p, d, &caught_up);
			if (err)
				return err;
			if (!caught_up) {
				busy = 1;
				continue;
			}
		}
		err = flush_in_hand(d);
		if (err < 0)
			return err;
		busy |= err;
	}
	if (busy)
		return 1;
	p->detached = true;
	return 0;
}

int sbs_pair_tick_ms(const struct sbs_pair *p)
{
	bool live = false;

	/* sockmap directions raise no event while the kernel moves their
	 * bytes: look at their backlog and EOF now and then. An idle one
	 * waits for an event (bytes the verdict leaves, a FIN: EPOLLIN,
	 * EPOLLRDHUP); its rare look only guards against a lost one */
	for (int i = 0; i < 2; i++) {
		if (!p->d[i].sockmap || p->d[i].done)
			continue;
		if (!idle(&p->d[i]))
			return TICK_MS;
		live = true;
	}
	return live ? IDLE_TICK_MS : -1;
}

/* One direction for sbs_pair_describe(): ours, and for sockmap the kernel's and TCP's counts. */
static int describe_dir(const struct sbs_pair *p, const struct dir *d, char *buf, size_t len)
{
	unsigned long long got = 0, took = 0;
	struct sbs_dir v = {};
	int n, inq = -1;

	n = snprintf(buf, len, "moved %llu read %llu written %llu%s%s%s%s base %llu/%llu in hand %zu",
		     d->moved, d->user_read, d->user_written, d->fin_seen ? " fin" : "",
		     d->eof_read || d->rdhup ? " eof" : "", d->done ? " done" : "",
		     d->direct_reads ? " direct" : "", d->src_base, d->dst_base, d->len - d->off);
	if (!d->sockmap || n < 0 || (size_t)n >= len)
		return n;
	/* what a hung direction waits for: compare these with the rule in step_sockmap() */
	bpf_map_lookup_elem(p->s->dirs_fd, &d->src_cookie, &v);
	received(d->src, &got);
	taken(d->dst, &took);
	ioctl(d->src, SIOCINQ, &inq); /* TCP's own queue, which the verdict has not seen */
	return n + snprintf(buf + n, len - n, " kernel redirected %llu passed %llu%s%s%s"
			    " src received %llu unread in TCP %d dst taken %llu",
			    (unsigned long long)v.redirected_bytes, (unsigned long long)v.passed_bytes,
			    v.passing ? " passing" : "", d->flushed ? " flushed" : "",
			    readable(d->src) ? " readable" : "", got, inq, took);
}

int sbs_pair_describe(const struct sbs_pair *p, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s; a->b: ", sbs_mode_name(p->mode)), m;

	if (n < 0 || (size_t)n >= len)
		return n;
	m = describe_dir(p, &p->d[0], buf + n, len - n);
	if (m < 0 || (size_t)(n += m) >= len)
		return n;
	m = snprintf(buf + n, len - n, "; b->a: ");
	if (m < 0 || (size_t)(n += m) >= len)
		return n;
	m = describe_dir(p, &p->d[1], buf + n, len - n);
	return m < 0 ? m : n + m;
}
