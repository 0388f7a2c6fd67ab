// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockbypass load: loads the BPF programs, pins them and their maps, attaches
 * to a cgroup v2 and exits; the pins keep everything alive. Each step makes
 * nothing visible before the one it depends on: a socket can enter the map
 * only once sk_msg is on it, and traffic is touched (sockops attached) last.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/magic.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "sockbypass.h"
#include "sockbypass.skel.h"
#include "errmsg.h"
#include "options.h"
#include "paths.h"
#include "pins.h"
#include "kernel_features.h"
#include "splice_load.h"
#include "portmap_load.h"
#include "config.h"
#include "verbs.h"

static int check_pin_parent(const char *dir)
{
	char parent[PATH_MAX];
	char *slash;

	snprintf(parent, sizeof(parent), "%s", dir);
	slash = strrchr(parent, '/');
	if (slash == parent)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	if (!on_fs(parent, BPF_FS_MAGIC)) {
		err_line("'%s' is not on a bpffs mount; mount it with 'mount -t bpf bpf %s' "
			 "(load.sh does this for /sys/fs/bpf)", parent, parent);
		return SB_EXIT_BPFFS;
	}
	return 0;
}

/* Everything that can refuse the load before anything is created:
 * SB_EXIT_OK with *done set if it is loaded already. */
static int preflight(struct sb_features *features, char *cgroup_buf, size_t len, bool *done)
{
	int ret;

	ret = probe_kernel(features, false);
	if (ret)
		return -ret;
	if (env.trace && !features->vprintk) {
		err_line("this kernel lacks bpf_trace_vprintk (Linux 5.16+), which --trace needs; "
			 "load without --trace");
		return SB_EXIT_KERNEL;
	}
	if (!env.cgroup) {
		if (find_cgroup2_root(cgroup_buf, len)) {
			err_line("no cgroup v2 mount in /proc/mounts; mount one "
				 "('mount -t cgroup2 none /sys/fs/cgroup/unified') or pass --cgroup");
			return SB_EXIT_CGROUP;
		}
		env.cgroup = cgroup_buf;
	}
	ret = check_pin_parent(env.pin_dir);
	if (ret)
		return ret;
	if (pin_exists(SB_PIN_LINK)) {
		printf("sockbypass is already loaded (pins in %s); run unload.sh first to reload\n",
		       env.pin_dir);
		if (env.scope_given)
			fprintf(stderr, "Warning: --only-ports/--exclude-ports were not applied; "
				"change the loaded lists with 'sockbypass scope add|remove'\n");
		*done = true;
		return SB_EXIT_OK;
	}
	if (known_pins()) {
		err_line("%s holds pins of an unfinished load or unload; run "
			 "'unload.sh --pin-dir %s' first", env.pin_dir, env.pin_dir);
		return SB_EXIT_STATE;
	}
	return SB_EXIT_OK;
}

/*
 * This build's sb_drain, on an already pinned sb_sockhash: for a load made by
 * an older build, whose drain check was a sockmap iterator (it cannot be
 * test-run). Only the program and the maps it reads are created.
 */
int drain_prog_load(int sockhash_fd)
{
	struct sockbypass_bpf *skel = sockbypass_bpf__open();
	struct bpf_program *prog;
	struct bpf_map *map;
	int fd, err;

	if (!skel)
		return -errno;
	bpf_object__for_each_program(prog, skel->obj)
		bpf_program__set_autoload(prog, prog == skel->progs.sb_drain);
	bpf_object__for_each_map(map, skel->obj)
		if (!bpf_map__is_internal(map) && map != skel->maps.sb_sockhash)
			bpf_map__set_autocreate(map, false);
	err = bpf_map__reuse_fd(skel->maps.sb_sockhash, sockhash_fd) ?: sockbypass_bpf__load(skel);
	fd = err ? err : dup(bpf_program__fd(skel->progs.sb_drain));
	if (fd < 0 && !err)
		fd = -errno;
	sockbypass_bpf__destroy(skel);
	return fd;
}

