// SPDX-License-Identifier: GPL-2.0
/*
 * sockbypass: TCP between two sockets of this host, both inside the covered
 * cgroup, skips the TCP/IP stack.
 *
 *   sb_sockops  pairs the two ends of a local connection by their sequence
 *               numbers and puts both sockets into sb_sockhash;
 *   sb_sk_msg   hands each sendmsg() straight to the peer's receive queue,
 *               or to TCP whenever redirecting could reorder, strand or
 *               pile up bytes;
 *   sb_drain    lists the sockets and their unread bytes, so that unload
 *               removes a socket only when that cannot lose data.
 */
#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "sockbypass.h"

#define AF_INET  2
#define AF_INET6 10

char LICENSE[] SEC("license") = "GPL"; /* bpf_printk is GPL-only */

/* Set by the loader before load: with 0 the verifier drops every trace call. */
const volatile __u32 sb_trace = 0;
/* Trace lines name the current task where the kernel lets the program type
 * ask (sockops: not on 6.1); the loader probes and sets these. */
const volatile __u32 sb_task_sockops = 0;
const volatile __u32 sb_task_sk_msg = 0;
/* Walk the ingress list even where msg_tot_len exists (tests of old kernels). */
const volatile __u32 sb_walk_queue = 0;
/* Possible CPUs, set by the loader (0: assume many): the memory check's share. */
const volatile __u32 sb_nr_cpus = 0;
/* Set by sb_wait_exit when a count went below zero: sb_sleepers is not exact. */
__u32 sb_sleepers_missed = 0;

static __always_inline bool v4mapped(const __u32 a[4])
{
	return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0xffff);
}

/*
 * One trace line per socket event: what, the tuple (client -> server, or
 * local -> remote for sk_msg), and the task that was running. For sockops
 * events that is the task whose packet completed the handshake (on loopback
 * often the client, also for a server's event); for sk_msg it is the sender.
 */
/* pid and comm of the current task, where the program type may ask (allowed) */
#define current_task(allowed, pid, comm)                                            \
	do {                                                                        \
		if (allowed) {                                                      \
			pid = bpf_get_current_pid_tgid() >> 32;                     \
			bpf_get_current_comm(comm, sizeof(comm));                   \
		}                                                                   \
	} while (0)

#define trace_tuple(what, t)                                                        \
	do {                                                                        \
		if (sb_trace) {                                                     \
			char comm[16] = "-";                                        \
			__u32 pid = 0;                                              \
                                                                                    \
			current_task(sb_task_sockops, pid, comm);                   \
			if (v4mapped((t)->client_addr))                             \
				bpf_printk("sockbypass: " what " %pI4:%u -> %pI4:%u pid %u %s", \
					   &(t)->client_addr[3], (t)->client_port,  \
					   &(t)->server_addr[3], (t)->server_port,  \
					   pid, comm);                              \
			else                                                        \
				bpf_printk("sockbypass: " what " [%pI6]:%u -> [%pI6]:%u pid %u %s", \
					   (t)->client_addr, (t)->client_port,      \
					   (t)->server_addr, (t)->server_port,      \
					   pid, comm);                              \
		}                                                                   \
	} while (0)

/* Established sockets of paired connections, keyed by socket cookie. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, SB_SOCKHASH_MAX);
	__type(key, __u64);
	__type(value, __u64);
} sb_sockhash SEC(".maps");

/*
 * Our sockets by cookie: what the programs keep per socket, its peer among
 * it. A preallocated hash, not socket-local storage: creating that is a
 * kmalloc and a memory cgroup charge per socket, and the peer needed a map
 * of its own. Cookies are never reused, so an entry a close did not remove
 * (a socket closed while nothing was attached) can never be taken for
 * another socket's.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SB_SOCKHASH_MAX);
	__type(key, __u64);
	__type(value, struct sb_sock_state);
} sb_socks SEC(".maps");

/*
 * Tuples of SYNs our listeners answered, with how many are not yet claimed
 * by their client: "the server of this client is ours". A count, not a flag,
 * so that identical tuples in two namespaces at once are both found.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SB_PENDING_MAX);
	__type(key, struct sb_tuple);
	__type(value, __u64);
} sb_hints SEC(".maps");

/* Clients waiting for their server: sequence numbers -> client (cookie 0 = conflict). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SB_PENDING_MAX);
	__type(key, struct sb_pending_key);
	__type(value, struct sb_peer);
} sb_pending SEC(".maps");

/*
 * Socket (kernel address) -> tasks asleep in its sk_wait_data(), the wait of
 * tcp_recvmsg(): a reader there waits for TCP bytes only. Entries exist for
 * our sockets only (made at insert, gone at close).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SB_SOCKHASH_MAX);
	__type(key, __u64);
	__type(value, __s64);
} sb_sleepers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sb_config);
} sb_config SEC(".maps");

/* The port scope; all zero (every port) until the loader writes it. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sb_scope);
} sb_scope SEC(".maps");

/*
 * What this CPU's last full look at memory found: for which memory cgroup,
 * when, and how many bytes this CPU may still redirect to sockets charged
 * there before it looks again. A look costs about 20 reads of kernel memory,
 * most of a message's cost; each CPU may use 1/(2 x CPUs) of the room a look
 * found, so all CPUs together use at most half of it between looks, and a
 * look is redone each scheduler tick (1-4 ms, HZ): what TCP and others take
 * meanwhile comes out of the other half and the headroom. A tick, not a
 * clock read: bpf_ktime_get_ns() was a quarter of a message's cost.
 */
