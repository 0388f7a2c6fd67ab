/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* What the running kernel supports (features.c): asked before a load and by 'features'. */
#ifndef SOCKBYPASS_FEATURES_H
#define SOCKBYPASS_FEATURES_H

#include <stdbool.h>

#define SB_MIN_KERNEL "5.10" /* the sockmap iterator; see README "Kernels" */

/* One thing the programs use: required ones refuse the load when missing,
 * optional ones load with what their absence costs. */
struct sb_feature {
	const char *name;
	bool required;
	bool present;
	const char *without; /* what is lost without it */
};

#define SB_FEATURES_MAX 32
struct sb_features {
	/* the optional ones the loader acts on */
	bool queue_len;       /* sk_psock.msg_tot_len: queues are counted, not walked */
	bool vprintk;         /* bpf_trace_vprintk: --trace works */
	bool task_in_sockops; /* current pid and comm, for trace lines */
	bool task_in_sk_msg;
	bool sleeper_hook;    /* fentry/fexit on sk_wait_data: blocking readers resume */
	/* every check, in order, for 'features' */
	int n;
	struct sb_feature rows[SB_FEATURES_MAX];
};

/* Probe everything into f: 0, or -SB_EXIT_KERNEL after the line naming the
 * first missing required piece (quiet: no line). */
int probe_kernel(struct sb_features *f, bool quiet);
void warn_degraded(const struct sb_features *f, bool trace);

#endif
