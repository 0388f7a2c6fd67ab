/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Paths sockbypass is given or finds: cgroup v2 and bpffs (paths.c). */
#ifndef SOCKBYPASS_PATHS_H
#define SOCKBYPASS_PATHS_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

bool on_fs(const char *path, long magic);
/* the first cgroup2 mount in /proc/mounts: 0, or -1 if there is none */
int find_cgroup2_root(char *buf, size_t len);
/* an fd of a cgroup v2 directory, or a negated exit code after its error line */
int open_cgroup(const char *path);
__u64 cgroup_id_of(int cg_fd);
bool cgroup_path_of(__u64 id, char *buf, size_t len);

#endif