struct sb_mem_look {
	__u64 memcg;
	__u64 at_tick; /* jiffies */
	__u64 budget;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sb_mem_look);
} sb_mem_looks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SB_C_NR);
	__type(key, __u32);
	__type(value, __u64);
} sb_counters SEC(".maps");

static __always_inline void count(__u32 idx, __u64 n)
{
	__u64 *c = bpf_map_lookup_elem(&sb_counters, &idx);

	if (c)
		*c += n;
}

/*
 * Kernel-internal fields, read through BTF (CO-RE) with bpf_probe_read_kernel:
 * how much a peer has not read yet (redirected bytes show in no UAPI field),
 * how far it read its TCP stream, and whether a reader may be waiting inside
 * tcp_recvmsg().
 */
struct socket_lock___sb {
	int owned;
} __attribute__((preserve_access_index));

struct list_head___sb {
	void *next;
} __attribute__((preserve_access_index));

struct wait_queue_head___sb {
	struct list_head___sb head;
} __attribute__((preserve_access_index));

struct socket_wq___sb {
	struct wait_queue_head___sb wait;
} __attribute__((preserve_access_index));

struct wait_queue_entry___sb {
	void *func;
	struct list_head___sb entry;
} __attribute__((preserve_access_index));

struct netns_ipv4___sb {
	int sysctl_tcp_wmem[3];
	int sysctl_tcp_rmem[3];
} __attribute__((preserve_access_index));

struct net___sb {
	struct netns_ipv4___sb ipv4;
} __attribute__((preserve_access_index));

struct proto___sb {
	long *memory_allocated; /* atomic_long_t: pages charged to TCP, host-wide */
	unsigned long *memory_pressure;
	long *sysctl_mem;      /* tcp_mem: min, pressure, max (pages) */
} __attribute__((preserve_access_index));

struct sock_common___sb {
	struct proto___sb *skc_prot;
	struct {
		__s64 counter;
	} skc_cookie; /* atomic64_t */
	struct {
		struct net___sb *net;
	} skc_net; /* possible_net_t */
} __attribute__((preserve_access_index));

struct page_counter___sb {
	struct {
		long counter;
	} usage; /* atomic_long_t */
	unsigned long max;
	struct page_counter___sb *parent;
} __attribute__((preserve_access_index));

struct mem_cgroup___sb {
	struct page_counter___sb memory;
	struct page_counter___sb tcpmem; /* cgroup v1 only */
	bool tcpmem_active;
} __attribute__((preserve_access_index));

struct sock___sb {
	struct sock_common___sb __sk_common;
	void *sk_user_data;
	struct socket_lock___sb sk_lock;
	struct socket_wq___sb *sk_wq;
	int sk_sndbuf;
	int sk_rcvbuf;
	__u8 sk_userlocks; /* a bit field on older kernels: read it with BPF_CORE_READ_BITFIELD_PROBED */
	struct mem_cgroup___sb *sk_memcg;
} __attribute__((preserve_access_index));

struct tcp_sock___sb {
	__u32 copied_seq;
	__u32 write_seq;
} __attribute__((preserve_access_index));

struct sk_msg_sg___sb {
	__u32 size;
} __attribute__((preserve_access_index));

struct sk_msg___sb {
	struct sk_msg_sg___sb sg;
	struct list_head___sb list;
} __attribute__((preserve_access_index));

struct sk_psock___sb {
	__u32 msg_tot_len; /* only on recent kernels */
	struct list_head___sb ingress_msg;
} __attribute__((preserve_access_index));

#define SK_USER_DATA_PTRMASK (~7UL) /* low bits of sk_user_data are flags */
/* Without msg_tot_len, queued messages are walked: SB_WALK_SEND_MAX on the
 * send path (cost), more for unload's drain (any queued byte makes it wait). */
#define WALK_DRAIN_MAX 1024

#define read_kernel(dst, src) bpf_probe_read_kernel(&(dst), sizeof(dst), src)

/* What a task asleep inside a socket call waits with (sk_wait_data,
 * tcp_msg_wait_data, sk_stream_wait_memory); from kallsyms, 0 if hidden. */
extern const void woken_wake_function __ksym __weak;
/* Wait queue entries looked at; a longer queue counts as a sleeper. */
#define WAITERS_MAX 8

static __always_inline struct sk_psock___sb *sk_psock_of(struct sock___sb *sk)
{
	unsigned long ud = 0;

	read_kernel(ud, &sk->sk_user_data);
	return (void *)(ud & SK_USER_DATA_PTRMASK);
}

/*
 * sk's wait queue: its head, and its first entry (the head itself when no
 * one waits). False if sk has no wait queue (no struct socket).
 */
