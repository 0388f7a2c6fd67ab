// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Paths the loader and its verbs are given or find: cgroup v2 and bpffs. */
#define _GNU_SOURCE /* nftw's FTW_ACTIONRETVAL */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <mntent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <linux/magic.h>
#include "errmsg.h"
#include "paths.h"

bool on_fs(const char *path, long magic)
{
	struct statfs st;

	return statfs(path, &st) == 0 && st.f_type == magic;
}

/* The first cgroup2 mount in /proc/mounts (e.g. /sys/fs/cgroup/unified on hybrid systems). */
int find_cgroup2_root(char *buf, size_t len)
{
	struct mntent *m;
	FILE *f = setmntent("/proc/mounts", "r");
	int err = -ENOENT;

	if (!f)
		return -errno;
	while ((m = getmntent(f))) {
		if (strcmp(m->mnt_type, "cgroup2") == 0) {
			snprintf(buf, len, "%s", m->mnt_dir);
			err = 0;
			break;
		}
	}
	endmntent(f);
	return err;
}

/* A cgroup v2 directory given by the user, or one line and -SB_EXIT_CGROUP. */
int open_cgroup(const char *path)
{
	struct stat st;
	int fd;

	if (stat(path, &st)) {
		err_line("cgroup '%s': %s; pass an existing cgroup v2 directory with --cgroup",
			 path, strerror(errno));
		return -SB_EXIT_CGROUP;
	}
	if (!S_ISDIR(st.st_mode) || !on_fs(path, CGROUP2_SUPER_MAGIC)) {
		err_line("'%s' is not a cgroup v2 directory (cgroup v1 or another filesystem); "
			 "pass one under the cgroup2 mount with --cgroup", path);
		return -SB_EXIT_CGROUP;
	}
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		err_line("open cgroup '%s': %s", path, strerror(errno));
		return -SB_EXIT_CGROUP;
	}
	return fd;
}

/* A cgroup v2 directory's id, what bpf_get_current_cgroup_id() says: its inode number. */
__u64 cgroup_id_of(int cg_fd)
{
	struct stat st;

	return fstat(cg_fd, &st) ? 0 : (__u64)st.st_ino;
}

static struct {
	__u64 id;
	char *buf;
	size_t len;
	bool found;
} wanted;

static int match_id(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)ftw;
	if (type != FTW_D || (__u64)st->st_ino != wanted.id)
		return FTW_CONTINUE;
	snprintf(wanted.buf, wanted.len, "%s", path);
	wanted.found = true;
	return FTW_STOP;
}

/* The path of the cgroup with this id under the cgroup2 mount; false if it is gone. */
bool cgroup_path_of(__u64 id, char *buf, size_t len)
{
	char root[PATH_MAX];

	if (find_cgroup2_root(root, sizeof(root)))
		return false;
	wanted.id = id, wanted.buf = buf, wanted.len = len, wanted.found = false;
	nftw(root, match_id, 16, FTW_PHYS | FTW_MOUNT | FTW_ACTIONRETVAL);
	return wanted.found;
}
