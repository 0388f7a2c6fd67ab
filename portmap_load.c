// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Virtual ports' kernel side, loaded with the local bypass: the bind,
 * post_bind, release, connect, getsockname and getpeername programs on the
 * covered cgroup, each link pinned, and the maps `sockbypass portmap`
 * writes. Inert until a port is mapped.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "portmap.h"
#include "portmap.skel.h"
#include "errmsg.h"
#include "paths.h"
#include "pins.h"
#include "portmap_load.h"

/* Load, attach to cg_fd and pin; on failure nothing of it stays pinned. */
int portmap_load(int cg_fd)
{
	struct portmap_bpf *skel;
	struct bpf_program *prog;
	int err;

	skel = portmap_bpf__open();
	if (!skel) {
		err = -errno;
		err_line("open the virtual ports' BPF object: %s", strerror(-err));
		return err;
	}
	bpf_map__set_max_entries(skel->maps.pm_socks, env.map_size);
	err = portmap_bpf__load(skel);
	if (err) /* the verifier's log went to libbpf's print (-v) */
		goto out;
	err = pin_maps(skel->obj, sb_portmap_maps, sb_portmap_maps_nr);
	bpf_object__for_each_program(prog, skel->obj) {
		struct bpf_link *link;

		if (err)
			break;
		link = bpf_program__attach_cgroup(prog, cg_fd);
		if (!link) {
			err = -errno;
			err_line("attach %s to the cgroup: %s", bpf_program__name(prog), strerror(-err));
			break;
		}
		err = pin_link(link, bpf_program__name(prog));
		bpf_link__destroy(link); /* the pin holds it */
	}
	if (err) { /* half the hooks would map binds without names, or names without binds */
		unpin_names(sb_portmap_links, sb_portmap_links_nr);
		unpin_names(sb_portmap_maps, sb_portmap_maps_nr);
	}
out:
	portmap_bpf__destroy(skel);
	return err;
}

/* ---- reading the maps: portmap list and status ------------------------ */

void portmap_gather(struct portmap_status *st)
{
	struct pm_key key, next, *prev = NULL;
	int ports_fd, defaults_fd;

	memset(st, 0, sizeof(*st));
	ports_fd = obj_get(PM_PIN_PORTS);
	if (ports_fd < 0)
		return;
	defaults_fd = obj_get(PM_PIN_DEFAULTS);
	st->present = true;
	while (bpf_map_get_next_key(ports_fd, prev, &next) == 0 && st->n < PM_STATUS_MAX) {
		struct portmap_entry *e = &st->entries[st->n];
		struct pm_port v;
		__u64 owner;

		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(ports_fd, &key, &v))
			continue; /* removed meanwhile */
		e->cgroup = key.cgroup;
		e->vport = key.vport;
		e->real = v.real;
		e->live = v.live;
		e->is_default = defaults_fd >= 0 &&
				!bpf_map_lookup_elem(defaults_fd, &key.vport, &owner) &&
				owner == key.cgroup;
		st->n++;
	}
	close(ports_fd);
	if (defaults_fd >= 0)
		close(defaults_fd);
	read_percpu_counters(PM_PIN_COUNTERS, st->counters, PM_C_NR);
}

static const char *const counter_names[PM_C_NR] = { PM_COUNTER_NAMES };

/* The path of a mapping's cgroup, or a note that it is gone (its id kept). */
const char *portmap_entry_path(const struct portmap_entry *e, char *buf, size_t len)
{
	if (!cgroup_path_of(e->cgroup, buf, len))
		snprintf(buf, len, "(removed cgroup %llu)", (unsigned long long)e->cgroup);
	return buf;
}

void portmap_print(const struct portmap_status *st, enum sb_format format)
{
	char path[PATH_MAX];
	int i;

	switch (format) {
	case FORMAT_TEXT:
		printf("portmap_mappings: %d\n", st->n);
		for (i = 0; i < st->n; i++) {
			const struct portmap_entry *e = &st->entries[i];

			printf("portmap: %s port %u real %u sockets %u%s\n",
			       portmap_entry_path(e, path, sizeof(path)), e->vport, e->real, e->live,
			       e->is_default ? " default" : "");
		}
		for (i = 0; i < PM_C_NR; i++)
			printf("portmap_%s: %llu\n", counter_names[i],
			       (unsigned long long)st->counters[i]);
		break;
	case FORMAT_JSON:
		printf("\"portmap\":{\"mappings\":[");
		for (i = 0; i < st->n; i++) {
			const struct portmap_entry *e = &st->entries[i];

			printf("%s{\"cgroup\":", i ? "," : "");
			json_string(portmap_entry_path(e, path, sizeof(path)));
			printf(",\"port\":%u,\"real\":%u,\"sockets\":%u,\"default\":%s}", e->vport,
			       e->real, e->live, e->is_default ? "true" : "false");
		}
		printf("],\"counters\":{");
		for (i = 0; i < PM_C_NR; i++)
			printf("%s\"%s\":%llu", i ? "," : "", counter_names[i],
			       (unsigned long long)st->counters[i]);
		printf("}}");
		break;
	case FORMAT_PROMETHEUS:
		printf("# HELP sockbypass_portmap_mappings Virtual ports mapped, one per cgroup and port\n"
		       "# TYPE sockbypass_portmap_mappings gauge\nsockbypass_portmap_mappings %d\n",
		       st->n);
		printf("# HELP sockbypass_portmap_events_total Binds, connects and names the virtual "
		       "ports changed\n# TYPE sockbypass_portmap_events_total counter\n");
		for (i = 0; i < PM_C_NR; i++)
			printf("sockbypass_portmap_events_total{event=\"%s\"} %llu\n", counter_names[i],
			       (unsigned long long)st->counters[i]);
		break;
	}
}