static __always_inline bool wait_queue_of(struct sock___sb *sk, void **head, void **first)
{
	struct socket_wq___sb *wq = NULL;

	*head = NULL;
	*first = NULL;
	read_kernel(wq, &sk->sk_wq);
	if (!wq)
		return false;
	*head = &wq->wait.head;
	read_kernel(*first, &wq->wait.head.next);
	return true;
}

/* Does the kernel count a psock's queued bytes (msg_tot_len), or are they walked? */
static __always_inline bool queue_counted(void)
{
	return !sb_walk_queue && bpf_core_field_exists(struct sk_psock___sb, msg_tot_len);
}

/*
 * Bytes redirected to psock's socket that its owner has not read yet. Recent
 * kernels count them (msg_tot_len, 6.18 and stable backports such as
 * 6.12.117); elsewhere sum the ingress list, without its lock: a racing
 * reader can only make the figure stale, and probe reads of a freed entry
 * fail safely. Stops past "enough"; a list longer than "max" entries counts
 * as enough + 1.
 */
static __always_inline __u64 psock_unread(struct sk_psock___sb *psock, __u64 enough, const int max)
{
	struct sk_msg___sb *msg;
	void *head, *next = NULL;
	__u32 size, queued = 0;
	__u64 sum = 0;
	int i;

	if (!psock)
		return 0;
	if (queue_counted()) {
		read_kernel(queued, &psock->msg_tot_len);
		return queued;
	}
	head = &psock->ingress_msg;
	read_kernel(next, &psock->ingress_msg.next);
	for (i = 0; i < max; i++) {
		if (!next || next == head || sum > enough)
			return sum;
		msg = next - bpf_core_field_offset(struct sk_msg___sb, list);
		size = 0;
		read_kernel(size, &msg->sg.size);
		sum += size ? size : 1;
		next = NULL;
		read_kernel(next, &msg->list.next);
	}
	return next && next != head ? enough + 1 : sum;
}

/* ---- sockops: decide "both ends are ours", pair, insert ---------------- */

static __always_inline void addr_v4mapped(__u32 dst[4], __u32 v4)
{
	dst[0] = 0;
	dst[1] = 0;
	dst[2] = bpf_htonl(0xffff);
	dst[3] = v4;
}

/*
 * The tuple of a socket, seen from the client, as sb_hints keys it: a client
 * looks itself up with client = true; a server (or a listener's request sock)
 * is the other end, client = false.
 */
static __always_inline int sock_tuple(struct bpf_sock_ops *skops, struct sb_tuple *t, bool client)
{
	__u32 *cl = client ? t->client_addr : t->server_addr;
	__u32 *sv = client ? t->server_addr : t->client_addr;
	__u16 lport = skops->local_port;             /* host order */
	__u16 rport = bpf_ntohl(skops->remote_port); /* network order, shifted */

	t->client_port = client ? lport : rport;
	t->server_port = client ? rport : lport;
	if (skops->family == AF_INET) {
		addr_v4mapped(cl, skops->local_ip4);
		addr_v4mapped(sv, skops->remote_ip4);
		return 0;
	}
	if (skops->family == AF_INET6) {
		/* an AF_INET6 socket talking IPv4 already holds v4-mapped addresses */
		cl[0] = skops->local_ip6[0];
		cl[1] = skops->local_ip6[1];
		cl[2] = skops->local_ip6[2];
		cl[3] = skops->local_ip6[3];
		sv[0] = skops->remote_ip6[0];
		sv[1] = skops->remote_ip6[1];
		sv[2] = skops->remote_ip6[2];
		sv[3] = skops->remote_ip6[3];
		return 0;
	}
	return -1;
}

/*
 * Does the port scope keep this connection on TCP? Either end's port counts:
 * the listener's for a client, the client's ephemeral port for a server.
 */
static __always_inline bool out_of_scope(struct bpf_sock_ops *skops)
{
	/* 32-bit, and checked: older verifiers (5.10) lose a u16's bounds */
	__u32 lport = skops->local_port;
	__u32 rport = bpf_ntohl(skops->remote_port);
	struct sb_scope *sc;
	__u32 zero = 0;

	sc = bpf_map_lookup_elem(&sb_scope, &zero);
	if (!sc || (!sc->only_count && !sc->excluded_count))
		return false;
	if (lport >= SB_PORTS || rport >= SB_PORTS)
		return false;
	if (sc->port[lport] == SB_PORT_EXCLUDED || sc->port[rport] == SB_PORT_EXCLUDED)
		return true;
	return sc->only_count && sc->port[lport] != SB_PORT_ONLY &&
	       sc->port[rport] != SB_PORT_ONLY;
}

/*
 * TIMEOUT_INIT runs for the request sock of every SYN a listener in the cgroup
 * answers. Remember the tuple, seen from the client's side. A dual-stack
 * listener's request sock for an IPv4 SYN says AF_INET6 but fills only the
 * IPv4 fields, so an AF_INET6 request records both readings; the wrong one is
 * a harmless LRU entry, and sequence numbers decide the pairing anyway.
 */
