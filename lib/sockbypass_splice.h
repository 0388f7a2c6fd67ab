/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * libsockbypass-splice: forward between a proxy's two sockets of one
 * connection (client, backend) without copying through the proxy.
 *
 *   struct sbs *s = sbs_open(SBS_AUTO, NULL);       once per process
 *   struct sbs_pair *p = sbs_pair_new(s, cfd, bfd); per connection
 *   on any epoll event of cfd or bfd, and at least every
 *   sbs_pair_tick_ms(p) ms while that is >= 0:
 *       r = sbs_pair_step(p);   1: running, 0: both directions done
 *                               (each EOF passed on after its last byte),
 *                               < 0: -errno, reset both sockets
 *   sbs_pair_free(p); close(cfd); close(bfd);
 *   (or, to go on with the sockets yourself: sbs_pair_detach(p) until 0)
 *
 * Register the fds with EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET. The
 * library sets them non-blocking. Which path moves the bytes (the kernel's
 * sockmap, splice(2), or a copy loop) is the library's business: the calls
 * and their results are the same.
 */
#ifndef SOCKBYPASS_SPLICE_H
#define SOCKBYPASS_SPLICE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum sbs_mode {
	SBS_AUTO = 0, /* sockmap where it works here, else splice (README, the proxy splice) */
	SBS_SOCKMAP,  /* sbs_verdict moves each skb in the kernel (sockbypass loaded, root) */
	SBS_SPLICE,   /* splice(2) through a pipe */
	SBS_COPY,     /* read(2) and write(2) */
};

struct sbs;
struct sbs_pair;

/*
 * The process's handle. SBS_AUTO picks the best mode that works here;
 * asking for SBS_SOCKMAP where it cannot work fails (NULL, errno:
 * EPERM without privileges, ENOENT if sockbypass is not loaded at pin_dir,
 * EOPNOTSUPP on a kernel without verdict-only sockmap, EPROTO if another
 * version of sockbypass loaded it: its maps' layout differs). pin_dir NULL:
 * /sys/fs/bpf/sockbypass.
 */
struct sbs *sbs_open(enum sbs_mode mode, const char *pin_dir);
void sbs_close(struct sbs *s);
enum sbs_mode sbs_mode(const struct sbs *s);
/* One line: which mode and why (what auto found). */
const char *sbs_why(const struct sbs *s);
const char *sbs_mode_name(enum sbs_mode mode);

/* Takes two connected TCP sockets; NULL and errno on failure. */
struct sbs_pair *sbs_pair_new(struct sbs *s, int a, int b);
int sbs_pair_step(struct sbs_pair *p);
/* ms until the pair wants sbs_pair_step() again without an event, -1: never. */
int sbs_pair_tick_ms(const struct sbs_pair *p);
/* The mode this pair runs in (a socket the local bypass has takes copy). */
enum sbs_mode sbs_pair_mode(const struct sbs_pair *p);
/* Bytes moved a -> b and b -> a so far. */
void sbs_pair_bytes(const struct sbs_pair *p, unsigned long long *a_to_b,
		    unsigned long long *b_to_a);
/* One line on the pair's state, for logs (snprintf's return). */
int sbs_pair_describe(const struct sbs_pair *p, char *buf, size_t len);
/*
 * Take both sockets back mid-stream, for the caller's own I/O: call it (in
 * place of sbs_pair_step) on each event and tick until it returns 0. 1: the
 * library still has bytes to give the other socket; 0: every byte it or the
 * kernel took from either socket is in the other one's TCP, and what comes
 * next waits on its socket for the caller's recv(), in order (an EOF the
 * library saw is seen again); < 0: -errno, reset both. Then sbs_pair_free().
 * In sockmap mode the sockets stay in the kernel's map until they close
 * (taking them out would drop what waits there); plain recv(), send() and
 * epoll work on them.
 */
int sbs_pair_detach(struct sbs_pair *p);
/* Unregisters (sockmap) and frees; closes neither socket. */
void sbs_pair_free(struct sbs_pair *p);

#ifdef __cplusplus
}
#endif
#endif
