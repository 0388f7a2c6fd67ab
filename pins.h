/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The pin directory's layout, and the sockets in the pinned map (pins.c). */
#ifndef SOCKBYPASS_PINS_H
#define SOCKBYPASS_PINS_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

struct bpf_object;
struct bpf_program;
struct bpf_link;

extern const char *const sb_local_maps[], *const sb_splice_maps[];
extern const char *const sb_portmap_maps[], *const sb_portmap_links[];
extern const size_t sb_local_maps_nr, sb_splice_maps_nr, sb_portmap_maps_nr, sb_portmap_links_nr;

void pin_path(char *buf, size_t len, const char *name);
bool pin_exists(const char *name);
int known_pins(void);          /* how many of ours are in the pin dir */
int obj_get(const char *name); /* an fd of a pinned object, or -1 (errno) */
int pin_maps(struct bpf_object *obj, const char *const *names, size_t n);
int pin_prog(struct bpf_program *prog, const char *name);
int pin_link(struct bpf_link *link, const char *name);
void unpin_names(const char *const *names, size_t n);
void unpin_all(void);
void read_percpu_counters(const char *name, __u64 *out, __u32 n);
void attached_cgroup(char *out, size_t len); /* where the pinned sockops link is */
struct sb_scope;
bool scope_read(struct sb_scope *sc); /* the pinned port scope; false if there is none */

struct drain_scan {
	unsigned int sockets;   /* in the map */
	unsigned int busy;      /* of those, with unread redirected bytes */
	unsigned long long queued;
};

/* List the pinned SOCKHASH's sockets, sb_drain counting their unread bytes;
 * remove_idle takes the sockets that hold nothing unread out of it. */
int scan_sockets(int prog_fd, int map_fd, bool remove_idle, struct drain_scan *s);
/* The drain check to pass it: the pinned one, or this build's for an older
 * build's load (fd, -1 if none is pinned) */
int drain_prog_open(int map_fd);
/* cmd_load.c: this build's sb_drain on a pinned sb_sockhash (fd, or -errno) */
int drain_prog_load(int sockhash_fd);

#endif