static __always_inline void add_hint(struct sb_tuple *t)
{
	__u64 one = 1, *n;

	if (bpf_map_update_elem(&sb_hints, t, &one, BPF_NOEXIST) == 0)
		return;
	n = bpf_map_lookup_elem(&sb_hints, t);
	if (n)
		__sync_fetch_and_add(n, 1);
}

static __always_inline void record_hint(struct bpf_sock_ops *skops)
{
	struct sb_tuple t = {};

	/* the listener's side of the request sock is the server's */
	if (!sock_tuple(skops, &t, false))
		add_hint(&t);
	if (skops->family == AF_INET6 && skops->remote_ip4) {
		addr_v4mapped(t.client_addr, skops->remote_ip4);
		addr_v4mapped(t.server_addr, skops->local_ip4);
		add_hint(&t);
	}
	count(SB_C_HINTS, 1);
}

/* Do sb_wait_enter/exit run, so that sb_sleepers has an entry per socket? */
static __always_inline bool sleepers_counted(void)
{
	struct sb_config *cfg;
	__u32 key = 0;

	cfg = bpf_map_lookup_elem(&sb_config, &key);
	return cfg && cfg->sleepers_counted;
}

/*
 * Put this socket into the maps: its entry in sb_socks (init: its peer or
 * what it published), then the SOCKHASH, which makes sk_msg run on it and
 * lets its peer redirect to it. False if it could not be inserted.
 */
static __always_inline bool insert_self(struct bpf_sock_ops *skops, __u64 cookie,
					struct sb_sock_state *init)
{
	struct bpf_sock *sk = skops->sk;
	__u64 addr = (__u64)sk;
	__s64 zero = 0;
	bool counted;

	if (!sk)
		return false;
	init->tcp_seq = skops->snd_nxt; /* == write_seq: nothing queued at ESTABLISHED */
	if (bpf_map_update_elem(&sb_socks, &cookie, init, BPF_NOEXIST))
		return false;
	/* a count to keep only where sb_wait_enter/exit run; nobody can sleep
	 * in recv() before ESTABLISHED (accept() returns later) */
	counted = sleepers_counted();
	if (counted && bpf_map_update_elem(&sb_sleepers, &addr, &zero, BPF_ANY))
		goto forget;
	if (bpf_sock_hash_update(skops, &sb_sockhash, &cookie, BPF_NOEXIST)) {
		if (counted)
			bpf_map_delete_elem(&sb_sleepers, &addr);
		goto forget;
	}
	/* STATE_CB lets us forget the socket when it closes */
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
	count(SB_C_INSERTED, 1);
	return true;
forget:
	bpf_map_delete_elem(&sb_socks, &cookie);
	return false;
}

static __always_inline void client_established(struct bpf_sock_ops *skops)
{
	struct sb_peer me = {}, poison = {};
	struct sb_sock_state init = {};
	struct sb_pending_key pk = {};
	struct sb_tuple t = {};
	__u64 *hints = NULL;

	if (sock_tuple(skops, &t, true))
		return;
	/* before the hint: an excluded listener left none */
	if (out_of_scope(skops)) {
		count(SB_C_SKIP_EXCLUDED, 1);
		trace_tuple("skip (port excluded)", &t);
		return;
	}
	hints = bpf_map_lookup_elem(&sb_hints, &t);
	if (!hints || !*hints) {
		count(SB_C_SKIP_NOT_LOCAL, 1);
		trace_tuple("skip (server not ours)", &t);
		return;
	}
	__sync_fetch_and_add(hints, -1); /* this SYN is accounted for */
	/* TCP Fast Open data already crossed the stack: leave it to TCP */
	if (skops->data_segs_out || skops->bytes_received) {
		count(SB_C_SKIP_PAYLOAD, 1);
		trace_tuple("skip (payload before ESTABLISHED)", &t);
		return;
	}
	pk.client_next = skops->snd_nxt;
	pk.server_next = skops->rcv_nxt;
	pk.client_port = t.client_port;
	pk.server_port = t.server_port;

	me.cookie = bpf_get_socket_cookie(skops);
	me.sk = (__u64)skops->sk;
	if (bpf_map_update_elem(&sb_pending, &pk, &me, BPF_NOEXIST)) {
		/* same key twice (identical tuples in two netns at once): pair neither */
		bpf_map_update_elem(&sb_pending, &pk, &poison, BPF_EXIST);
		count(SB_C_SKIP_CONFLICT, 1);
		trace_tuple("skip (same key twice)", &t);
		return;
	}
	init.pending = pk;
	if (!insert_self(skops, me.cookie, &init)) {
		bpf_map_delete_elem(&sb_pending, &pk);
		count(SB_C_INSERT_FAILED, 1);
		trace_tuple("skip (map full)", &t);
		return;
	}
	trace_tuple("inserted client", &t);
}

