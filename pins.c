// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The pin directory: what is pinned there, and the sockets in the pinned map. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "sockbypass.h"
#include "splice.h"
#include "portmap.h"
#include "errmsg.h"
#include "options.h"
#include "paths.h"
#include "pins.h"

const char *const sb_local_maps[] = {
	"sb_sockhash", "sb_socks", "sb_hints", "sb_pending",
	"sb_config", "sb_counters", "sb_sleepers", "sb_scope",
};
const size_t sb_local_maps_nr = ARRAY_SIZE(sb_local_maps);
/* pinned by sockbypass 0.2 (sb_socks replaced them): unload removes them too */
static const char *const retired_maps[] = { "sb_pairs", "sb_state" };
/* the proxy splice's (splice_load.c) */
const char *const sb_splice_maps[] = {
	SBS_PIN_SOCKHASH, SBS_PIN_DIRS, SBS_PIN_CTL, SBS_PIN_COUNTERS,
};
const size_t sb_splice_maps_nr = ARRAY_SIZE(sb_splice_maps);
/* virtual ports' (portmap_load.c): maps, and a cgroup link per program */
const char *const sb_portmap_maps[] = { PM_MAPS };
const size_t sb_portmap_maps_nr = ARRAY_SIZE(sb_portmap_maps);
const char *const sb_portmap_links[] = { PM_PROGS };
const size_t sb_portmap_links_nr = ARRAY_SIZE(sb_portmap_links);
static const char *const pinned_progs[] = { SB_PIN_SOCKOPS, SB_PIN_SK_MSG, SB_PIN_DRAIN,
					    SBS_PIN_VERDICT };
/* links beside the cgroup's (SB_PIN_LINK), which stands for "loaded" */
static const char *const pinned_links[] = { SB_PIN_WAIT_ENTER_LINK, SB_PIN_WAIT_EXIT_LINK };

void pin_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", env.pin_dir, name);
}

bool pin_exists(const char *name)
{
	char path[PATH_MAX];

	pin_path(path, sizeof(path), name);
	return access(path, F_OK) == 0;
}

static int count_pins(const char *const *names, size_t n)
{
	int found = 0;

	for (size_t i = 0; i < n; i++)
		found += pin_exists(names[i]);
	return found;
}

/* How many of our pins are in the pin dir. */
int known_pins(void)
{
	return pin_exists(SB_PIN_LINK) + count_pins(sb_local_maps, sb_local_maps_nr) +
	       count_pins(retired_maps, ARRAY_SIZE(retired_maps)) +
	       count_pins(sb_splice_maps, sb_splice_maps_nr) +
	       count_pins(sb_portmap_maps, sb_portmap_maps_nr) +
	       count_pins(sb_portmap_links, sb_portmap_links_nr) +
	       count_pins(pinned_progs, ARRAY_SIZE(pinned_progs)) +
	       count_pins(pinned_links, ARRAY_SIZE(pinned_links));
}

int obj_get(const char *name)
{
	char path[PATH_MAX];

	pin_path(path, sizeof(path), name);
	return bpf_obj_get(path);
}

static int pinned(int err, const char *path)
{
	if (err)
		err_line("pin %s: %s", path, strerror(-err));
	return err;
}

/* Pin each of obj's maps named in names under its own name. */
int pin_maps(struct bpf_object *obj, const char *const *names, size_t n)
{
	char path[PATH_MAX];
	size_t i;
	int err;

	for (i = 0; i < n; i++) {
		struct bpf_map *map = bpf_object__find_map_by_name(obj, names[i]);

		pin_path(path, sizeof(path), names[i]);
		err = pinned(map ? bpf_map__pin(map, path) : -ENOENT, path);
		if (err)
			return err;
	}
	return 0;
}

int pin_prog(struct bpf_program *prog, const char *name)
{
	char path[PATH_MAX];

	pin_path(path, sizeof(path), name);
	return pinned(bpf_program__pin(prog, path), path);
}

int pin_link(struct bpf_link *link, const char *name)
{
	char path[PATH_MAX];

	pin_path(path, sizeof(path), name);
	return pinned(bpf_link__pin(link, path), path);
}

void unpin_names(const char *const *names, size_t n)
{
	char path[PATH_MAX];

	for (size_t i = 0; i < n; i++) {
		pin_path(path, sizeof(path), names[i]);
		unlink(path);
	}
}

/*
 * Remove every pin this tool knows in the pin dir, then the dir. The
 * sockops link first: from then on no connection is paired, and the
 * portmap links next (listeners keep the real ports they have).
 */
void unpin_all(void)
{
	static const char *const link[] = { SB_PIN_LINK };

	unpin_names(link, 1);
	unpin_names(sb_portmap_links, sb_portmap_links_nr);
	unpin_names(pinned_links, ARRAY_SIZE(pinned_links));
	unpin_names(pinned_progs, ARRAY_SIZE(pinned_progs));
	unpin_names(sb_local_maps, sb_local_maps_nr);
	unpin_names(retired_maps, ARRAY_SIZE(retired_maps));
	unpin_names(sb_splice_maps, sb_splice_maps_nr);
	unpin_names(sb_portmap_maps, sb_portmap_maps_nr);
	rmdir(env.pin_dir);
}

