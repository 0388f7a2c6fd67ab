// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockbypass status: whether sockbypass is loaded, where, and what it did, as
 * text, JSON (--json) or Prometheus text format (--prometheus, for scrapers
 * and node_exporter's textfile collector).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "sockbypass.h"
#include "errmsg.h"
#include "options.h"
#include "pins.h"
#include "ports.h"
#include "splice_load.h"
#include "portmap_load.h"
#include "verbs.h"

struct status {
	const char *state;      /* "loaded", "draining" (unload waiting), "not loaded" */
	char cgroup[PATH_MAX];  /* where sockops is attached, "" if not */
	struct sb_config cfg;
	bool have_scan;
	struct drain_scan scan;
	__u64 counters[SB_C_NR];
	bool have_scope;
	struct sb_scope scope;
	struct splice_status splice;
	struct portmap_status portmap;
};

static const char *const counter_names[SB_C_NR] = { SB_COUNTER_NAMES };

/* Prometheus metric (and reason label) of each counter. */
static const struct { const char *metric, *reason, *help; } prom[SB_C_NR] = {
	[SB_C_HINTS] = { "syns_seen", NULL, "SYNs answered by a listener in the cgroup" },
	[SB_C_INSERTED] = { "sockets_inserted", NULL, "Sockets put into the SOCKHASH" },
	[SB_C_PAIRED] = { "pairs", NULL, "Connections whose two ends were paired" },
	[SB_C_INSERT_FAILED] = { "insert_failures", NULL, "Sockets not inserted: a map was full" },
	[SB_C_SKIP_NOT_LOCAL] = { "skipped", "not_local", "Connections left to TCP, by reason" },
	[SB_C_SKIP_PAYLOAD] = { "skipped", "payload_before_established", NULL },
	[SB_C_SKIP_UNPAIRED] = { "skipped", "unpaired", NULL },
	[SB_C_SKIP_CONFLICT] = { "skipped", "conflict", NULL },
	[SB_C_REDIRECTED_MSGS] = { "redirected_messages", NULL, "Messages handed to the peer socket" },
	[SB_C_REDIRECTED_BYTES] = { "redirected_bytes", NULL, "Bytes handed to the peer socket" },
	[SB_C_PASSED_MSGS] = { "passed_messages", NULL, "Messages of bypassed sockets sent through TCP" },
	[SB_C_PASSED_BYTES] = { "passed_bytes", NULL, "Bytes of bypassed sockets sent through TCP" },
	[SB_C_FALLBACK_UNPAIRED] = { "fallbacks", "unpaired", "Messages sent through TCP, by reason" },
	[SB_C_FALLBACK_DISABLED] = { "fallbacks", "disabled", NULL },
	[SB_C_FALLBACK_BACKLOG] = { "fallbacks", "backlog", NULL },
	[SB_C_FALLBACK_REDIRECT] = { "fallbacks", "redirect_refused", NULL },
	[SB_C_FALLBACK_NO_STATE] = { "fallbacks", "no_state", NULL },
	[SB_C_FALLBACK_TCP_BUSY] = { "fallbacks", "tcp_busy", NULL },
	[SB_C_RESUMED] = { "resumed", NULL, "Directions redirected again after TCP carried bytes" },
	[SB_C_SKIP_EXCLUDED] = { "skipped", "excluded", NULL },
	[SB_C_FALLBACK_MEMORY] = { "fallbacks", "memory", NULL },
};

static void gather(struct status *st)
{
	int fd, map_fd, prog_fd;
	__u32 zero = 0;

	st->state = pin_exists(SB_PIN_LINK) ? "loaded" : "draining";
	attached_cgroup(st->cgroup, sizeof(st->cgroup));
	fd = obj_get("sb_config");
	if (fd >= 0) {
		bpf_map_lookup_elem(fd, &zero, &st->cfg);
		close(fd);
	}
	map_fd = obj_get("sb_sockhash");
	prog_fd = map_fd >= 0 ? drain_prog_open(map_fd) : -1;
	if (map_fd >= 0 && prog_fd >= 0)
		st->have_scan = scan_sockets(prog_fd, map_fd, false, &st->scan) == 0;
	if (map_fd >= 0)
		close(map_fd);
	if (prog_fd >= 0)
		close(prog_fd);
	read_percpu_counters("sb_counters", st->counters, SB_C_NR);
	st->have_scope = scope_read(&st->scope);
	splice_gather(&st->splice);
	portmap_gather(&st->portmap);
}

static void print_text(const struct status *st)
{
	printf("loaded: %s\npin_dir: %s\n", strcmp(st->state, "loaded") ? st->state : "yes",
	       env.pin_dir);
	printf("cgroup: %s\n", st->cgroup[0] ? st->cgroup : "-");
	printf("enabled: %u\ntrace: %s\n", st->cfg.enabled, st->cfg.trace ? "on" : "off");
	if (st->cfg.queue_limit)
		printf("queue_limit: %llu\n", (unsigned long long)st->cfg.queue_limit);
	else
		printf("queue_limit: auto\n");
	if (st->have_scan)
		printf("sockets: %u\nunread_bytes: %llu\n", st->scan.sockets, st->scan.queued);
	if (st->have_scope)
		scope_print(&st->scope, FORMAT_TEXT);
	for (int i = 0; i < SB_C_NR; i++)
		printf("%s: %llu\n", counter_names[i], (unsigned long long)st->counters[i]);
	if (st->splice.present)
		splice_print(&st->splice, FORMAT_TEXT);
	if (st->portmap.present)
		portmap_print(&st->portmap, FORMAT_TEXT);
}

static void print_json(const struct status *st)
{
	printf("{\"loaded\":%s,\"state\":", strcmp(st->state, "not loaded") ? "true" : "false");
	json_string(st->state);
	printf(",\"pin_dir\":");
	json_string(env.pin_dir);
	if (!strcmp(st->state, "not loaded")) {
		printf("}\n");
		return;
	}
	printf(",\"cgroup\":");
	json_string(st->cgroup);
	printf(",\"enabled\":%s,\"trace\":%s,\"queue_limit\":%llu", st->cfg.enabled ? "true" : "false",
	       st->cfg.trace ? "true" : "false", (unsigned long long)st->cfg.queue_limit);
	if (st->have_scan)
		printf(",\"sockets\":%u,\"unread_bytes\":%llu", st->scan.sockets, st->scan.queued);
	if (st->have_scope) {
		putchar(',');
		scope_print(&st->scope, FORMAT_JSON);
	}
	printf(",\"counters\":{");
	for (int i = 0; i < SB_C_NR; i++)
		printf("%s\"%s\":%llu", i ? "," : "", counter_names[i],
		       (unsigned long long)st->counters[i]);
	printf("}");
	if (st->splice.present) {
		putchar(',');
		splice_print(&st->splice, FORMAT_JSON);
	}
	if (st->portmap.present) {
		putchar(',');
		portmap_print(&st->portmap, FORMAT_JSON);
	}
	printf("}\n");
}

static void gauge(const char *name, const char *help, unsigned long long v)
{
	printf("# HELP sockbypass_%s %s\n# TYPE sockbypass_%s gauge\nsockbypass_%s %llu\n",
	       name, help, name, name, v);
}

static void print_prometheus(const struct status *st)
{
	bool loaded = strcmp(st->state, "not loaded");

	gauge("loaded", "1 if the bypass is attached to a cgroup", !strcmp(st->state, "loaded"));
	if (!loaded)
		return;
	gauge("enabled", "1 if sockets are redirected (0 while unloading)", st->cfg.enabled);
	gauge("queue_limit_bytes", "Unread bypassed bytes a receiver may hold (0: follows TCP's buffers)",
	      st->cfg.queue_limit);
	if (st->have_scan) {
		gauge("sockets", "Sockets in the SOCKHASH now", st->scan.sockets);
		gauge("unread_bytes", "Redirected bytes not yet read by their receivers",
		      st->scan.queued);
	}
	if (st->have_scope)
		scope_print(&st->scope, FORMAT_PROMETHEUS);
	/* a metric's samples in one group, also where its counters are not adjacent */
	for (int i = 0; i < SB_C_NR; i++) {
		if (!prom[i].help)
			continue;
		printf("# HELP sockbypass_%s_total %s\n# TYPE sockbypass_%s_total counter\n",
		       prom[i].metric, prom[i].help, prom[i].metric);
		for (int j = i; j < SB_C_NR; j++) {
			if (strcmp(prom[j].metric, prom[i].metric))
				continue;
			if (prom[j].reason)
				printf("sockbypass_%s_total{reason=\"%s\"} %llu\n", prom[j].metric,
				       prom[j].reason, (unsigned long long)st->counters[j]);
			else
				printf("sockbypass_%s_total %llu\n", prom[j].metric,
				       (unsigned long long)st->counters[j]);
		}
	}
	if (st->splice.present)
		splice_print(&st->splice, FORMAT_PROMETHEUS);
	if (st->portmap.present)
		portmap_print(&st->portmap, FORMAT_PROMETHEUS);
}

int do_status(void)
{
	struct status st = { .state = "not loaded" };

	if (need_root("sockbypass", "CAP_BPF and CAP_NET_ADMIN"))
		return SB_EXIT_PERM;
	if (known_pins())
		gather(&st);
	switch (env.format) {
	case FORMAT_JSON:
		print_json(&st);
		break;
	case FORMAT_PROMETHEUS:
		print_prometheus(&st);
		break;
	default:
		if (!strcmp(st.state, "not loaded"))
			printf("loaded: no (nothing in %s)\n", env.pin_dir);
		else
			print_text(&st);
	}
	return strcmp(st.state, "not loaded") ? SB_EXIT_OK : SB_EXIT_NOT_LOADED;
}

int cmd_status(int argc, char **argv)
{
	int err = sb_parse_options(VERB_STATUS, argc, argv, 0);

	return err ?: do_status();
}