static __always_inline void server_established(struct bpf_sock_ops *skops)
{
	struct sb_sock_state init = {}, *cst;
	struct sb_pending_key pk = {};
	struct sb_peer client, *found;
	struct sb_tuple t = {};
	__u64 cookie;

	/* counted at the client, which saw the same two ports */
	if (out_of_scope(skops))
		return;
	if (sb_trace)
		sock_tuple(skops, &t, false);
	pk.client_next = skops->rcv_nxt;
	pk.server_next = skops->snd_nxt;
	pk.client_port = bpf_ntohl(skops->remote_port);
	pk.server_port = skops->local_port;

	found = bpf_map_lookup_elem(&sb_pending, &pk);
	if (!found) {
		count(SB_C_SKIP_UNPAIRED, 1);
		trace_tuple("skip (client not ours)", &t);
		return;
	}
	client = *found;
	/* deleting is the claim: of two racing servers only one succeeds */
	if (bpf_map_delete_elem(&sb_pending, &pk) || !client.cookie) {
		count(SB_C_SKIP_CONFLICT, 1);
		trace_tuple("skip (same key twice)", &t);
		return;
	}
	if (skops->bytes_received || skops->data_segs_out) {
		count(SB_C_SKIP_PAYLOAD, 1);
		trace_tuple("skip (payload before ESTABLISHED)", &t);
		return;
	}
	cookie = bpf_get_socket_cookie(skops);
	init.peer = client;
	if (!insert_self(skops, cookie, &init)) {
		count(SB_C_INSERT_FAILED, 1);
		trace_tuple("skip (map full)", &t);
		return;
	}
	/* the client may send as soon as it knows its peer: tell it last,
	 * address before cookie (sk_msg reads the cookie first) */
	cst = bpf_map_lookup_elem(&sb_socks, &client.cookie);
	if (!cst) {
		count(SB_C_SKIP_UNPAIRED, 1); /* the client closed meanwhile */
		trace_tuple("skip (client gone)", &t);
		return;
	}
	cst->peer.sk = (__u64)skops->sk;
	barrier();
	cst->peer.cookie = cookie;
	count(SB_C_PAIRED, 1);
	trace_tuple("paired", &t);
}

static __always_inline void socket_closed(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	__u64 addr = (__u64)sk, cookie;
	struct sb_sock_state *st;

	if (!sk)
		return;
	if (sleepers_counted())
		bpf_map_delete_elem(&sb_sleepers, &addr);
	cookie = bpf_get_socket_cookie(skops);
	st = bpf_map_lookup_elem(&sb_socks, &cookie);
	if (!st)
		return;
	/* a client no server claimed: take back what it published */
	if (!st->peer.cookie && st->pending.client_port)
		bpf_map_delete_elem(&sb_pending, &st->pending);
	bpf_map_delete_elem(&sb_socks, &cookie);
}

SEC("sockops")
int sb_sockops(struct bpf_sock_ops *skops)
{
	switch (skops->op) {
	case BPF_SOCK_OPS_TIMEOUT_INIT:
		/* skops->reply stays 0: the kernel keeps its own SYN timeout */
		if (!skops->is_fullsock && !out_of_scope(skops))
			record_hint(skops);
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		client_established(skops);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		server_established(skops);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] == BPF_TCP_CLOSE)
			socket_closed(skops);
		break;
	}
	return 1;
}

/* ---- sk_msg: redirect to the peer, or pass to TCP ----------------------- */

/* Send this message through TCP. The peer reads redirected bytes before TCP
 * bytes, so going from redirect to TCP keeps order at any time. */
static __always_inline int pass(__u32 reason, __u32 size)
{
	count(reason, 1);
	count(SB_C_PASSED_MSGS, 1);
	count(SB_C_PASSED_BYTES, size);
	return SK_PASS;
}

#define SOCK_SNDBUF_LOCK 1
#define SOCK_RCVBUF_LOCK 2
#define PAGE_SHIFT___sb 12

/*
 * The most TCP would let sk buffer on one side: its send buffer (snd) or
 * receive buffer, as far as autotuning may grow it (tcp_wmem/tcp_rmem[2]
 * of its namespace), or what SO_SNDBUF/SO_RCVBUF fixed.
 */
static __always_inline __u64 tcp_buffer_ceiling(struct sock___sb *sk, bool snd)
{
	struct net___sb *net = NULL;
	int now = 0, max = 0;
	__u8 locks;

	if (snd)
		read_kernel(now, &sk->sk_sndbuf);
	else
		read_kernel(now, &sk->sk_rcvbuf);
	locks = BPF_CORE_READ_BITFIELD_PROBED(sk, sk_userlocks);
	if (locks & (snd ? SOCK_SNDBUF_LOCK : SOCK_RCVBUF_LOCK))
		return now > 0 ? now : 0;
	read_kernel(net, &sk->__sk_common.skc_net.net);
	if (net && snd)
		read_kernel(max, &net->ipv4.sysctl_tcp_wmem[2]);
	else if (net)
		read_kernel(max, &net->ipv4.sysctl_tcp_rmem[2]);
	if (max < now)
		max = now;
	return max > 0 ? max : 0;
}

/*
 * How many unread redirected bytes the peer may hold, given what plain TCP
 * would let this connection hold: this socket's send buffer S (as far as it
 * may grow) and the peer's receive buffer. A peer that does not read gets a
 * quarter of S: with the S that TCP then takes after the fallback, 1.25
 * times what TCP alone holds for a reader that does not read (S and the
 * little its window offered). A peer that reads gets half of S plus the
 * 1.5 times the ceiling R of its receive buffer: should it stop, it holds
 * at most 1.5 times what TCP lets an autotuned reader hold (S + R).
 */
