/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The options of every verb, parsed into one struct sb_env (options.c). */
#ifndef SOCKBYPASS_OPTIONS_H
#define SOCKBYPASS_OPTIONS_H

#include <stdbool.h>
#include <linux/types.h>

enum sb_verb { VERB_LOAD, VERB_UNLOAD, VERB_STATUS, VERB_FEATURES, VERB_LEGACY };
enum sb_format { FORMAT_TEXT, FORMAT_JSON, FORMAT_PROMETHEUS };

struct sb_env {
	enum sb_verb verb;      /* what to do; the flag form (VERB_LEGACY) sets it too */
	enum sb_format format;
	const char *cgroup;
	const char *pin_dir;
	bool verbose;
	bool trace;
	double timeout;
	__u64 queue_limit;
	__u32 map_size;
	bool scope_given;        /* --only-ports or --exclude-ports was given */
	struct sb_scope *scope;  /* what they say */
	int parse_exit;          /* an option's own exit code (a bad port list) */
};

extern struct sb_env env;

/* Parse verb's options (argv[0] is its name) into env: 0, or an exit code.
 * argp itself exits on --help and errors unless flags has ARGP_NO_EXIT. */
int sb_parse_options(enum sb_verb verb, int argc, char **argv, unsigned int flags);
struct argp_state;
/* -p --pin-dir, -j --json, -P --prometheus, -h: the same for every verb that
 * has them; ARGP_ERR_UNKNOWN for other keys (an argp parser's default case) */
int sb_shared_option(int key, char *arg, struct argp_state *state);
/* an absolute, non-empty path of a sane length, or argp_error() */
int check_path_arg(struct argp_state *state, const char *opt, const char *arg);

#endif
