// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockbypass loader: loads the BPF programs, pins them and their maps,
 * attaches to a cgroup v2 and exits; the pins keep everything alive.
 * --unload undoes it without losing a byte; --status (status.c) shows what is there.
 */
#include <argp.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <linux/magic.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "sockbypass.h"
#include "sockbypass.skel.h"
#include "loader.h"


static int libbpf_print_fn(enum libbpf_print_level level, const char *fmt, va_list args)
{
	if (level == LIBBPF_DEBUG && !env.verbose)
		return 0;
	return vfprintf(stderr, fmt, args);
}

/* ---- environment ------------------------------------------------------- */

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
		return -SB_EXIT_BPFFS;
	}
	return 0;
}

/* ---- load -------------------------------------------------------------- */

static bool sleepers_counted; /* sb_wait_enter/exit attached */

static int set_enabled(int config_fd, bool on)
{
	struct sb_config cfg = { .enabled = on, .trace = env.trace, .queue_limit = env.queue_limit,
				 .sleepers_counted = sleepers_counted };
	__u32 zero = 0;

	return bpf_map_update_elem(config_fd, &zero, &cfg, BPF_ANY);
}

static int do_load(void)
{
	char cgroup_buf[PATH_MAX];
	struct sockbypass_bpf *skel = NULL;
	struct sb_features features;
	struct bpf_link *link;
	bool made_dir = false;
	int cg_fd, err, ret;

	ret = probe_kernel(&features);
	if (ret)
		return -ret;
	if (env.trace && !features.vprintk) {
		err_line("this kernel lacks bpf_trace_vprintk (Linux 5.16+), which --trace needs; "
			 "load without --trace");
		return SB_EXIT_KERNEL;
	}
	if (!env.cgroup) {
		if (find_cgroup2_root(cgroup_buf, sizeof(cgroup_buf))) {
			err_line("no cgroup v2 mount in /proc/mounts; mount one "
				 "('mount -t cgroup2 none /sys/fs/cgroup/unified') or pass --cgroup");
			return SB_EXIT_CGROUP;
		}
		env.cgroup = cgroup_buf;
	}
	ret = check_pin_parent(env.pin_dir);
	if (ret)
		return -ret;
	if (pin_exists(SB_PIN_LINK)) {
		printf("sockbypass is already loaded (pins in %s); run unload.sh first to reload\n",
		       env.pin_dir);
		if (env.scope_given)
			fprintf(stderr, "Warning: --only-ports/--exclude-ports were not applied; "
				"change the loaded lists with 'sockbypass scope add|remove'\n");
		return SB_EXIT_OK;
	}
	if (known_pins()) {
		err_line("%s holds pins of an unfinished load or unload; run "
			 "'unload.sh --pin-dir %s' first", env.pin_dir, env.pin_dir);
		return SB_EXIT_STATE;
	}
	cg_fd = open_cgroup(env.cgroup);
	if (cg_fd < 0)
		return -cg_fd;

	/* 1. open and load: nothing is visible to anyone yet */
	skel = sockbypass_bpf__open();
	if (!skel) {
		err = -errno;
		err_line("open BPF object: %s", strerror(-err));
		ret = errno_exit(err);
		goto out;
	}
	skel->rodata->sb_trace = env.trace;
	/* SOCKBYPASS_WALK_QUEUE=1: behave as on a kernel without msg_tot_len */
	if (getenv("SOCKBYPASS_WALK_QUEUE"))
		features.queue_len = false;
	skel->rodata->sb_walk_queue = !features.queue_len;
	skel->rodata->sb_task_sockops = features.task_in_sockops;
	skel->rodata->sb_task_sk_msg = features.task_in_sk_msg;
	/* SOCKBYPASS_NO_SLEEPER_HOOK=1: behave as on a kernel without it */
	if (getenv("SOCKBYPASS_NO_SLEEPER_HOOK"))
		features.sleeper_hook = false;
	bpf_program__set_autoload(skel->progs.sb_wait_enter, features.sleeper_hook);
	bpf_program__set_autoload(skel->progs.sb_wait_exit, features.sleeper_hook);
	/* one entry per socket in each; clients waiting for their server: a quarter */
	bpf_map__set_max_entries(skel->maps.sb_sockhash, env.map_size);
	bpf_map__set_max_entries(skel->maps.sb_pairs, env.map_size);
	bpf_map__set_max_entries(skel->maps.sb_pending, env.map_size / 4 > 64 ? env.map_size / 4 : 64);
	bpf_map__set_max_entries(skel->maps.sb_hints, env.map_size / 4 > 64 ? env.map_size / 4 : 64);
	err = sockbypass_bpf__load(skel);
	if (err) {
		err_line("the kernel refused the BPF programs: %s (the log above says why; "
			 "-v shows more)", strerror(-err));
		ret = err == -EPERM ? SB_EXIT_PERM : SB_EXIT_LOAD;
		goto out;
	}
	/* count sleepers before any socket can be in the map; without the
	 * hook, sk_msg guesses from the wait queue (a degraded feature) */
	if (features.sleeper_hook) {
		skel->links.sb_wait_enter = bpf_program__attach(skel->progs.sb_wait_enter);
		skel->links.sb_wait_exit = skel->links.sb_wait_enter ?
			bpf_program__attach(skel->progs.sb_wait_exit) : NULL;
		features.sleeper_hook = skel->links.sb_wait_enter && skel->links.sb_wait_exit;
		if (!features.sleeper_hook) { /* half a count is no count */
			bpf_link__destroy(skel->links.sb_wait_enter);
			skel->links.sb_wait_enter = NULL;
		}
	}
	sleepers_counted = features.sleeper_hook;
	/* the port scope before any connection can be seen */
	err = bpf_map_update_elem(bpf_map__fd(skel->maps.sb_scope), &(__u32){ 0 }, env.scope, BPF_ANY);
	if (!err)
		err = set_enabled(bpf_map__fd(skel->maps.sb_config), true);
	if (err) {
		err_line("set config: %s", strerror(-err));
		ret = SB_EXIT_INTERNAL;
		goto out;
	}

	/* 2. pin the maps */
	if (mkdir(env.pin_dir, 0700) == 0)
		made_dir = true;
	else if (errno != EEXIST) {
		err = -errno;
		err_line("create pin dir %s: %s", env.pin_dir, strerror(-err));
		ret = errno_exit(err);
		goto out;
	}
	err = pin_maps(skel->obj, sb_local_maps, sb_local_maps_nr);
	if (err) {
		ret = errno_exit(err);
		goto out_unpin;
	}

	/* 3. sk_msg on the map before any socket enters it: the kernel copies
	 *    the map's programs to a socket only when it is added */
	err = bpf_prog_attach(bpf_program__fd(skel->progs.sb_sk_msg),
			      bpf_map__fd(skel->maps.sb_sockhash), BPF_SK_MSG_VERDICT, 0);
	if (err) {
		err_line("attach sk_msg to sb_sockhash: %s", strerror(errno));
		ret = errno_exit(-errno);
		goto out_unpin;
	}

	/* 4. pin the programs */
	err = pin_prog(skel->progs.sb_sockops, SB_PIN_SOCKOPS) ?:
	      pin_prog(skel->progs.sb_sk_msg, SB_PIN_SK_MSG) ?:
	      pin_prog(skel->progs.sb_drain, SB_PIN_DRAIN);
	if (!err && sleepers_counted)
		err = pin_link(skel->links.sb_wait_enter, SB_PIN_WAIT_ENTER_LINK) ?:
		      pin_link(skel->links.sb_wait_exit, SB_PIN_WAIT_EXIT_LINK);
	if (err) {
		ret = errno_exit(err);
		goto out_unpin;
	}

	/* 5. the proxy splice: inert until a proxy registers a pair. A kernel
	 *    that refuses it still gets the local bypass */
	err = splice_load();
	if (err == -EPERM) {
		ret = SB_EXIT_PERM;
		goto out_unpin;
	}
	if (err)
		fprintf(stderr, "sockbypass: warning: the proxy splice is not available on this "
			"kernel (sockbypass-proxy uses splice(2) here); the local bypass is loaded\n");

	/* 6. virtual ports: inert until a port is mapped; a kernel without
	 *    their hooks (getsockname: 5.8+) still gets the rest */
	err = portmap_load(cg_fd);
	if (err == -EPERM) {
		ret = SB_EXIT_PERM;
		goto out_unpin;
	}
	if (err)
		fprintf(stderr, "sockbypass: warning: virtual ports are not available on this "
			"kernel ('sockbypass portmap' will say so); the rest is loaded\n");

	/* 7. traffic is touched last: attach sockops and pin the link */
	link = bpf_program__attach_cgroup(skel->progs.sb_sockops, cg_fd);
	if (!link) {
		err = -errno;
		err_line("attach sockops to cgroup %s: %s", env.cgroup, strerror(-err));
		ret = errno_exit(err);
		goto out_unpin;
	}
	skel->links.sb_sockops = link;
	err = pin_link(link, SB_PIN_LINK);
	if (err) {
		ret = errno_exit(err);
		goto out_unpin;
	}
	warn_degraded(&features, env.trace);
	printf("sockbypass loaded: cgroup %s, pins in %s%s\n", env.cgroup, env.pin_dir,
	       env.trace ? ", tracing on" : "");
	ret = SB_EXIT_OK;
	goto out;

out_unpin:
	unpin_all();
	if (!made_dir)
		mkdir(env.pin_dir, 0700); /* it was there before us */
out:
	sockbypass_bpf__destroy(skel); /* drops fds and the unpinned link */
	close(cg_fd);
	return ret;
}

