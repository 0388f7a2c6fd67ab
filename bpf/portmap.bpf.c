// SPDX-License-Identifier: GPL-2.0
/*
 * sockbypass portmap: virtual ports. Many instances of a service, each in
 * its own cgroup, bind "their" port 3000 with no network namespace:
 *
 *   bind(3000) in cgroup A       -> pm_bind*: bind port 0 (the kernel picks
 *                                   a free one, R), or R if A already has it
 *   post_bind                    -> pm_post_bind*: learn R, count the socket
 *   connect(127.0.0.1:3000) in A -> pm_connect*: connect to R
 *   getsockname/getpeername      -> pm_*name*: R reads as 3000
 *   close of the last A socket   -> pm_release: R is forgotten
 *
 * Only TCP and only ports `sockbypass portmap add` mapped; anything else
 * returns at the first map lookup. Every program allows the call (returns
 * 1): a mapping can change where a socket binds or connects, never refuse it.
 */
#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "portmap.h"

char LICENSE[] SEC("license") = "GPL";

#define SOCK_STREAM 1 /* <sys/socket.h> is not for -target bpf */

/* (cgroup, virtual port) -> the mapping's real port; written by `portmap add`. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* inert until used: no memory up front */
	__uint(max_entries, PM_PORTS_MAX);
	__type(key, struct pm_key);
	__type(value, struct pm_port);
} pm_ports SEC(".maps");

/* port -> how many cgroups map it: the one lookup an unmapped port pays;
 * [0] (no one maps port 0) counts every mapping, for the name hooks */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u32);
} pm_mapped SEC(".maps");

/* virtual port -> the cgroup whose instance answers clients of no instance. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* inert until used: no memory up front */
	__uint(max_entries, PM_PORTS_MAX);
	__type(key, __u32);
	__type(value, __u64);
} pm_defaults SEC(".maps");

/* (netns, real port) -> its mapping: what getsockname and getpeername translate. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* inert until used: no memory up front */
	__uint(max_entries, PM_PORTS_MAX);
	__type(key, struct pm_real_key);
	__type(value, struct pm_key);
} pm_real SEC(".maps");

/* socket cookie -> a socket bound through a mapping, until it closes. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* inert until used: no memory up front */
	__uint(max_entries, PM_SOCKS_MAX);
	__type(key, __u64);
	__type(value, struct pm_sock);
} pm_socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PM_C_NR);
	__type(key, __u32);
	__type(value, __u64);
} pm_counters SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&pm_counters, &idx);

	if (c)
		*c += 1;
}

static __always_inline bool mapped(__u32 port)
{
	__u32 *n = bpf_map_lookup_elem(&pm_mapped, &port);

	return n && *n;
}

/*
 * The mapping of vport that the calling task belongs to: the deepest of
 * its cgroup and that cgroup's ancestors that maps vport (a child of a
 * mapped cgroup is part of that instance).
 */
static __always_inline struct pm_port *own_mapping(__u32 vport, struct pm_key *key)
{
	struct pm_key k = { .vport = vport };
	struct pm_port *p, *found = NULL;

	/* root first, down to the task's own cgroup: the last match is the deepest */
	for (int level = 0; level <= PM_MAX_LEVEL; level++) {
		k.cgroup = bpf_get_current_ancestor_cgroup_id(level);
		if (!k.cgroup)
			break; /* deeper than the task's own cgroup */
		p = bpf_map_lookup_elem(&pm_ports, &k);
		if (p) {
			found = p;
			*key = k;
		}
	}
	return found;
}

static __always_inline bool tcp_addr(struct bpf_sock_addr *ctx)
{
	return ctx->type == SOCK_STREAM && ctx->protocol == IPPROTO_TCP;
}

/* ---- bind: a free real port, or the one the cgroup's instance has ------ */

static __always_inline void bind_mapped(struct bpf_sock_addr *ctx)
{
	struct pm_sock s = {};
	struct pm_port *p;
	__u32 vport, real;
	__u64 cookie;

	if (!tcp_addr(ctx))
		return; /* UDP binds are left alone (README: Virtual ports) */
	vport = bpf_ntohs(ctx->user_port);
	if (!vport || !mapped(vport))
		return;
	p = own_mapping(vport, &s.key);
	if (!p)
		return; /* a socket of no instance binds the port itself */
	bpf_spin_lock(&p->lock);
	real = p->live ? p->real : 0;
	bpf_spin_unlock(&p->lock);
	cookie = bpf_get_socket_cookie(ctx);
	s.netns = bpf_get_netns_cookie(ctx);
	bpf_map_update_elem(&pm_socks, &cookie, &s, BPF_ANY);
	ctx->user_port = bpf_htons(real);
	count(PM_C_BINDS);
}

SEC("cgroup/bind4")
int pm_bind4(struct bpf_sock_addr *ctx)
{
	bind_mapped(ctx);
	return 1;
}

SEC("cgroup/bind6")
int pm_bind6(struct bpf_sock_addr *ctx)
{
	bind_mapped(ctx);
	return 1;
}

/* After the bind: the port the kernel gave. The first socket's becomes the mapping's. */
static __always_inline void bound(struct bpf_sock *sk)
{
	__u64 cookie = bpf_get_socket_cookie(sk);
	struct pm_sock *s = bpf_map_lookup_elem(&pm_socks, &cookie);
	struct pm_real_key rk = {};
	struct pm_port *p;
	bool first = false, raced = false;

	if (!s || s->counted)
		return;
	p = bpf_map_lookup_elem(&pm_ports, &s->key);
	if (!p)
		return; /* unmapped in between: the socket keeps its port, uncounted */
	s->real = sk->src_port;
	bpf_spin_lock(&p->lock);
	if (!p->live) {
		p->real = sk->src_port;
		first = true;
	}
	if (p->real == sk->src_port) {
		p->live++;
		s->counted = 1;
	} else {
		raced = true;
	}
	bpf_spin_unlock(&p->lock);
	if (raced) {
		count(PM_C_RACED);
		return;
	}
	if (first) {
		rk.netns = s->netns;
		rk.real = sk->src_port;
		bpf_map_update_elem(&pm_real, &rk, &s->key, BPF_ANY);
	}
}