static __always_inline __u64 auto_queue_limit(struct sock___sb *me, struct sock___sb *peer,
					      bool reading)
{
	__u64 snd = tcp_buffer_ceiling(me, true), lim;

	lim = reading ? snd / 2 + tcp_buffer_ceiling(peer, false) * 3 / 2 : snd / 4;
	return lim > SB_QUEUE_FLOOR ? lim : SB_QUEUE_FLOOR;
}

/*
 * Is anyone waiting on sk: a reader asleep in recv(), or in poll, select or
 * epoll on it? Such a peer is about to read, even before it took a byte.
 */
static __always_inline bool has_waiter(struct sock___sb *sk)
{
	void *head, *next;

	return wait_queue_of(sk, &head, &next) && next && next != head;
}

/*
 * Would one more message put the peer's unread queue over its bound? With
 * --queue-limit the bound is that; otherwise it follows TCP's buffers and
 * whether the peer reads: it took a message within the last SB_STALLED_NS,
 * or it waits for data right now.
 */
static __always_inline bool peer_backlogged(struct sb_sock_state *st, struct sock___sb *me,
					    struct sock___sb *peer, __u64 fixed)
{
	__u64 unread, head = 0, limit, empty_list, bound = fixed ? fixed : SB_QUEUE_FLOOR, now;
	struct sk_psock___sb *psock;

	/* under the bound even if the peer read nothing since the last look
	 * (a walked queue is also bounded in messages: look each time) */
	if (queue_counted() && st->unread_mark <= bound)
		return false;
	psock = sk_psock_of(peer);
	if (fixed) {
		unread = psock_unread(psock, fixed, SB_WALK_SEND_MAX);
		st->unread_mark = unread;
		return unread > fixed;
	}
	if (!psock)
		return false;
	now = bpf_ktime_get_ns();
	/* an empty list's first entry is the list head itself */
	empty_list = (__u64)&psock->ingress_msg;
	read_kernel(head, &psock->ingress_msg.next);
	/* the reader reads: it took everything we redirected, or the message
	 * that was first at the last look (not: nothing was sent yet) */
	if ((head == empty_list && st->redirected) ||
	    (head != st->peer_head && st->peer_head && st->peer_head != empty_list))
		st->peer_read_ns = now;
	st->peer_head = head;
	unread = psock_unread(psock, SB_QUEUE_FLOOR, SB_WALK_SEND_MAX);
	st->unread_mark = unread;
	if (unread <= SB_QUEUE_FLOOR)
		return false;
	limit = auto_queue_limit(me, peer, (st->peer_read_ns && now - st->peer_read_ns < SB_STALLED_NS) ||
						  has_waiter(peer));
	/* a walked queue stopped counting at the floor: count up to the bound */
	if (!queue_counted())
		unread = psock_unread(psock, limit, SB_WALK_SEND_MAX);
	return unread > limit;
}

/*
 * Pages a page counter, and its first ancestors, can still take before the
 * line: a headroom of 1/16 of the limit, at least 1 MiB (256 pages). Below
 * zero: too full.
 */
static __always_inline long counter_room(struct page_counter___sb *c)
{
	struct page_counter___sb *parent;
	long usage, room = __LONG_MAX__, r;
	unsigned long max;
	int i;

	for (i = 0; i < 4 && c; i++) {
		usage = 0;
		max = 0;
		read_kernel(usage, &c->usage.counter);
		read_kernel(max, &c->max);
		if (usage > 0) {
			r = (long)max - usage - 256 - (long)(max >> 4);
			if (r < room)
				room = r;
		}
		parent = NULL;
		read_kernel(parent, &c->parent);
		c = parent;
	}
	return room;
}

/*
 * Pages the peer can still be charged before the kernel could refuse. It
 * charges redirected bytes to the receiver (its receive memory since 6.13,
 * its send memory before) against tcp_mem and its memory cgroup, and a
 * refusal reaches the writer as ENOMEM or a short write, where TCP would
 * wait for memory. The line: tcp_mem's pressure threshold (or pressure
 * itself), and near the cgroup's limit (v1's kmem.tcp where it is on).
 */
static __always_inline long peer_memory_room(struct sock___sb *peer, struct mem_cgroup___sb *memcg)
{
	struct proto___sb *prot = NULL;
	long *allocated = NULL, *limits = NULL, pages = 0, pressure_at = 0;
	long room = __LONG_MAX__, r;
	unsigned long *pressure = NULL, under = 0;
	bool v1tcp = false;

	read_kernel(prot, &peer->__sk_common.skc_prot);
	if (prot) {
		read_kernel(pressure, &prot->memory_pressure);
		if (pressure)
			read_kernel(under, pressure);
		if (under)
			return -1;
		read_kernel(allocated, &prot->memory_allocated);
		read_kernel(limits, &prot->sysctl_mem);
		if (allocated && limits) {
			read_kernel(pages, allocated);
			read_kernel(pressure_at, &limits[1]);
			if (pressure_at > 0)
				room = pressure_at - pages;
		}
	}
	if (!memcg)
		return room;
	if (bpf_core_field_exists(memcg->tcpmem_active))
		read_kernel(v1tcp, &memcg->tcpmem_active);
	if (v1tcp && bpf_core_field_exists(memcg->tcpmem))
		r = counter_room(&memcg->tcpmem);
	else
		r = counter_room(&memcg->memory);
	return r < room ? r : room;
}

