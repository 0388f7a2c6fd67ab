// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Virtual ports' kernel side, loaded with the local bypass: the bind,
 * post_bind, release, connect, getsockname and getpeername programs on the
 * covered cgroup, each link pinned, and the maps `sockbypass portmap`
 * writes. Inert until a port is mapped.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "portmap.h"
#include "portmap.skel.h"
#include "loader.h"

/* Load, attach to cg_fd and pin; on failure nothing of it stays pinned. */
int portmap_load(int cg_fd)
{
	struct portmap_bpf *skel;
	struct bpf_program *prog;
	int err;

	skel = portmap_bpf__open();
	if (!skel) {
		err = -errno;
		err_line("open the virtual ports' BPF object: %s", strerror(-err));
		return err;
	}
	bpf_map__set_max_entries(skel->maps.pm_socks, env.map_size);
	err = portmap_bpf__load(skel);
	if (err) /* the verifier's log went to libbpf's print (-v) */
		goto out;
	err = pin_maps(skel->obj, sb_portmap_maps, sb_portmap_maps_nr);
	bpf_object__for_each_program(prog, skel->obj) {
		struct bpf_link *link;

		if (err)
			break;
		link = bpf_program__attach_cgroup(prog, cg_fd);
		if (!link) {
			err = -errno;
			err_line("attach %s to the cgroup: %s", bpf_program__name(prog), strerror(-err));
			break;
		}
		err = pin_link(link, bpf_program__name(prog));
		bpf_link__destroy(link); /* the pin holds it */
	}
	if (err) { /* half the hooks would map binds without names, or names without binds */
		unpin_names(sb_portmap_links, sb_portmap_links_nr);
		unpin_names(sb_portmap_maps, sb_portmap_maps_nr);
	}
out:
	portmap_bpf__destroy(skel);
	return err;
}
