/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The proxy splice: types and names shared by its verdict program, the
 * loader and libsockbypass-splice. A proxy registers its two sockets of one
 * connection (client, backend); each skb either socket receives goes from
 * sbs_verdict to the other socket's egress.
 */
#ifndef SOCKBYPASS_SPLICE_H_SHARED
#define SOCKBYPASS_SPLICE_H_SHARED

#include <linux/types.h>

/* Pins, in the pin dir beside the local bypass's. */
#define SBS_PIN_SOCKHASH "sbs_sockhash"
#define SBS_PIN_DIRS     "sbs_dirs"
#define SBS_PIN_CTL      "sbs_ctl"
#define SBS_PIN_COUNTERS "sbs_counters"
#define SBS_PIN_VERDICT  "sbs_verdict"

#define SBS_SOCKHASH_MAX 65536
/*
 * The bound: bytes the kernel has sent on but the destination's TCP has
 * not taken yet (its send buffer is full), about what a copy proxy holds
 * in its buffers. Past it, skbs stay on the source, whose window then
 * closes, as for a proxy that stops reading; redirecting resumes once the
 * library read every byte left there, wrote them on, and the backlog halved.
 */
#define SBS_BACKLOG_BYTES (256U << 10)

/*
 * One direction of a registered pair, keyed by the cookie of the socket the
 * bytes arrive on (the source). Written by the library before either socket
 * enters sbs_sockhash; the verdict counts into it.
 */
struct sbs_dir {
	__u64 peer;             /* cookie of the destination socket */
	__u64 redirected_bytes; /* handed to the destination's egress queue */
	__u64 redirected_msgs;
	__u64 passed_bytes;     /* left on the source for the library to copy */
	__u32 passing;          /* 1: skbs stay on the source, until the library caught up
				 * (1 at registration: what arrived before is the library's) */
	__u32 pad;
};

/*
 * The library's side of a direction, keyed by source cookie: written only
 * by the library, read by the verdict (sbs_dirs is the verdict's).
 */
struct sbs_ctl {
	__u64 dst_base; /* bytes the destination's TCP had taken at registration */
	__u64 consumed; /* bytes the library has read from the source, as of
			 * the last time it set flushed (and written on: it
			 * sets flushed only with none in hand) */
	__u32 flushed;  /* the library holds no byte of this direction and had
			 * read consumed bytes when it last looked at the source */
	__u32 detached; /* leave every byte on the source from now on: the
			 * proxy took the sockets back for its own I/O
			 * (sbs_pair_detach), and reads them there, in order */
	/* was no_hold (never leave bytes after a FIN went to the source);
	 * kept as room so the layout, and older libraries, still fit */
	__u32 pad[2];
};

/* Per-CPU counters, one array slot each. Keep SBS_COUNTER_NAMES in step. */
enum sbs_counter {
	SBS_C_REDIRECTED_MSGS,
	SBS_C_REDIRECTED_BYTES,
	SBS_C_FIN,              /* zero-length skbs (a FIN TCP already took): dropped */
	SBS_C_PASS_UNREGISTERED,/* skbs of a socket with no direction entry */
	SBS_C_PASS_BACKLOG,     /* skbs left on the source: the destination is behind */
	SBS_C_PASS_HELD,        /* skbs left on the source after an earlier one was */
	SBS_C_PASS_REFUSED,     /* redirect refused by the kernel: destination gone */
	SBS_C_RESUMED,          /* directions redirected again after the library copied */
	SBS_C_PASS_DETACHED,    /* skbs left on a source the proxy took back */
	SBS_C_NR,
};

#define SBS_COUNTER_NAMES                                               \
	"redirected_msgs", "redirected_bytes", "fin", "pass_unregistered", \
	"pass_backlog", "pass_held", "pass_refused", "resumed", "pass_detached"

#endif
