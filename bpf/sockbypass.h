/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Types, names and limits shared by the BPF programs and the loader. */
#ifndef SOCKBYPASS_H
#define SOCKBYPASS_H

#include <linux/types.h>

/* Pin layout: everything lives in one directory on bpffs. */
#define SB_DEFAULT_PIN_DIR "/sys/fs/bpf/sockbypass"
#define SB_PIN_LINK   "sb_sockops_link" /* pinned last at load, removed first at unload */
#define SB_PIN_SOCKOPS "sb_sockops"
#define SB_PIN_SK_MSG  "sb_sk_msg"
#define SB_PIN_DRAIN   "sb_drain"
/* fentry/fexit on sk_wait_data(): count readers asleep in tcp_recvmsg() */
#define SB_PIN_WAIT_ENTER_LINK "sb_wait_enter_link"
#define SB_PIN_WAIT_EXIT_LINK  "sb_wait_exit_link"
/* Maps are pinned under their own names: sb_sockhash, sb_socks, ... */

#define SB_SOCKHASH_MAX 65536
#define SB_PENDING_MAX  16384
/* --queue-limit 0 (the default): the bound follows TCP's buffers (README:
 * "Memory"). Below the floor a queue is never counted as full. */
#define SB_QUEUE_FLOOR (64U << 10)
/* A reader that took nothing for this long counts as stalled: long enough
 * for a reader starved of CPU by its writers (they never wait for it). */
#define SB_STALLED_NS (1000ULL * 1000 * 1000)
/* A look at TCP's and the memory cgroup's room is trusted for one tick,
 * and for at most this many pages (README: "Memory") */
#define SB_MEM_LOOK_PAGES_MAX (1L << 20)
/* Kernels without sk_psock.msg_tot_len: queued messages the send path sums
 * before it counts a peer as behind (the loader's warning names it). */
#define SB_WALK_SEND_MAX 256

/*
 * A TCP tuple as the client sees it. IPv4 addresses are stored v4-mapped
 * (::ffff:a.b.c.d) so that an AF_INET client and an AF_INET6 dual-stack
 * listener produce the same key. Addresses in network order, ports in host order.
 */
struct sb_tuple {
	__u32 client_addr[4];
	__u32 server_addr[4];
	__u16 client_port;
	__u16 server_port;
};

/*
 * Pairs the two ends of one connection: the client publishes its view at
 * ESTABLISHED, the server looks up the mirror image of its own. Sequence
 * numbers in host order (as struct bpf_sock_ops gives them).
 */
struct sb_pending_key {
	__u32 client_next; /* client snd_nxt == server rcv_nxt */
	__u32 server_next; /* client rcv_nxt == server snd_nxt */
	__u16 client_port;
	__u16 server_port;
	__u32 pad;
};

/*
 * One end of a connection. sk is the kernel address of its struct sock, read
 * only with bpf_probe_read_kernel() to see how much it has not read yet: sk_msg
 * programs may not look sockets up in a SOCKHASH (they cannot release them).
 * A stale address after a close reads garbage, which at worst sends one
 * connection through TCP: never a wrong redirect, never a fault.
 */
struct sb_peer {
	__u64 cookie;
	__u64 sk;
};

/* Per-socket state, in sb_socks under the socket's cookie. */
struct sb_sock_state {
	/* set when both ends are in the SOCKHASH (the server's at insert, the
	 * client's by its server); cookie 0 = not yet */
	struct sb_peer peer;
	/*
	 * This socket's write_seq when its TCP byte stream was last known to be
	 * fully read by the peer. write_seq moves only for bytes given to TCP,
	 * so while it stays here, redirecting cannot overtake a TCP byte.
	 */
	__u32 tcp_seq;
	__u32 redirected; /* 1 once a message went to the peer */
	struct sb_pending_key pending; /* what the client published, to forget at close */
	/* the first message of the peer's queue at the last look, and when it
	 * last changed: whether the peer reads (sender's lock held) */
	__u64 peer_head;
	__u64 peer_read_ns;
	/* at most this many bytes sit unread in the peer's queue: what the last
	 * look counted, plus what was redirected since (only this socket
	 * redirects to it); no look is needed while that is under the bound */
	__u64 unread_mark;
	__u64 peer_memcg;  /* the peer's memory cgroup (it keeps the one it was made in) */
	__u32 memcg_known; /* peer_memcg was read */
	__u32 pad;
};

