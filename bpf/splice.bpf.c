// SPDX-License-Identifier: GPL-2.0
/*
 * sockbypass splice: a proxy's two sockets of one connection, spliced in the
 * kernel. sbs_verdict runs for every skb a registered socket receives and
 * hands it to the other socket's egress queue, or leaves it on the source
 * socket, where the proxy (libsockbypass-splice) copies it: never a drop of
 * a byte. A destination that does not drain makes the verdict leave the
 * source's bytes where they are: its TCP window closes.
 */
#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "splice.h"

char LICENSE[] SEC("license") = "GPL";

/* The registered sockets, keyed by socket cookie. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, SBS_SOCKHASH_MAX);
	__type(key, __u64);
	__type(value, __u64);
} sbs_sockhash SEC(".maps");

/* source cookie -> its direction: where to, and what went there. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SBS_SOCKHASH_MAX);
	__type(key, __u64);
	__type(value, struct sbs_dir);
} sbs_dirs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SBS_SOCKHASH_MAX);
	__type(key, __u64);
	__type(value, struct sbs_ctl);
} sbs_ctl SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SBS_C_NR);
	__type(key, __u32);
	__type(value, __u64);
} sbs_counters SEC(".maps");

static __always_inline void count(__u32 idx, __u64 n)
{
	__u64 *c = bpf_map_lookup_elem(&sbs_counters, &idx);

	if (c)
		*c += n;
}

/* What the verdict reads of the destination's TCP (CO-RE: any layout). */
struct tcp_sock___sbs {
	__u64 bytes_acked;
	__u32 write_seq;
	__u32 snd_una;
} __attribute__((preserve_access_index));

/*
 * Bytes sent on to the destination that its TCP has not taken yet: what
 * went there (the verdict's and the library's) less what its TCP ever took
 * since registration (acknowledged, or queued in it). Meaningful while the
 * library holds nothing (flushed), the only time it is asked.
 */
static __always_inline __u64 backlog(struct sbs_dir *d, struct sbs_ctl *ctl)
{
	struct bpf_sock *sk = bpf_map_lookup_elem(&sbs_sockhash, &d->peer);
	struct tcp_sock___sbs *tp;
	__u64 taken = 0, sent;

	if (!sk)
		return 0;
	tp = (void *)bpf_skc_to_tcp_sock(sk);
	if (tp)
		taken = tp->bytes_acked + (__u32)(tp->write_seq - tp->snd_una);
	bpf_sk_release(sk);
	sent = d->redirected_bytes + ctl->consumed;
	taken -= ctl->dst_base;
	return sent > taken ? sent - taken : 0;
}

/*
 * Leave the skb on its own socket (SK_PASS: its receive queue, charged to
 * its buffer, so TCP's window closes as for a proxy that stopped reading),
 * and every later one too until the library copied them: a redirected skb
 * must never overtake one the library still has to copy.
 */
static __always_inline int leave(struct sbs_dir *d, __u32 len, __u32 why)
{
	count(why, 1);
	if (d) {
		d->passing = 1;
		__sync_fetch_and_add(&d->passed_bytes, len);
	}
	return SK_PASS;
}

SEC("sk_skb/stream_verdict")
int sbs_verdict(struct __sk_buff *skb)
{
	__u64 cookie = bpf_get_socket_cookie(skb);
	__u32 len = skb->len;
	struct sbs_ctl *ctl;
	struct sbs_dir *d;

	/*
	 * A FIN arrives as an skb without data. TCP has recorded it (the
	 * library sees it as EPOLLRDHUP); sending it on would make the kernel's
	 * zero-byte send an error (EPIPE) that stops the destination for good.
	 */
	if (!len) {
		count(SBS_C_FIN, 1);
		return SK_DROP;
	}
	d = bpf_map_lookup_elem(&sbs_dirs, &cookie);
	ctl = bpf_map_lookup_elem(&sbs_ctl, &cookie);
	if (!d || !ctl)
		return leave(NULL, len, SBS_C_PASS_UNREGISTERED);
	/* the proxy reads this socket itself now: behind what was left before */
	if (ctl->detached)
		return leave(d, len, SBS_C_PASS_DETACHED);
	if (d->passing) {
		/* resume only when the library read every byte left here
		 * (none in the kernel's queues, none in transit to them) and
		 * holds none: then nothing this skb could overtake exists */
		if (!ctl->flushed || ctl->consumed != d->passed_bytes)
			return leave(d, len, SBS_C_PASS_HELD);
		if (backlog(d, ctl) > SBS_BACKLOG_BYTES / 2)
			return leave(d, len, SBS_C_PASS_HELD);
		d->passing = 0;
		count(SBS_C_RESUMED, 1);
	} else if (backlog(d, ctl) > SBS_BACKLOG_BYTES) {
		return leave(d, len, SBS_C_PASS_BACKLOG);
	}
	/* SK_PASS here means "redirect it": the kernel's own verdict is internal */
	if (bpf_sk_redirect_hash(skb, &sbs_sockhash, &d->peer, 0) != SK_PASS)
		return leave(d, len, SBS_C_PASS_REFUSED);
	__sync_fetch_and_add(&d->redirected_bytes, len);
	__sync_fetch_and_add(&d->redirected_msgs, 1);
	count(SBS_C_REDIRECTED_MSGS, 1);
	count(SBS_C_REDIRECTED_BYTES, len);
	return SK_PASS;
}
