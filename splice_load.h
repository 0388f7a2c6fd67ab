/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The proxy splice's kernel side: load, and what status shows (splice_load.c). */
#ifndef SOCKBYPASS_SPLICE_LOAD_H
#define SOCKBYPASS_SPLICE_LOAD_H

#include <stdbool.h>
#include <linux/types.h>
#include "splice.h"
#include "options.h"

int splice_load(void);

struct splice_status {
	bool present;                  /* its maps are pinned */
	unsigned long long directions; /* entries of sbs_dirs: two per registered pair */
	__u64 counters[SBS_C_NR];
};
void splice_gather(struct splice_status *st);
void splice_print(const struct splice_status *st, enum sb_format format);

#endif