/*
 * Which connections the bypass may take, by port (--only-ports,
 * --exclude-ports, "sockbypass scope"). A connection matches a list when
 * either of its two ports is on it. Read by sockops once per connection;
 * one slot per port, so no list is ever too long for it.
 */
enum sb_port_class {
	SB_PORT_UNLISTED = 0,
	SB_PORT_ONLY = 1,     /* on --only-ports */
	SB_PORT_EXCLUDED = 2, /* on --exclude-ports */
};

#define SB_PORTS 65536
struct sb_scope {
	__u32 only_count; /* ports on --only-ports; 0 = every port not excluded */
	__u32 excluded_count;
	__u8 port[SB_PORTS]; /* enum sb_port_class; port[0] unused */
};

/* Written by the loader: turns redirection on and off for every socket at once. */
struct sb_config {
	__u32 enabled;
	__u32 trace;       /* informational: the programs were built with tracing on */
	__u64 queue_limit; /* unread redirected bytes a peer may hold (0: follows TCP's buffers) */
	__u32 sleepers_counted; /* sb_wait_enter/exit are attached: sb_sleepers is exact */
	__u32 pad;
};

/* Per-CPU counters, one array slot each. Keep sb_counter_names in step. */
enum sb_counter {
	SB_C_HINTS,              /* SYNs seen by a listener in the cgroup */
	SB_C_INSERTED,           /* sockets put into the SOCKHASH */
	SB_C_PAIRED,             /* connections whose two ends were paired */
	SB_C_INSERT_FAILED,      /* SOCKHASH or pair map full, or storage failed */
	SB_C_SKIP_NOT_LOCAL,     /* client whose peer no listener of ours saw */
	SB_C_SKIP_PAYLOAD,       /* payload crossed TCP before ESTABLISHED (TFO) */
	SB_C_SKIP_UNPAIRED,      /* server with no matching local client */
	SB_C_SKIP_CONFLICT,      /* two clients published the same key */
	SB_C_REDIRECTED_MSGS,
	SB_C_REDIRECTED_BYTES,
	SB_C_PASSED_MSGS,        /* messages sent through TCP by sockets in the map */
	SB_C_PASSED_BYTES,
	/* messages sent through TCP, by reason */
	SB_C_FALLBACK_UNPAIRED,  /* no peer (yet): raced setup, or the peer is gone */
	SB_C_FALLBACK_DISABLED,  /* bypass turned off (unload) */
	SB_C_FALLBACK_BACKLOG,   /* peer's unread queue over its limit */
	SB_C_FALLBACK_REDIRECT,  /* redirect refused by the kernel */
	SB_C_FALLBACK_NO_STATE,  /* socket without storage (inserted by someone else) */
	SB_C_FALLBACK_TCP_BUSY,  /* earlier TCP bytes not all read yet, or a reader in tcp_recvmsg */
	SB_C_RESUMED,            /* directions redirected again after TCP carried some bytes */
	SB_C_SKIP_EXCLUDED,      /* connections kept on TCP by the port scope (at the client) */
	SB_C_FALLBACK_MEMORY,    /* TCP memory or the peer's memory cgroup near its limit */
	SB_C_NR,
};

#define SB_COUNTER_NAMES                                                   \
	"hints", "inserted", "paired", "insert_failed", "skip_not_local",  \
	"skip_payload", "skip_unpaired", "skip_conflict", "redirected_msgs", \
	"redirected_bytes", "passed_msgs", "passed_bytes",                  \
	"fallback_unpaired", "fallback_disabled", "fallback_backlog",      \
	"fallback_redirect", "fallback_no_state", "fallback_tcp_busy", "resumed", \
	"skip_excluded", "fallback_memory"

/* sb_drain's answer for a socket no longer in the SOCKHASH (else: its unread bytes) */
#define SB_DRAIN_GONE 0xffffffffU

#endif /* SOCKBYPASS_H */