/* Could the kernel fail to charge the peer for size more bytes? Then TCP. */
static __always_inline bool peer_memory_tight(struct sb_sock_state *st, struct sock___sb *peer,
					      __u32 size)
{
	__u64 cpus = sb_nr_cpus ? sb_nr_cpus : 256, tick = bpf_jiffies64();
	struct mem_cgroup___sb *memcg = NULL;
	struct sb_mem_look *look;
	__u32 zero = 0;
	long room;

	if (!st->memcg_known) {
		if (bpf_core_field_exists(peer->sk_memcg))
			read_kernel(memcg, &peer->sk_memcg);
		st->peer_memcg = (__u64)memcg;
		st->memcg_known = 1;
	}
	memcg = (void *)st->peer_memcg;
	look = bpf_map_lookup_elem(&sb_mem_looks, &zero);
	if (look && look->memcg == (__u64)memcg && look->at_tick == tick &&
	    look->budget >= size) {
		look->budget -= size;
		return false;
	}
	room = peer_memory_room(peer, memcg) - (long)(size >> PAGE_SHIFT___sb) - 1;
	if (room <= 0) {
		if (look)
			look->at_tick = 0; /* look again next time */
		return true;
	}
	if (look) {
		look->memcg = (__u64)memcg;
		look->at_tick = tick;
		if (room > SB_MEM_LOOK_PAGES_MAX)
			room = SB_MEM_LOOK_PAGES_MAX;
		look->budget = ((__u64)room << PAGE_SHIFT___sb) / (2 * cpus);
	}
	return false;
}

/*
 * Is a task asleep inside a call on sk? Its wait queue also holds the
 * entries of epoll, poll and select, whose tasks are not inside recvmsg():
 * they call it afresh when woken. Only woken_wake_function entries are
 * sleepers; if that address is unknown, every entry counts as one.
 */
static __always_inline bool has_sleeper(struct sock___sb *sk)
{
	struct wait_queue_entry___sb *w;
	void *head, *next, *func;
	int i;

	if (!wait_queue_of(sk, &head, &next))
		return true;
	for (i = 0; i < WAITERS_MAX; i++) {
		if (next == head)
			return false;
		if (!next || !&woken_wake_function)
			return true;
		w = next - bpf_core_field_offset(struct wait_queue_entry___sb, entry);
		func = NULL;
		read_kernel(func, &w->func);
		if (func == &woken_wake_function)
			return true;
		next = NULL;
		read_kernel(next, &w->entry.next);
	}
	return next != head;
}

/*
 * After TCP carried bytes of this direction, redirecting again is safe once
 * it can neither overtake nor strand a byte: the peer has read every byte
 * this socket gave TCP (its TCP queue is empty, nothing in flight), and no
 * reader sits in tcp_recvmsg(), which waits for TCP data only. Such a reader
 * holds the socket lock, or sleeps on the socket's wait queue, so "lock free
 * and no sleeper" rules it out; the next reader takes the sockmap path, which
 * reads redirected bytes first.
 */
static __always_inline bool tcp_drained(struct tcp_sock___sb *me, struct sock___sb *peer,
					bool counted)
{
	struct tcp_sock___sb *ptp = (void *)peer;
	__u64 addr = (__u64)peer;
	__u32 copied = 0;
	__s64 *sleepers;
	int owned = 1;

	read_kernel(copied, &ptp->copied_seq);
	if (copied != me->write_seq)
		return false;
	read_kernel(owned, &peer->sk_lock.owned);
	if (owned)
		return false;
	/* exact where sb_wait_enter/exit run: a reader asleep in the
	 * sockmap's own wait (blocking recv() on a caught-up socket) is fine */
	sleepers = counted && !sb_sleepers_missed ? bpf_map_lookup_elem(&sb_sleepers, &addr) : NULL;
	if (sleepers)
		return *sleepers == 0;
	return !has_sleeper(peer);
}

/*
 * A trace line for an sk_msg event: the sender's ports and task. (The
 * addresses were in the connection's "paired" line; reading them here makes
 * clang derive ctx pointers the verifier refuses.)
 */
#define trace_msg(what, msg)                                                        \
	do {                                                                        \
		if (sb_trace) {                                                     \
			char comm[16] = "-";                                        \
			__u32 pid = 0;                                              \
                                                                                    \
			current_task(sb_task_sk_msg, pid, comm);                    \
			bpf_printk("sockbypass: " what " port %u -> %u pid %u %s",  \
				   (msg)->local_port, bpf_ntohl((msg)->remote_port), \
				   pid, comm);                                      \
		}                                                                   \
	} while (0)

