// SPDX-License-Identifier: GPL-2.0
/*
 * sockbypass splice: a proxy's two sockets of one connection, spliced in the
 * kernel. sbs_verdict runs for every skb a registered socket receives and
 * hands it to the other socket's egress queue, or leaves it on the source
 * socket, where the proxy (libsockbypass-splice) copies it: never a drop of
 * a byte. Not yet bounded: a destination that does not drain lets the
 * kernel queue what its source receives (README: Proxy splice).
 */
#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
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

/*
 * Leave the skb on its own socket (SK_PASS: its receive queue, charged to
 * its buffer, so TCP's window closes as for a proxy that stopped reading),
 * and every later one too: a redirected skb must never overtake one the
 * library copies.
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
	if (!d)
		return leave(NULL, len, SBS_C_PASS_UNREGISTERED);
	if (d->passing)
		return leave(d, len, SBS_C_PASS_HELD);
	/* SK_PASS here means "redirect it": the kernel's own verdict is internal */
	if (bpf_sk_redirect_hash(skb, &sbs_sockhash, &d->peer, 0) != SK_PASS)
		return leave(d, len, SBS_C_PASS_REFUSED);
	__sync_fetch_and_add(&d->redirected_bytes, len);
	__sync_fetch_and_add(&d->redirected_msgs, 1);
	count(SBS_C_REDIRECTED_MSGS, 1);
	count(SBS_C_REDIRECTED_BYTES, len);
	return SK_PASS;
}
