// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Each verb's command-line options (argp) into env; fuzzed by test/fuzz_options.c. */
#include <argp.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sockbypass.h"
#include "errmsg.h"
#include "options.h"
#include "ports.h"

static struct sb_scope scope_opts; /* 64 KiB: not on the stack */

struct sb_env env = {
	.scope = &scope_opts,
	.pin_dir = SB_DEFAULT_PIN_DIR,
	.timeout = 30,
	.map_size = SB_SOCKHASH_MAX,
};

const char *argp_program_version = "sockbypass " SB_VERSION;

#define EXIT_CODES \
	"Exit codes: 0 done (or already loaded / not loaded), 1 internal error,\n" \
	"2 bad usage, 3 not root, 4 kernel lacks BPF/sockmap support,\n" \
	"5 pin dir not on bpffs, 6 cgroup missing or not v2, 7 pin dir holds a\n" \
	"partial state, 8 programs refused by the kernel, 9 unload waiting for\n" \
	"readers to drain bypassed data (run it again), 12 status, scope or portmap:\n" \
	"not loaded, 15 a bad port list, 16 a port on both lists, 18 and 19 portmap's\n" \
	"(a port already mapped, a port not mapped).\n"

static const char load_doc[] =
	"Load the bypass, pin it under the pin dir, attach it to the cgroup and exit:\n"
	"TCP between two sockets of the cgroup on this host then skips the TCP/IP stack.\n"
	"Defaults: --cgroup is the root of the cgroup v2 mount found in /proc/mounts;\n"
	"--pin-dir is " SB_DEFAULT_PIN_DIR ". Already loaded: says so, exit 0.\n"
	"\v" EXIT_CODES;
static const char unload_doc[] =
	"Turn the bypass off and remove it, losing no byte: senders fall back to TCP,\n"
	"sockets leave the map once their readers took every redirected byte.\n"
	"Not loaded: says so, exit 0.\n"
	"\v" EXIT_CODES;
static const char status_doc[] =
	"Whether the bypass is loaded, where, and its sockets and counters; as text,\n"
	"JSON or Prometheus text format. Exit 0 if loaded, 12 if not.\n"
	"\v" EXIT_CODES;
static const char features_doc[] =
	"What this kernel supports of what sockbypass uses, and what each missing\n"
	"piece costs. Exit 0 if everything required is there, 4 if not.\n"
	"\v" EXIT_CODES;
static const char legacy_doc[] =
	"Make TCP between two local sockets skip the TCP/IP stack.\n"
	"\n"
	"USAGE: sockbypass load|unload|status|features|scope|portmap|help [OPTION...]\n"
	"       (sockbypass VERB --help shows each; 'sockbypass help' lists them)\n"
	"The older flag forms still work: sockbypass [load options], --unload, --status.\n"
	"\v" EXIT_CODES;

#define OPT_CGROUP { "cgroup", 'c', "PATH", 0, "cgroup v2 directory to cover (default: cgroup2 root)", 0 }
#define OPT_PIN_DIR { "pin-dir", 'p', "PATH", 0, "bpffs directory for the pins (default " SB_DEFAULT_PIN_DIR ")", 0 }
#define OPT_JSON { "json", 'j', NULL, 0, "as JSON", 0 }
#define OPT_PROMETHEUS { "prometheus", 'P', NULL, 0, "in Prometheus text format", 0 }
#define OPT_TIMEOUT { "timeout", 't', "SECONDS", 0, "how long unload waits for readers to drain (default 30)", 0 }
#define OPT_QUEUE_LIMIT { "queue-limit", 'q', "BYTES", 0, "unread bypassed bytes a receiver may hold before " \
	  "its sender falls back to TCP until it caught up (default: what TCP's buffers " \
	  "would hold, see README; K/M/G suffixes)", 0 }
#define OPT_MAP_SIZE { "map-size", 'm', "SOCKETS", 0, "sockets the map holds (default 65536); " \
	  "connections beyond stay on TCP", 0 }
#define OPT_ONLY_PORTS { "only-ports", 'o', "LIST", 0, "bypass only connections with one end on these ports " \
	  "(5432,6379,8000-8100)", 0 }
#define OPT_EXCLUDE_PORTS { "exclude-ports", 'x', "LIST", 0, "keep connections with one end on these ports on TCP " \
	  "(splice(2) readers, firewalled flows)", 0 }
