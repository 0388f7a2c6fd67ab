/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Virtual ports' kernel side: load, and the mappings as status and 'portmap list' show them. */
#ifndef SOCKBYPASS_PORTMAP_LOAD_H
#define SOCKBYPASS_PORTMAP_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>
#include "portmap.h"
#include "options.h"

int portmap_load(int cg_fd);

#define PM_STATUS_MAX 1024 /* mappings status shows */
struct portmap_entry {
	__u64 cgroup;
	__u32 vport, real, live;
	bool is_default;
};
struct portmap_status {
	bool present; /* its maps are pinned */
	int n;
	struct portmap_entry entries[PM_STATUS_MAX];
	__u64 counters[PM_C_NR];
};
void portmap_gather(struct portmap_status *st);
/* the path of a mapping's cgroup, or a note that it is gone */
const char *portmap_entry_path(const struct portmap_entry *e, char *buf, size_t len);
void portmap_print(const struct portmap_status *st, enum sb_format format);

#endif