/* Step 1, open and load: nothing is visible to anyone yet. */
static int open_and_load(struct sockbypass_bpf **out, struct sb_features *features)
{
	struct sockbypass_bpf *skel;
	int err, cpus;

	*out = skel = sockbypass_bpf__open();
	if (!skel) {
		err = -errno;
		err_line("open BPF object: %s", strerror(-err));
		return errno_exit(err);
	}
	skel->rodata->sb_trace = env.trace;
	/* SOCKBYPASS_WALK_QUEUE=1: behave as on a kernel without msg_tot_len */
	if (getenv("SOCKBYPASS_WALK_QUEUE"))
		features->queue_len = false;
	skel->rodata->sb_walk_queue = !features->queue_len;
	/* the memory check's per-CPU share of what a look found (0: assume many) */
	cpus = libbpf_num_possible_cpus();
	skel->rodata->sb_nr_cpus = cpus > 0 ? cpus : 0;
	skel->rodata->sb_task_sockops = features->task_in_sockops;
	skel->rodata->sb_task_sk_msg = features->task_in_sk_msg;
	/* SOCKBYPASS_NO_SLEEPER_HOOK=1: behave as on a kernel without it */
	if (getenv("SOCKBYPASS_NO_SLEEPER_HOOK"))
		features->sleeper_hook = false;
	bpf_program__set_autoload(skel->progs.sb_wait_enter, features->sleeper_hook);
	bpf_program__set_autoload(skel->progs.sb_wait_exit, features->sleeper_hook);
	/* one entry per socket in each; clients waiting for their server: a quarter */
	bpf_map__set_max_entries(skel->maps.sb_sockhash, env.map_size);
	bpf_map__set_max_entries(skel->maps.sb_socks, env.map_size);
	/* used only where the sleeper hook runs: else one entry, not 5 MiB */
	bpf_map__set_max_entries(skel->maps.sb_sleepers, features->sleeper_hook ? env.map_size : 1);
	bpf_map__set_max_entries(skel->maps.sb_pending, env.map_size / 4 > 64 ? env.map_size / 4 : 64);
	bpf_map__set_max_entries(skel->maps.sb_hints, env.map_size / 4 > 64 ? env.map_size / 4 : 64);
	err = sockbypass_bpf__load(skel);
	if (err) {
		err_line("the kernel refused the BPF programs: %s (the log above says why; "
			 "-v shows more)", strerror(-err));
		return err == -EPERM ? SB_EXIT_PERM : SB_EXIT_LOAD;
	}
	/* count sleepers before any socket can be in the map; without the
	 * hook, sk_msg guesses from the wait queue (a degraded feature) */
	if (features->sleeper_hook) {
		skel->links.sb_wait_enter = bpf_program__attach(skel->progs.sb_wait_enter);
		skel->links.sb_wait_exit = skel->links.sb_wait_enter ?
			bpf_program__attach(skel->progs.sb_wait_exit) : NULL;
		features->sleeper_hook = skel->links.sb_wait_enter && skel->links.sb_wait_exit;
		if (!features->sleeper_hook) { /* half a count is no count */
			bpf_link__destroy(skel->links.sb_wait_enter);
			skel->links.sb_wait_enter = NULL;
		}
	}
	/* the port scope before any connection can be seen */
	err = bpf_map_update_elem(bpf_map__fd(skel->maps.sb_scope), &(__u32){ 0 }, env.scope, BPF_ANY);
	if (!err)
		err = config_enable(bpf_map__fd(skel->maps.sb_config), features->sleeper_hook);
	if (err) {
		err_line("set config: %s", strerror(-err));
		return SB_EXIT_INTERNAL;
	}
	return SB_EXIT_OK;
}

/* Steps 2-4: the maps, sk_msg on the map (the kernel copies a map's programs
 * to a socket only when it is added), the programs. */
