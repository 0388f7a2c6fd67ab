// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockbypass scope [add | remove] [--only-ports LIST] [--exclude-ports LIST]:
 * show or change, while loaded, which ports the bypass takes. sockops reads
 * the pinned sb_scope map once per new connection, so a change applies to
 * connections made after it; existing ones keep what they have.
 */
#include <argp.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include "sockbypass.h"
#include "errmsg.h"
#include "options.h"
#include "pins.h"
#include "ports.h"
#include "verbs.h"

enum scope_action { SCOPE_SHOW, SCOPE_ADD, SCOPE_REMOVE };

#define MAX_LISTS 32
static struct {
	enum scope_action action;
	int nlists;
	struct { enum sb_port_class class; const char *list; } lists[MAX_LISTS];
} req;

static const char doc[] =
	"Show or change which ports the bypass takes, while it is loaded.\n"
	"\n"
	"USAGE: sockbypass scope [--json] [--pin-dir PATH]\n"
	"       sockbypass scope add    [--only-ports LIST] [--exclude-ports LIST]\n"
	"       sockbypass scope remove [--only-ports LIST] [--exclude-ports LIST]\n"
	"\n"
	"A connection matches a list when either end uses one of its ports. With an\n"
	"--only-ports list, only matching connections are bypassed; connections\n"
	"matching --exclude-ports always stay on TCP. Changes apply to connections\n"
	"made after them. LIST: ports and ranges, e.g. 5432,6379,8000-8100.\n"
	"\v"
	"Exit codes: 0 done, 2 bad usage, 3 not root, 7 loaded by a sockbypass\n"
	"without port scope, 12 not loaded, 15 a bad port list, 16 a port on both lists.\n";

static const struct argp_option opts[] = {
	{ "only-ports", 'o', "LIST", 0, "the --only-ports list to add to or remove from", 0 },
	{ "exclude-ports", 'x', "LIST", 0, "the --exclude-ports list to add to or remove from", 0 },
	{ "pin-dir", 'p', "PATH", 0, "where load.sh pinned (default " SB_DEFAULT_PIN_DIR ")", 0 },
	{ "json", 'j', NULL, 0, "show the lists as JSON", 0 },
	{ "help", 'h', NULL, OPTION_HIDDEN, "show this help", 0 },
	{},
};

static error_t parse_arg(int key, char *arg, struct argp_state *state)
{
	switch (key) {
	case 'o':
	case 'x':
		if (req.nlists == MAX_LISTS)
			argp_error(state, "at most %d port lists at once", MAX_LISTS);
		req.lists[req.nlists].class = key == 'o' ? SB_PORT_ONLY : SB_PORT_EXCLUDED;
		req.lists[req.nlists++].list = arg;
		break;
	case ARGP_KEY_ARG:
		if (state->arg_num > 0)
			argp_error(state, "unexpected argument '%s'", arg);
		if (!strcmp(arg, "add"))
			req.action = SCOPE_ADD;
		else if (!strcmp(arg, "remove"))
			req.action = SCOPE_REMOVE;
		else if (!strcmp(arg, "show"))
			req.action = SCOPE_SHOW;
		else
			argp_error(state, "'%s' is not add, remove or show", arg);
		break;
	case ARGP_KEY_END:
		if (req.action != SCOPE_SHOW && !req.nlists)
			argp_error(state, "%s needs --only-ports or --exclude-ports",
				   req.action == SCOPE_ADD ? "add" : "remove");
		if (req.action == SCOPE_SHOW && req.nlists)
			argp_error(state, "port lists go with 'add' or 'remove'");
		break;
	default:
		return sb_shared_option(key, arg, state); /* --pin-dir, --json, --help */
	}
	return 0;
}

static const struct argp argp = { opts, parse_arg, "[add | remove | show]", doc, NULL, NULL, NULL };

/* Apply the request's lists to sc; 0 or the exit code of the first bad one. */
static int apply_lists(struct sb_scope *sc)
{
	for (int i = 0; i < req.nlists; i++) {
		int ret = ports_apply(sc, req.lists[i].list, req.lists[i].class,
				      req.action == SCOPE_REMOVE);
		if (ret)
			return ret;
	}
	return 0;
}

/* Open the pinned scope map, or say why not (an exit code, negated). */
static int open_scope_map(void)
{
	int fd;

	if (!pin_exists(SB_PIN_LINK)) {
		err_line("sockbypass is not loaded (nothing in %s); load it with "
			 "'load.sh --only-ports LIST' or '--exclude-ports LIST'", env.pin_dir);
		return -SB_EXIT_NOT_LOADED;
	}
	fd = obj_get("sb_scope");
	if (fd < 0 && errno == ENOENT) {
		err_line("the sockbypass loaded in %s has no port scope (an older build); "
			 "run unload.sh and load.sh again", env.pin_dir);
		return -SB_EXIT_STATE;
	}
	if (fd < 0) {
		err_line("open %s/sb_scope: %s", env.pin_dir, strerror(errno));
		return -errno_exit(-errno);
	}
	return fd;
}

int cmd_scope(int argc, char **argv)
{
	static struct sb_scope sc, check;
	int fd, lock_fd = -1, ret;
	__u32 zero = 0;

	argp_err_exit_status = SB_EXIT_USAGE;
	argp_parse(&argp, argc, argv, 0, NULL, NULL);
	/* every list well formed and on one side, before anything is touched */
	ret = apply_lists(&check);
	if (ret)
		return ret;
	if (need_root("sockbypass scope", "CAP_BPF"))
		return SB_EXIT_PERM;
	fd = open_scope_map();
	if (fd < 0)
		return -fd;
	/* one change at a time: two concurrent adds must not undo each other */
	if (req.action != SCOPE_SHOW) {
		lock_fd = open(env.pin_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (lock_fd >= 0)
			flock(lock_fd, LOCK_EX);
	}
	if (bpf_map_lookup_elem(fd, &zero, &sc)) {
		err_line("read %s/sb_scope: %s", env.pin_dir, strerror(errno));
		ret = errno_exit(-errno);
		goto out;
	}
	if (req.action != SCOPE_SHOW) {
		ret = apply_lists(&sc);
		if (ret)
			goto out;
		if (bpf_map_update_elem(fd, &zero, &sc, BPF_ANY)) {
			err_line("write %s/sb_scope: %s", env.pin_dir, strerror(errno));
			ret = errno_exit(-errno);
			goto out;
		}
	}
	if (env.format == FORMAT_JSON) {
		putchar('{');
		scope_print(&sc, FORMAT_JSON);
		puts("}");
	} else {
		scope_print(&sc, FORMAT_TEXT);
	}
	ret = SB_EXIT_OK;
out:
	if (lock_fd >= 0)
		close(lock_fd);
	close(fd);
	return ret;
}
