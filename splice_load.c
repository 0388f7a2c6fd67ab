// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The proxy splice's kernel side, loaded with the local bypass: sbs_verdict
 * attached to sbs_sockhash, and the maps libsockbypass-splice registers a
 * proxy's pairs in. Inert until a proxy registers a pair.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "splice.h"
#include "splice.skel.h"
#include "errmsg.h"
#include "pins.h"
#include "splice_load.h"

/* Load, attach to its map and pin; on failure the caller unpins everything. */
int splice_load(void)
{
	struct splice_bpf *skel;
	int err;

	skel = splice_bpf__open();
	if (!skel) {
		err = -errno;
		err_line("open the proxy splice's BPF object: %s", strerror(-err));
		return err;
	}
	bpf_map__set_max_entries(skel->maps.sbs_sockhash, env.map_size);
	bpf_map__set_max_entries(skel->maps.sbs_dirs, env.map_size);
	bpf_map__set_max_entries(skel->maps.sbs_ctl, env.map_size);
	err = splice_bpf__load(skel);
	if (err) /* the verifier's log went to libbpf's print (-v) */
		goto out;
	/* the verdict on the map before any socket enters it, as for sk_msg */
	if (bpf_prog_attach(bpf_program__fd(skel->progs.sbs_verdict),
			    bpf_map__fd(skel->maps.sbs_sockhash), BPF_SK_SKB_STREAM_VERDICT, 0)) {
		err = -errno;
		err_line("attach sbs_verdict to sbs_sockhash: %s", strerror(-err));
		goto out;
	}
	err = pin_maps(skel->obj, sb_splice_maps, sb_splice_maps_nr) ?:
	      pin_prog(skel->progs.sbs_verdict, SBS_PIN_VERDICT);
	if (err) { /* half a splice is none: the local bypass goes on alone */
		static const char *const verdict[] = { SBS_PIN_VERDICT };

		unpin_names(sb_splice_maps, sb_splice_maps_nr);
		unpin_names(verdict, 1);
	}
out:
	splice_bpf__destroy(skel); /* the pins hold what is needed */
	return err;
}

/* Registered pairs (two directions each) and the verdict's counters. */
void splice_gather(struct splice_status *st)
{
	__u64 key, next, *prev = NULL;
	int fd;

	memset(st, 0, sizeof(*st));
	fd = obj_get(SBS_PIN_DIRS);
	if (fd < 0)
		return;
	st->present = true;
	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		st->directions++;
		key = next;
		prev = &key;
	}
	close(fd);
	read_percpu_counters(SBS_PIN_COUNTERS, st->counters, SBS_C_NR);
}

static const char *const splice_counter_names[SBS_C_NR] = { SBS_COUNTER_NAMES };

void splice_print(const struct splice_status *st, enum sb_format format)
{
	unsigned long long pairs = st->directions / 2;
	int i;

	switch (format) {
	case FORMAT_TEXT:
		printf("proxy_pairs: %llu\n", pairs);
		for (i = 0; i < SBS_C_NR; i++)
			printf("proxy_%s: %llu\n", splice_counter_names[i],
			       (unsigned long long)st->counters[i]);
		break;
	case FORMAT_JSON:
		printf("\"proxy\":{\"pairs\":%llu,\"counters\":{", pairs);
		for (i = 0; i < SBS_C_NR; i++)
			printf("%s\"%s\":%llu", i ? "," : "", splice_counter_names[i],
			       (unsigned long long)st->counters[i]);
		printf("}}");
		break;
	case FORMAT_PROMETHEUS:
		printf("# HELP sockbypass_proxy_pairs Proxy connections spliced in the kernel now\n"
		       "# TYPE sockbypass_proxy_pairs gauge\nsockbypass_proxy_pairs %llu\n", pairs);
		printf("# HELP sockbypass_proxy_redirected_bytes_total Bytes a proxy's socket received "
		       "and the kernel sent on\n# TYPE sockbypass_proxy_redirected_bytes_total counter\n"
		       "sockbypass_proxy_redirected_bytes_total %llu\n",
		       (unsigned long long)st->counters[SBS_C_REDIRECTED_BYTES]);
		printf("# HELP sockbypass_proxy_redirected_messages_total Skbs the kernel sent on\n"
		       "# TYPE sockbypass_proxy_redirected_messages_total counter\n"
		       "sockbypass_proxy_redirected_messages_total %llu\n",
		       (unsigned long long)st->counters[SBS_C_REDIRECTED_MSGS]);
		printf("# HELP sockbypass_proxy_fins_total FINs of spliced sockets (zero-length skbs)\n"
		       "# TYPE sockbypass_proxy_fins_total counter\nsockbypass_proxy_fins_total %llu\n",
		       (unsigned long long)st->counters[SBS_C_FIN]);
		printf("# HELP sockbypass_proxy_passed_total Skbs left to the proxy to copy, by reason\n"
		       "# TYPE sockbypass_proxy_passed_total counter\n");
		printf("sockbypass_proxy_passed_total{reason=\"unregistered\"} %llu\n",
		       (unsigned long long)st->counters[SBS_C_PASS_UNREGISTERED]);
		printf("sockbypass_proxy_passed_total{reason=\"backlog\"} %llu\n",
		       (unsigned long long)st->counters[SBS_C_PASS_BACKLOG]);
		printf("sockbypass_proxy_passed_total{reason=\"held\"} %llu\n",
		       (unsigned long long)st->counters[SBS_C_PASS_HELD]);
		printf("sockbypass_proxy_passed_total{reason=\"refused\"} %llu\n",
		       (unsigned long long)st->counters[SBS_C_PASS_REFUSED]);
		printf("# HELP sockbypass_proxy_resumed_total Directions redirected again after the "
		       "proxy copied what was left\n# TYPE sockbypass_proxy_resumed_total counter\n"
		       "sockbypass_proxy_resumed_total %llu\n",
		       (unsigned long long)st->counters[SBS_C_RESUMED]);
		break;
	}
}