static int pin_local(struct sockbypass_bpf *skel, bool sleepers_counted)
{
	int err;

	err = pin_maps(skel->obj, sb_local_maps, sb_local_maps_nr);
	if (err)
		return errno_exit(err);
	err = bpf_prog_attach(bpf_program__fd(skel->progs.sb_sk_msg),
			      bpf_map__fd(skel->maps.sb_sockhash), BPF_SK_MSG_VERDICT, 0);
	if (err) {
		err_line("attach sk_msg to sb_sockhash: %s", strerror(errno));
		return errno_exit(-errno);
	}
	err = pin_prog(skel->progs.sb_sockops, SB_PIN_SOCKOPS) ?:
	      pin_prog(skel->progs.sb_sk_msg, SB_PIN_SK_MSG) ?:
	      pin_prog(skel->progs.sb_drain, SB_PIN_DRAIN);
	if (!err && sleepers_counted)
		err = pin_link(skel->links.sb_wait_enter, SB_PIN_WAIT_ENTER_LINK) ?:
		      pin_link(skel->links.sb_wait_exit, SB_PIN_WAIT_EXIT_LINK);
	return err ? errno_exit(err) : SB_EXIT_OK;
}

/* Steps 5-6: the proxy splice and virtual ports, inert until used. A kernel
 * that refuses them still gets the local bypass; no permission refuses all. */
static int load_inert_parts(int cg_fd)
{
	int err = splice_load();

	if (err == -EPERM)
		return SB_EXIT_PERM;
	if (err)
		fprintf(stderr, "sockbypass: warning: the proxy splice is not available on this "
			"kernel (sockbypass-proxy uses splice(2) here); the local bypass is loaded\n");
	/* getsockname hooks: 5.8+ */
	err = portmap_load(cg_fd);
	if (err == -EPERM)
		return SB_EXIT_PERM;
	if (err)
		fprintf(stderr, "sockbypass: warning: virtual ports are not available on this "
			"kernel ('sockbypass portmap' will say so); the rest is loaded\n");
	return SB_EXIT_OK;
}

/* Step 7, traffic is touched last: attach sockops and pin the link. */
static int attach_sockops(struct sockbypass_bpf *skel, int cg_fd)
{
	struct bpf_link *link = bpf_program__attach_cgroup(skel->progs.sb_sockops, cg_fd);
	int err;

	if (!link) {
		err = -errno;
		err_line("attach sockops to cgroup %s: %s", env.cgroup, strerror(-err));
		return errno_exit(err);
	}
	skel->links.sb_sockops = link;
	err = pin_link(link, SB_PIN_LINK);
	return err ? errno_exit(err) : SB_EXIT_OK;
}

int do_load(void)
{
	char cgroup_buf[PATH_MAX];
	struct sockbypass_bpf *skel = NULL;
	struct sb_features features;
	bool made_dir = false, done = false;
	int cg_fd, ret;

	if (need_root("sockbypass", "CAP_BPF and CAP_NET_ADMIN"))
		return SB_EXIT_PERM;
	ret = preflight(&features, cgroup_buf, sizeof(cgroup_buf), &done);
	if (ret || done)
		return ret;
	cg_fd = open_cgroup(env.cgroup);
	if (cg_fd < 0)
		return -cg_fd;

	ret = open_and_load(&skel, &features);
	if (ret)
		goto out;
	if (mkdir(env.pin_dir, 0700) == 0) {
		made_dir = true;
	} else if (errno != EEXIST) {
		ret = errno_exit(-errno);
		err_line("create pin dir %s: %s", env.pin_dir, strerror(errno));
		goto out;
	}
	ret = pin_local(skel, features.sleeper_hook) ?: load_inert_parts(cg_fd) ?:
	      attach_sockops(skel, cg_fd);
	if (ret) {
		unpin_all();
		if (!made_dir)
			mkdir(env.pin_dir, 0700); /* it was there before us */
		goto out;
	}
	warn_degraded(&features, env.trace);
	printf("sockbypass loaded: cgroup %s, pins in %s%s\n", env.cgroup, env.pin_dir,
	       env.trace ? ", tracing on" : "");
out:
	sockbypass_bpf__destroy(skel); /* drops fds and the unpinned link */
	close(cg_fd);
	return ret;
}

int cmd_load(int argc, char **argv)
{
	int err = sb_parse_options(VERB_LOAD, argc, argv, 0);

	return err ?: do_load();
}
