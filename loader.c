// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockbypass: makes TCP between two sockets of this host skip the TCP/IP
 * stack. This file only finds the verb and hands argv to its file:
 *
 *   load      cmd_load.c      load, pin, attach to a cgroup, exit
 *   unload    cmd_unload.c    turn off and remove, losing no byte
 *   status    cmd_status.c    what is loaded and what it did (--json, --prometheus)
 *   features  cmd_features.c  what this kernel supports
 *   scope     cmd_scope.c     which ports the loaded bypass takes
 *   portmap   cmd_portmap.c   virtual ports
 *
 * Without a verb the older flag form (load options, --unload, --status) is parsed.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <bpf/libbpf.h>
#include "errmsg.h"
#include "options.h"
#include "verbs.h"

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} verbs[] = {
	{ "load", cmd_load, "load, pin and attach the bypass to a cgroup, then exit" },
	{ "unload", cmd_unload, "turn the bypass off and remove it, losing no byte" },
	{ "status", cmd_status, "whether it is loaded, its sockets and counters" },
	{ "features", cmd_features, "what this kernel supports, what each missing piece costs" },
	{ "scope", cmd_scope, "show or change which ports the loaded bypass takes" },
	{ "portmap", cmd_portmap, "virtual ports: many instances bind the same port" },
};

static int libbpf_print_fn(enum libbpf_print_level level, const char *fmt, va_list args)
{
	if (level == LIBBPF_DEBUG && !env.verbose)
		return 0;
	return vfprintf(stderr, fmt, args);
}

static int help(FILE *out)
{
	fprintf(out, "Usage: sockbypass VERB [OPTION...]\n"
		     "Make TCP between two local sockets skip the TCP/IP stack.\n\nVerbs:\n");
	for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
		fprintf(out, "  %-9s %s\n", verbs[i].name, verbs[i].summary);
	fprintf(out, "  %-9s %s\n\n", "help", "this list");
	fprintf(out, "'sockbypass VERB --help' shows a verb's options; man sockbypass has them all.\n");
	return SB_EXIT_OK;
}

/* The flag form of earlier versions: load options, --unload, --status. */
static int legacy(int argc, char **argv)
{
	int err = sb_parse_options(VERB_LEGACY, argc, argv, 0);

	if (err)
		return err;
	switch (env.verb) {
	case VERB_UNLOAD:
		return do_unload();
	case VERB_STATUS:
		return do_status();
	default:
		return do_load();
	}
}

int main(int argc, char **argv)
{
	static char name[64];

	libbpf_set_print(libbpf_print_fn);
	/* nothing at all: the list, not a load of the whole machine */
	if (argc < 2) {
		help(stderr);
		return SB_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "-?"))
		return help(stdout);
	if (argv[1][0] == '-')
		return legacy(argc, argv);
	if (!strcmp(argv[1], "help"))
		return help(stdout);
	for (size_t i = 0; i < ARRAY_SIZE(verbs); i++) {
		if (strcmp(argv[1], verbs[i].name))
			continue;
		/* argp names the verb in its messages: "sockbypass load: ..." */
		snprintf(name, sizeof(name), "sockbypass %s", verbs[i].name);
		argv[1] = name;
		return verbs[i].run(argc - 1, argv + 1);
	}
	err_line("'%s' is not a verb of sockbypass; 'sockbypass help' lists them", argv[1]);
	return SB_EXIT_USAGE;
}