/* sb_drain's figure for one socket: its unread redirected bytes, or SB_DRAIN_GONE. */
static int unread_of(int prog_fd, __u64 cookie, __u32 *unread)
{
	/* a test run needs a frame's worth of data; the cookie leads it */
	unsigned char frame[16] = {};
	LIBBPF_OPTS(bpf_test_run_opts, run, .data_in = frame, .data_size_in = sizeof(frame));

	memcpy(frame, &cookie, sizeof(cookie));
	if (bpf_prog_test_run_opts(prog_fd, &run))
		return -errno;
	*unread = run.retval;
	return 0;
}

/*
 * List the sockets in the SOCKHASH and, with sb_drain, their unread bytes;
 * with remove_idle, take out those whose owner has read everything
 * redirected to it (removing a socket frees its unread queue, so only empty
 * ones go). The keys are read first: deleting while walking would restart
 * the walk.
 */
int scan_sockets(int prog_fd, int map_fd, bool remove_idle, struct drain_scan *s)
{
	struct bpf_map_info info = {};
	__u32 info_len = sizeof(info), n = 0, unread = 0;
	__u64 *keys, key, *prev = NULL;
	int err = 0;

	memset(s, 0, sizeof(*s));
	if (bpf_obj_get_info_by_fd(map_fd, &info, &info_len))
		return -errno;
	keys = calloc(info.max_entries ? info.max_entries : 1, sizeof(*keys));
	if (!keys)
		return -ENOMEM;
	while (n < info.max_entries && !bpf_map_get_next_key(map_fd, prev, &key)) {
		keys[n] = key;
		prev = &keys[n++];
	}
	for (__u32 i = 0; i < n && !err; i++) {
		err = unread_of(prog_fd, keys[i], &unread);
		if (err || unread == SB_DRAIN_GONE) /* it closed meanwhile, fine */
			continue;
		s->sockets++;
		if (unread) {
			s->busy++;
			s->queued += unread;
		} else if (remove_idle) {
			bpf_map_delete_elem(map_fd, &keys[i]);
		}
	}
	free(keys);
	return err;
}

/*
 * The drain check for scan_sockets(), opened once per unload or status: the
 * pinned sb_drain, or for a load an older build made (its sb_drain a sockmap
 * iterator, which cannot be test-run) this build's on the pinned map. Should
 * that fail, the pinned one: the scan then fails and says so, and nothing
 * leaves the map unchecked. -1 if nothing is pinned.
 */
int drain_prog_open(int map_fd)
{
	struct bpf_prog_info prog = {};
	__u32 prog_len = sizeof(prog);
	int fd = obj_get(SB_PIN_DRAIN), own;

	if (fd < 0 || bpf_obj_get_info_by_fd(fd, &prog, &prog_len) ||
	    prog.type == BPF_PROG_TYPE_SCHED_CLS)
		return fd;
	own = drain_prog_load(map_fd);
	if (own < 0)
		return fd;
	close(fd);
	return own;
}

/* Sum each slot of a pinned per-CPU counter array over the CPUs into out. */
void read_percpu_counters(const char *name, __u64 *out, __u32 n)
{
	int ncpus = libbpf_num_possible_cpus(), fd = obj_get(name);

	if (fd >= 0 && ncpus > 0) {
		__u64 vals[ncpus];

		/* the kernel fills all ncpus values; valgrind believes in one */
		memset(vals, 0, sizeof(vals));
		for (__u32 i = 0; i < n; i++) {
			if (bpf_map_lookup_elem(fd, &i, vals))
				continue;
			for (int c = 0; c < ncpus; c++)
				out[i] += vals[c];
		}
	}
	if (fd >= 0)
		close(fd);
}

/* The cgroup the pinned sockops link attaches to (the covered one), "" if none. */
void attached_cgroup(char *out, size_t len)
{
	struct bpf_link_info info = {};
	__u32 info_len = sizeof(info);
	int fd = obj_get(SB_PIN_LINK);

	out[0] = '\0';
	if (fd < 0)
		return;
	if (bpf_obj_get_info_by_fd(fd, &info, &info_len) || info.type != BPF_LINK_TYPE_CGROUP ||
	    !cgroup_path_of(info.cgroup.cgroup_id, out, len))
		out[0] = '\0';
	close(fd);
}

/* The pinned scope into sc; false if there is none (nothing loaded, an older build). */
bool scope_read(struct sb_scope *sc)
{
	__u32 zero = 0;
	int fd = obj_get("sb_scope");
	bool ok;

	if (fd < 0)
		return false;
	ok = bpf_map_lookup_elem(fd, &zero, sc) == 0;
	close(fd);
	return ok;
}
