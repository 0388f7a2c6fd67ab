// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockbypass unload: turns the bypass off and removes it without losing a
 * byte. Senders fall back to TCP first; a socket leaves the map only once its
 * reader took every redirected byte queued for it (the sockmap iterator
 * counts them), since removing it would free them.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "sockbypass.h"
#include "errmsg.h"
#include "options.h"
#include "pins.h"
#include "config.h"
#include "verbs.h"

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Step 3: take sockets out of the map only once they have nothing unread. */
static int drain(int map_fd, int prog_fd)
{
	struct drain_scan s = {};
	double waited = 0;
	int err;

	/* let a sendmsg that passed its verdict just before finish queueing */
	sleep_ms(100);
	for (;;) {
		err = scan_sockets(prog_fd, map_fd, true, &s);
		if (err) {
			err_line("list sockets in sb_sockhash: %s", strerror(-err));
			return errno_exit(err);
		}
		if (!s.busy)
			return SB_EXIT_OK;
		if (waited >= env.timeout) {
			err_line("%u socket(s) still hold %llu unread bypassed bytes; the bypass "
				 "is off and nothing is lost. Run unload.sh again once their "
				 "readers caught up (or they close)", s.busy, s.queued);
			return SB_EXIT_DRAINING;
		}
		sleep_ms(50);
		waited += 0.05;
	}
}

int do_unload(void)
{
	int config_fd, map_fd, prog_fd, err, ret = SB_EXIT_OK;
	char path[PATH_MAX];

	if (need_root("sockbypass", "CAP_BPF and CAP_NET_ADMIN"))
		return SB_EXIT_PERM;
	if (access(env.pin_dir, F_OK) || !known_pins()) {
		printf("sockbypass is not loaded (nothing in %s)\n", env.pin_dir);
		rmdir(env.pin_dir);
		return SB_EXIT_OK;
	}

	/* 1. every sender falls back to TCP on its next write, for good */
	config_fd = obj_get("sb_config");
	if (config_fd >= 0) {
		err = config_disable(config_fd);
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

	/* 3. the sockets, once drained */
	map_fd = obj_get("sb_sockhash");
	prog_fd = map_fd >= 0 ? drain_prog_open(map_fd) : -1;
	if (map_fd >= 0 && prog_fd >= 0)
		ret = drain(map_fd, prog_fd);
	if (map_fd >= 0)
		close(map_fd);
	if (prog_fd >= 0)
		close(prog_fd);
	if (ret)
		return ret;

	/* 4. nothing left that holds data: drop the rest */
	unpin_all();
	if (access(env.pin_dir, F_OK) == 0)
		err_line("%s is not empty after removing the pins (files of someone else?)",
			 env.pin_dir);
	printf("sockbypass unloaded (%s)\n", env.pin_dir);
	return SB_EXIT_OK;
}

int cmd_unload(int argc, char **argv)
{
	int err = sb_parse_options(VERB_UNLOAD, argc, argv, 0);

	return err ?: do_unload();
}
