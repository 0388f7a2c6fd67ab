// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockbypass features [--json]: the loader's kernel probe as a table: every
 * piece the programs use, whether this kernel has it, and what a missing
 * optional piece costs. Exit 0 if every required piece is there, 4 if not.
 */
#include <stdio.h>
#include <sys/utsname.h>
#include "errmsg.h"
#include "options.h"
#include "kernel_features.h"
#include "verbs.h"

static void print_text(const struct sb_features *f, const char *release)
{
	printf("kernel: %s\n", release);
	for (int i = 0; i < f->n; i++) {
		const struct sb_feature *r = &f->rows[i];

		printf("%-8s %-9s %s", r->present ? "yes" : "MISSING",
		       r->required ? "required" : "optional", r->name);
		if (!r->present)
			printf(": %s", r->without);
		putchar('\n');
	}
}

static void print_json(const struct sb_features *f, const char *release, bool usable)
{
	printf("{\"kernel\":");
	json_string(release);
	printf(",\"usable\":%s,\"features\":[", usable ? "true" : "false");
	for (int i = 0; i < f->n; i++) {
		const struct sb_feature *r = &f->rows[i];

		printf("%s{\"name\":", i ? "," : "");
		json_string(r->name);
		printf(",\"required\":%s,\"present\":%s,\"without\":", r->required ? "true" : "false",
		       r->present ? "true" : "false");
		json_string(r->present ? "" : r->without);
		putchar('}');
	}
	printf("]}\n");
}

int cmd_features(int argc, char **argv)
{
	static struct sb_features f;
	struct utsname u;
	bool usable;
	int err;

	err = sb_parse_options(VERB_FEATURES, argc, argv, 0);
	if (err)
		return err;
	/* without CAP_BPF every probe fails: that would read as a kernel without BPF */
	if (need_root("sockbypass features", "CAP_BPF, to probe the kernel"))
		return SB_EXIT_PERM;
	usable = probe_kernel(&f, true) == 0;
	uname(&u);
	if (env.format == FORMAT_JSON)
		print_json(&f, u.release, usable);
	else
		print_text(&f, u.release);
	return usable ? SB_EXIT_OK : SB_EXIT_KERNEL;
}