SEC("cgroup/post_bind4")
int pm_post_bind4(struct bpf_sock *sk)
{
	bound(sk);
	return 1;
}

SEC("cgroup/post_bind6")
int pm_post_bind6(struct bpf_sock *sk)
{
	bound(sk);
	return 1;
}

/* A socket bound through a mapping closes; the last one takes the real port with it. */
SEC("cgroup/sock_release")
int pm_release(struct bpf_sock *sk)
{
	__u64 cookie = bpf_get_socket_cookie(sk);
	struct pm_sock *s = bpf_map_lookup_elem(&pm_socks, &cookie);
	struct pm_real_key rk = {};
	struct pm_port *p;
	bool last = false;

	if (!s)
		return 1;
	p = s->counted ? bpf_map_lookup_elem(&pm_ports, &s->key) : NULL;
	if (p) {
		bpf_spin_lock(&p->lock);
		if (p->live && p->real == s->real && --p->live == 0) {
			p->real = 0;
			last = true;
		}
		bpf_spin_unlock(&p->lock);
	}
	if (last) {
		rk.netns = s->netns;
		rk.real = s->real;
		bpf_map_delete_elem(&pm_real, &rk);
	}
	bpf_map_delete_elem(&pm_socks, &cookie);
	return 1;
}

/* ---- connect: a client reaches its own instance ------------------------ */

static __always_inline bool local_ip4(__u32 ip /* network order */)
{
	return ip == 0 || (bpf_ntohl(ip) >> 24) == 127;
}

/* ::, ::1, or a v4-mapped 0.0.0.0 or 127.x */
static __always_inline bool local_ip6(struct bpf_sock_addr *ctx)
{
	__u32 w3 = ctx->user_ip6[3];

	if (ctx->user_ip6[0] || ctx->user_ip6[1])
		return false;
	if (ctx->user_ip6[2] == bpf_htonl(0xffff))
		return local_ip4(w3);
	return !ctx->user_ip6[2] && (w3 == 0 || w3 == bpf_htonl(1));
}

/* The real port a connect to vport goes to: the caller's instance, else the default one. */
static __always_inline __u32 real_for_client(__u32 vport)
{
	struct pm_key key = {};
	struct pm_port *p = own_mapping(vport, &key);
	__u64 *owner;
	__u32 real = 0;

	if (!p) {
		owner = bpf_map_lookup_elem(&pm_defaults, &vport);
		if (!owner)
			return 0; /* no instance's client: as if the port had no listener */
		key.cgroup = *owner;
		key.vport = vport;
		key.pad = 0;
		p = bpf_map_lookup_elem(&pm_ports, &key);
		if (!p)
			return 0;
		count(PM_C_DEFAULTS);
	}
	bpf_spin_lock(&p->lock);
	if (p->live)
		real = p->real;
	bpf_spin_unlock(&p->lock);
	return real;
}

static __always_inline void connect_mapped(struct bpf_sock_addr *ctx, bool local)
{
	__u32 vport, real;

	if (!local)
		return;
	vport = bpf_ntohs(ctx->user_port);
	if (!vport || !mapped(vport))
		return;
	real = real_for_client(vport);
	if (!real)
		return;
	ctx->user_port = bpf_htons(real);
	count(PM_C_CONNECTS);
}

SEC("cgroup/connect4")
int pm_connect4(struct bpf_sock_addr *ctx)
{
	if (tcp_addr(ctx))
		connect_mapped(ctx, local_ip4(ctx->user_ip4));
	return 1;
}

SEC("cgroup/connect6")
int pm_connect6(struct bpf_sock_addr *ctx)
{
	if (tcp_addr(ctx))
		connect_mapped(ctx, local_ip6(ctx));
	return 1;
}

/* ---- getsockname/getpeername: the application sees its virtual port ---- */

static __always_inline void name_mapped(struct bpf_sock_addr *ctx)
{
	struct pm_real_key rk = {};
	struct pm_key *k;

	if (!tcp_addr(ctx) || !mapped(0))
		return; /* no port mapped anywhere: every getsockname pays one lookup */
	rk.netns = bpf_get_netns_cookie(ctx);
	rk.real = bpf_ntohs(ctx->user_port);
	k = bpf_map_lookup_elem(&pm_real, &rk);
	if (!k)
		return;
	ctx->user_port = bpf_htons(k->vport);
	count(PM_C_NAMES);
}

SEC("cgroup/getsockname4")
int pm_getsockname4(struct bpf_sock_addr *ctx)
{
	name_mapped(ctx);
	return 1;
}

SEC("cgroup/getsockname6")
int pm_getsockname6(struct bpf_sock_addr *ctx)
{
	name_mapped(ctx);
	return 1;
}

/* the peer's port is a real one only when the peer is this host */
SEC("cgroup/getpeername4")
int pm_getpeername4(struct bpf_sock_addr *ctx)
{
	if (local_ip4(ctx->user_ip4))
		name_mapped(ctx);
	return 1;
}

SEC("cgroup/getpeername6")
int pm_getpeername6(struct bpf_sock_addr *ctx)
{
	if (local_ip6(ctx))
		name_mapped(ctx);
	return 1;
}