/* Pass to TCP; say so in the trace when this ends a stretch of redirects. */
#define to_tcp(reason, why)                                                         \
	({                                                                          \
		if (me->write_seq == st->tcp_seq)                                   \
			trace_msg("to TCP (" why ")", msg);                         \
		pass(reason, size);                                                 \
	})

SEC("sk_msg")
int sb_sk_msg(struct sk_msg_md *msg)
{
	__u32 zero = 0, size = msg->size;
	__u64 cookie, peer_cookie;
	struct tcp_sock___sb *me;
	struct sb_sock_state *st;
	struct sb_config *cfg;
	struct sock___sb *psk;

	if (!msg->sk)
		return SK_PASS;
	me = (void *)bpf_skc_to_tcp_sock(msg->sk);
	if (!me)
		return pass(SB_C_FALLBACK_NO_STATE, size);
	/* the cookie sockops gave it (bpf_get_socket_cookie() set it then) */
	cookie = ((struct sock___sb *)me)->__sk_common.skc_cookie.counter;
	st = bpf_map_lookup_elem(&sb_socks, &cookie);
	if (!st)
		return pass(SB_C_FALLBACK_NO_STATE, size);
	cfg = bpf_map_lookup_elem(&sb_config, &zero);
	if (!cfg || !cfg->enabled)
		return to_tcp(SB_C_FALLBACK_DISABLED, "bypass off");

	peer_cookie = st->peer.cookie;
	if (!peer_cookie)
		return to_tcp(SB_C_FALLBACK_UNPAIRED, "no peer");
	psk = (void *)st->peer.sk;
	/* TCP carried bytes since we last looked (a fallback, or a write that
	 * went to TCP outside sk_msg, as a TCP Fast Open connect can) */
	if (me->write_seq != st->tcp_seq) {
		if (!tcp_drained(me, psk, cfg->sleepers_counted))
			return pass(SB_C_FALLBACK_TCP_BUSY, size);
		/* sk_msg runs under the sender's socket lock: plain stores suffice */
		st->tcp_seq = me->write_seq;
		count(SB_C_RESUMED, 1);
		trace_msg("back to bypass", msg);
	}
	if (peer_backlogged(st, (void *)me, psk, cfg->queue_limit))
		return to_tcp(SB_C_FALLBACK_BACKLOG, "peer's queue full");
	if (peer_memory_tight(st, psk, size))
		return to_tcp(SB_C_FALLBACK_MEMORY, "memory tight");
	if (bpf_msg_redirect_hash(msg, &sb_sockhash, &peer_cookie, BPF_F_INGRESS) != SK_PASS)
		return to_tcp(SB_C_FALLBACK_REDIRECT, "redirect refused");
	st->redirected = 1;
	st->unread_mark += size;
	count(SB_C_REDIRECTED_MSGS, 1);
	count(SB_C_REDIRECTED_BYTES, size);
	return SK_PASS;
}

/* ---- sb_wait_enter/exit: who sleeps in tcp_recvmsg() ------------------- */

/*
 * sk_wait_data() is called and returns with the socket lock held and drops
 * it only while asleep, so whenever the lock is free, the count is exactly
 * the tasks asleep in it. Runs for every socket; only ours have an entry.
 */
static __always_inline void count_sleeper(__u64 sk, __s64 d)
{
	__s64 *n = bpf_map_lookup_elem(&sb_sleepers, &sk);

	if (!n)
		return;
	__sync_fetch_and_add(n, d);
	/* below zero: an entry was not counted (the kernel skips a tracing
	 * program that is already running on this CPU, as when it was
	 * preempted there); trust no count from now on */
	if (*n < 0)
		sb_sleepers_missed = 1;
}

SEC("fentry/sk_wait_data")
int BPF_PROG(sb_wait_enter, void *sk)
{
	count_sleeper((__u64)sk, 1);
	return 0;
}

SEC("fexit/sk_wait_data")
int BPF_PROG(sb_wait_exit, void *sk)
{
	count_sleeper((__u64)sk, -1);
	return 0;
}

/* ---- sb_drain: what unload needs to know ------------------------------- */

/*
 * Run by unload and status once per socket in sb_sockhash (a test run, its
 * data the socket's cookie): how many redirected bytes wait unread in its
 * queue, SB_DRAIN_GONE if the socket left the map. A test run rather than
 * the sockmap iterator: some kernels refuse iterators over map elements
 * (EPERM, seen on 6.18 with lockdown) and would refuse the whole load.
 */
SEC("tc")
int sb_drain(struct __sk_buff *skb)
{
	struct bpf_sock *sk;
	struct tcp_sock *tp;
	__u64 cookie, queued = 0;

	if (bpf_skb_load_bytes(skb, 0, &cookie, sizeof(cookie)))
		return SB_DRAIN_GONE;
	sk = bpf_map_lookup_elem(&sb_sockhash, &cookie);
	if (!sk)
		return SB_DRAIN_GONE;
	tp = bpf_skc_to_tcp_sock(sk);
	if (tp)
		queued = psock_unread(sk_psock_of((void *)tp), ~0U - 1, WALK_DRAIN_MAX);
	bpf_sk_release(sk);
	return queued < SB_DRAIN_GONE ? queued : SB_DRAIN_GONE - 1;
}
