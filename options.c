// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Command-line options of ./sockbypass (argp); fuzzed by test/fuzz_options.c. */
#include <argp.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sockbypass.h"
#include "loader.h"

static struct sb_scope scope_opts; /* 64 KiB: not on the stack */

struct sb_env env = {
	.scope = &scope_opts,
	.pin_dir = SB_DEFAULT_PIN_DIR,
	.timeout = 30,
	.map_size = SB_SOCKHASH_MAX,
};

const char *argp_program_version = "sockbypass 0.1";
static const char doc[] =
	"Make TCP between two local sockets skip the TCP/IP stack.\n"
	"\n"
	"USAGE: sockbypass [--cgroup PATH] [--pin-dir PATH] [--queue-limit BYTES]\n"
	"                  [--map-size SOCKETS] [--only-ports LIST] [--exclude-ports LIST]\n"
	"                  [--trace] [-v]\n"
	"       sockbypass --unload [--pin-dir PATH] [--timeout SECONDS]\n"
	"       sockbypass --status [--json | --prometheus] [--pin-dir PATH]\n"
	"       sockbypass scope [add | remove] [--only-ports LIST] [--exclude-ports LIST]\n"
	"       sockbypass portmap add|remove|list  (virtual ports: portmap --help)\n"
	"\n"
	"Loads, pins under the pin dir, attaches to the cgroup and exits.\n"
	"Defaults: --cgroup is the root of the cgroup v2 mount found in\n"
	"/proc/mounts; --pin-dir is " SB_DEFAULT_PIN_DIR ".\n"
	"\v"
	"Exit codes: 0 done (or already loaded / not loaded), 1 internal error,\n"
	"2 bad usage, 3 not root, 4 kernel lacks BPF/sockmap support,\n"
	"5 pin dir not on bpffs, 6 cgroup missing or not v2, 7 pin dir holds a\n"
	"partial state, 8 programs refused by the kernel, 9 unload waiting for\n"
	"readers to drain bypassed data (run it again), 12 --status, scope or portmap:\n"
	"not loaded, 15 a bad port list, 16 a port on both lists, 18 and 19 portmap's\n"
	"(a port already mapped, a port not mapped).\n";

static const struct argp_option opts[] = {
	{ "cgroup", 'c', "PATH", 0, "cgroup v2 directory to cover (default: cgroup2 root)", 0 },
	{ "pin-dir", 'p', "PATH", 0, "bpffs directory for the pins (default " SB_DEFAULT_PIN_DIR ")", 0 },
	{ "unload", 'u', NULL, 0, "turn the bypass off and remove everything, losing no data", 0 },
	{ "status", 's', NULL, 0, "show whether it is loaded, sockets and counters", 0 },
	{ "json", 'j', NULL, 0, "--status as JSON", 0 },
	{ "prometheus", 'P', NULL, 0, "--status in Prometheus text format", 0 },
	{ "timeout", 't', "SECONDS", 0, "--unload: how long to wait for readers to drain (default 30)", 0 },
	{ "queue-limit", 'q', "BYTES", 0, "unread bypassed bytes a receiver may hold before "
	  "its sender falls back to TCP until it caught up (default: what TCP's buffers "
	  "would hold, see README; K/M/G suffixes)", 0 },
	{ "map-size", 'm', "SOCKETS", 0, "sockets the map holds (default 65536); "
	  "connections beyond stay on TCP", 0 },
	{ "only-ports", 'o', "LIST", 0, "bypass only connections with one end on these ports "
	  "(5432,6379,8000-8100)", 0 },
	{ "exclude-ports", 'x', "LIST", 0, "keep connections with one end on these ports on TCP "
	  "(splice(2) readers, firewalled flows)", 0 },
	{ "trace", 'T', NULL, 0, "print socket events to the kernel trace pipe", 0 },
	{ "verbose", 'v', NULL, 0, "show libbpf debug output", 0 },
	{ "help", 'h', NULL, OPTION_HIDDEN, "show this help", 0 },
	{},
};

int check_path_arg(struct argp_state *state, const char *opt, const char *arg)
{
	if (!*arg)
		argp_error(state, "%s: empty path", opt);
	if (strlen(arg) >= PATH_MAX - 64)
		argp_error(state, "%s: path too long", opt);
	if (arg[0] != '/')
		argp_error(state, "%s: '%s' is not an absolute path", opt, arg);
	return 0;
}

static error_t parse_arg(int key, char *arg, struct argp_state *state)
{
	char *end;

	switch (key) {
	case 'c':
		check_path_arg(state, "--cgroup", arg);
		env.cgroup = arg;
		break;
	case 'p':
		check_path_arg(state, "--pin-dir", arg);
		env.pin_dir = arg;
		break;
	case 'u':
		env.mode = MODE_UNLOAD;
		break;
	case 's':
		env.mode = MODE_STATUS;
		break;
	case 'j':
		env.mode = MODE_STATUS;
		env.format = FORMAT_JSON;
		break;
	case 'P':
		env.mode = MODE_STATUS;
		env.format = FORMAT_PROMETHEUS;
		break;
	case 't':
		errno = 0;
		env.timeout = strtod(arg, &end);
		if (errno || end == arg || *end || env.timeout < 0 || env.timeout > 86400)
			argp_error(state, "--timeout: '%s' is not a number of seconds (0-86400)", arg);
		break;
	case 'q':
		errno = 0;
		env.queue_limit = strtoull(arg, &end, 10);
		if (*end == 'K' || *end == 'k')
			env.queue_limit <<= 10, end++;
		else if (*end == 'M' || *end == 'm')
			env.queue_limit <<= 20, end++;
		else if (*end == 'G' || *end == 'g')
			env.queue_limit <<= 30, end++;
		if (errno || end == arg || *end || arg[0] == '-' || env.queue_limit < 65536)
			argp_error(state, "--queue-limit: '%s' is not a size of at least 64K", arg);
		break;
	case 'm':
		errno = 0;
		env.map_size = strtoul(arg, &end, 10);
		if (errno || end == arg || *end || arg[0] == '-' || env.map_size < 2 ||
		    env.map_size > (1U << 24))
			argp_error(state, "--map-size: '%s' is not a number of sockets (2-16777216)", arg);
		break;
	case 'o':
	case 'x':
		/* its own exit code, so no argp_error: the line is printed here */
		env.scope_given = true;
		env.parse_exit = ports_apply(env.scope, arg,
					     key == 'o' ? SB_PORT_ONLY : SB_PORT_EXCLUDED, false);
		if (env.parse_exit)
			return EINVAL;
		break;
	case 'T':
		env.trace = true;
		break;
	case 'v':
		env.verbose = true;
		break;
	case 'h':
		argp_state_help(state, stdout, ARGP_HELP_STD_HELP);
		break;
	case ARGP_KEY_ARG:
		argp_error(state, "unexpected argument '%s'", arg);
		break;
	default:
		return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

static const struct argp argp = { opts, parse_arg, NULL, doc, NULL, NULL, NULL };

/* Parse into env: 0, or SB_EXIT_USAGE (argp itself exits on --help and errors
 * unless flags has ARGP_NO_EXIT). */
int sb_parse_options(int argc, char **argv, unsigned int flags)
{
	argp_err_exit_status = SB_EXIT_USAGE;
	env.parse_exit = 0;
	if (argp_parse(&argp, argc, argv, flags, NULL, NULL))
		return env.parse_exit ?: SB_EXIT_USAGE;
	return 0;
}