/* ---- unload ------------------------------------------------------------ */

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static int do_unload(void)
{
	int config_fd, map_fd = -1, prog_fd = -1, err, ret = SB_EXIT_OK;
	char path[PATH_MAX];
	struct drain_scan s = {};
	double waited = 0;

	if (access(env.pin_dir, F_OK) || !known_pins()) {
		printf("sockbypass is not loaded (nothing in %s)\n", env.pin_dir);
		rmdir(env.pin_dir);
		return SB_EXIT_OK;
	}

	/* 1. every sender falls back to TCP on its next write, for good */
	config_fd = obj_get("sb_config");
	if (config_fd >= 0) {
		err = set_enabled(config_fd, false);
		close(config_fd);
		if (err) {
			err_line("turn the bypass off: %s", strerror(-err));
			return errno_exit(err);
		}
	} else if (errno == EPERM || errno == EACCES) {
		err_line("no permission to open the pins in %s: run as root", env.pin_dir);
		return SB_EXIT_PERM;
	}

	/* 2. no new sockets: removing the only reference detaches sockops */
	pin_path(path, sizeof(path), SB_PIN_LINK);
	if (unlink(path) && errno != ENOENT) {
		err_line("remove %s: %s", path, strerror(errno));
		return errno_exit(-errno);
	}

	/* 3. take sockets out of the map only once they have nothing unread */
	map_fd = obj_get("sb_sockhash");
	prog_fd = obj_get(SB_PIN_DRAIN);
	if (map_fd >= 0 && prog_fd >= 0) {
		/* let a sendmsg that passed its verdict just before finish queueing */
		sleep_ms(100);
		for (;;) {
			err = scan_sockets(prog_fd, map_fd, true, &s);
			if (err) {
				err_line("list sockets in sb_sockhash: %s", strerror(-err));
				ret = errno_exit(err);
				goto out;
			}
			if (!s.busy)
				break;
			if (waited >= env.timeout) {
				err_line("%u socket(s) still hold %llu unread bypassed bytes; the bypass "
					 "is off and nothing is lost. Run unload.sh again once their "
					 "readers caught up (or they close)", s.busy, s.queued);
				ret = SB_EXIT_DRAINING;
				goto out;
			}
			sleep_ms(50);
			waited += 0.05;
		}
	}

	/* 4. nothing left that holds data: drop the rest */
	unpin_all();
	if (access(env.pin_dir, F_OK) == 0)
		err_line("%s is not empty after removing the pins (files of someone else?)",
			 env.pin_dir);
	printf("sockbypass unloaded (%s)\n", env.pin_dir);
out:
	if (map_fd >= 0)
		close(map_fd);
	if (prog_fd >= 0)
		close(prog_fd);
	return ret;
}

int main(int argc, char **argv)
{
	int err;

	/* verbs have their own options */
	if (argc > 1 && !strcmp(argv[1], "scope")) {
		libbpf_set_print(libbpf_print_fn);
		argv[1] = "sockbypass scope"; /* argp's name in its messages */
		return do_scope(argc - 1, argv + 1);
	}
	if (argc > 1 && !strcmp(argv[1], "portmap")) {
		libbpf_set_print(libbpf_print_fn);
		argv[1] = "sockbypass portmap";
		return do_portmap(argc - 1, argv + 1);
	}
	err = sb_parse_options(argc, argv, 0);
	if (err)
		return err;
	if (geteuid() != 0) {
		err_line("sockbypass needs root (CAP_BPF and CAP_NET_ADMIN): run it with sudo");
		return SB_EXIT_PERM;
	}
	libbpf_set_print(libbpf_print_fn);

	switch (env.mode) {
	case MODE_UNLOAD:
		return do_unload();
	case MODE_STATUS:
		return do_status();
	default:
		return do_load();
	}
}