#define OPT_TRACE { "trace", 'T', NULL, 0, "print socket events to the kernel trace pipe", 0 }
#define OPT_VERBOSE { "verbose", 'v', NULL, 0, "show libbpf debug output", 0 }
#define OPT_HELP { "help", 'h', NULL, OPTION_HIDDEN, "show this help", 0 }

static const struct argp_option load_opts[] = {
	OPT_CGROUP, OPT_PIN_DIR, OPT_QUEUE_LIMIT, OPT_MAP_SIZE, OPT_ONLY_PORTS,
	OPT_EXCLUDE_PORTS, OPT_TRACE, OPT_VERBOSE, OPT_HELP, {},
};
static const struct argp_option unload_opts[] = { OPT_PIN_DIR, OPT_TIMEOUT, OPT_VERBOSE, OPT_HELP, {} };
static const struct argp_option status_opts[] = { OPT_PIN_DIR, OPT_JSON, OPT_PROMETHEUS, OPT_HELP, {} };
static const struct argp_option features_opts[] = { OPT_JSON, OPT_VERBOSE, OPT_HELP, {} };
static const struct argp_option legacy_opts[] = {
	OPT_CGROUP, OPT_PIN_DIR,
	{ "unload", 'u', NULL, 0, "the same as 'sockbypass unload'", 0 },
	{ "status", 's', NULL, 0, "the same as 'sockbypass status'", 0 },
	{ "json", 'j', NULL, 0, "--status as JSON", 0 },
	{ "prometheus", 'P', NULL, 0, "--status in Prometheus text format", 0 },
	OPT_TIMEOUT, OPT_QUEUE_LIMIT, OPT_MAP_SIZE, OPT_ONLY_PORTS, OPT_EXCLUDE_PORTS,
	OPT_TRACE, OPT_VERBOSE, OPT_HELP, {},
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

int sb_shared_option(int key, char *arg, struct argp_state *state)
{
	switch (key) {
	case 'p':
		check_path_arg(state, "--pin-dir", arg);
		env.pin_dir = arg;
		return 0;
	case 'j':
		env.format = FORMAT_JSON;
		return 0;
	case 'P':
		env.format = FORMAT_PROMETHEUS;
		return 0;
	case 'h':
		argp_state_help(state, stdout, ARGP_HELP_STD_HELP);
		return 0;
	}
	return ARGP_ERR_UNKNOWN;
}

static error_t parse_arg(int key, char *arg, struct argp_state *state)
{
	char *end;

	switch (key) {
	case 'c':
		check_path_arg(state, "--cgroup", arg);
		env.cgroup = arg;
		break;
	case 'u':
		env.verb = VERB_UNLOAD;
		break;
	case 's':
		env.verb = VERB_STATUS;
		break;
	case 'j':
	case 'P':
		/* the flag form: --json alone means --status --json */
		if (env.verb == VERB_LEGACY)
			env.verb = VERB_STATUS;
		return sb_shared_option(key, arg, state);
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
	case ARGP_KEY_ARG:
		argp_error(state, "unexpected argument '%s'", arg);
		break;
	default:
		return sb_shared_option(key, arg, state);
	}
	return 0;
}

static const struct argp verb_argp[] = {
	[VERB_LOAD] = { load_opts, parse_arg, NULL, load_doc, NULL, NULL, NULL },
	[VERB_UNLOAD] = { unload_opts, parse_arg, NULL, unload_doc, NULL, NULL, NULL },
	[VERB_STATUS] = { status_opts, parse_arg, NULL, status_doc, NULL, NULL, NULL },
	[VERB_FEATURES] = { features_opts, parse_arg, NULL, features_doc, NULL, NULL, NULL },
	[VERB_LEGACY] = { legacy_opts, parse_arg, NULL, legacy_doc, NULL, NULL, NULL },
};

int sb_parse_options(enum sb_verb verb, int argc, char **argv, unsigned int flags)
{
	argp_err_exit_status = SB_EXIT_USAGE;
	env.parse_exit = 0;
	env.verb = verb;
	if (argp_parse(&verb_argp[verb], argc, argv, flags, NULL, NULL))
		return env.parse_exit ?: SB_EXIT_USAGE;
	if (verb == VERB_LEGACY && env.verb == VERB_LEGACY)
		env.verb = VERB_LOAD; /* the flag form without --unload/--status loads */
	return 0;
}
