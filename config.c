// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The sb_config map: what load writes before any socket is seen, what unload turns off. */
#include <errno.h>
#include <bpf/bpf.h>
#include "sockbypass.h"
#include "options.h"
#include "config.h"

int config_enable(int config_fd, bool sleepers_counted)
{
	struct sb_config cfg = { .enabled = 1, .trace = env.trace, .queue_limit = env.queue_limit,
				 .sleepers_counted = sleepers_counted };
	__u32 zero = 0;

	return bpf_map_update_elem(config_fd, &zero, &cfg, BPF_ANY) ? -errno : 0;
}

int config_disable(int config_fd)
{
	struct sb_config cfg = {};
	__u32 zero = 0;

	if (bpf_map_lookup_elem(config_fd, &zero, &cfg))
		return -errno;
	cfg.enabled = 0;
	return bpf_map_update_elem(config_fd, &zero, &cfg, BPF_ANY) ? -errno : 0;
}
