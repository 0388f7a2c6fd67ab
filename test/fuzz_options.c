// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libFuzzer target for the loader's option and path parsing: the input,
 * split at NUL bytes, is the argument list. Built with ASan and UBSan
 * (make .output/fuzz_options); make stress runs it for a bounded time.
 */
#include <argp.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "options.h"
#include "sockbypass.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char buf[8193];
	char *argv[65];
	int argc = 0;
	struct sb_env saved = env;
	enum sb_verb verb;

	/* the first byte picks the verb whose options the rest is */
	if (size < 1)
		return 0;
	verb = (enum sb_verb)(data[0] % (VERB_LEGACY + 1));
	data++, size--;
	if (size > sizeof(buf) - 1)
		size = sizeof(buf) - 1;
	memcpy(buf, data, size);
	buf[size] = '\0';
	argv[argc++] = "sockbypass";
	for (char *p = buf; p <= buf + size && argc < 64; p += strlen(p) + 1) {
		/* glibc argp's own hidden --HANG[=SECS] sleeps on purpose: not ours */
		if (!strncmp(p, "--H", 3))
			return 0;
		argv[argc++] = p;
	}
	argv[argc] = NULL;
	memset(env.scope, 0, sizeof(*env.scope)); /* lists of earlier inputs gone */
	/* no exit and no messages: errors and --help return to us */
	sb_parse_options(verb, argc, argv, ARGP_NO_EXIT | ARGP_NO_ERRS);
	env = saved;
	return 0;
}
