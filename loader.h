/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* What loader.c, pins.c and status.c share. */
#ifndef SOCKBYPASS_LOADER_H
#define SOCKBYPASS_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>
#include "sockbypass.h"
#include "splice.h"
#include "portmap.h"

/* Exit codes: listed in --help and README.md; scripts pass them through. */
enum sb_exit {
	SB_EXIT_OK = 0,        /* done, or nothing to do (already loaded / not loaded) */
	SB_EXIT_INTERNAL = 1,  /* unexpected failure; the message says which call */
	SB_EXIT_USAGE = 2,     /* bad option or argument */
	SB_EXIT_PERM = 3,      /* not root (no CAP_BPF / CAP_NET_ADMIN) */
	SB_EXIT_KERNEL = 4,    /* the kernel lacks BPF, sockmap or cgroup BPF */
	SB_EXIT_BPFFS = 5,     /* pin dir not on a bpffs mount */
	SB_EXIT_CGROUP = 6,    /* cgroup path missing or not cgroup v2 */
	SB_EXIT_STATE = 7,     /* pin dir holds a partial or foreign state */
	SB_EXIT_LOAD = 8,      /* the verifier or libbpf refused the programs */
	SB_EXIT_DRAINING = 9,  /* unload: bypass off, but sockets still hold unread data */
	/* 10 and 11 are load.sh's: missing packages, build failed */
	SB_EXIT_NOT_LOADED = 12, /* --status, scope: nothing loaded at the pin dir */
	/* 13 and 14 are trace_lo_traffic.sh's: nothing to judge, the command failed */
	SB_EXIT_PORTS = 15,      /* a port list that is not one: port 0, > 65535, malformed */
	SB_EXIT_PORT_CONFLICT = 16, /* a port on both --only-ports and --exclude-ports */
	/* 17 is sockbypass-proxy's: it cannot listen on --listen */
	SB_EXIT_PORT_MAPPED = 18,   /* portmap add: the port is mapped in that cgroup already */
	SB_EXIT_PORT_UNMAPPED = 19, /* portmap remove: the cgroup does not map the port */
};

enum sb_mode { MODE_LOAD, MODE_UNLOAD, MODE_STATUS };
enum sb_format { FORMAT_TEXT, FORMAT_JSON, FORMAT_PROMETHEUS };

struct sb_env {
	enum sb_mode mode;
	enum sb_format format;
	const char *cgroup;
	const char *pin_dir;
	bool verbose;
	bool trace;
	double timeout;
	__u64 queue_limit;
	__u32 map_size;
	bool scope_given;        /* --only-ports or --exclude-ports was given */
	struct sb_scope *scope;  /* what they say */
	int parse_exit;          /* an option's own exit code (a bad port list) */
};

extern struct sb_env env;

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* errmsg.c */
void err_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int errno_exit(int err);
void json_string(const char *s);

/* paths.c: cgroup v2 and bpffs */
bool on_fs(const char *path, long magic);
int find_cgroup2_root(char *buf, size_t len);
int open_cgroup(const char *path);
__u64 cgroup_id_of(int cg_fd);
bool cgroup_path_of(__u64 id, char *buf, size_t len);

/* pins.c: the pin directory's layout */
void pin_path(char *buf, size_t len, const char *name);
bool pin_exists(const char *name);
int known_pins(void);
int obj_get(const char *name);
struct bpf_object;
struct bpf_program;
struct bpf_link;
extern const char *const sb_local_maps[], *const sb_splice_maps[];
extern const char *const sb_portmap_maps[], *const sb_portmap_links[];
extern const size_t sb_local_maps_nr, sb_splice_maps_nr, sb_portmap_maps_nr, sb_portmap_links_nr;
void unpin_names(const char *const *names, size_t n);
int pin_maps(struct bpf_object *obj, const char *const *names, size_t n);
int pin_prog(struct bpf_program *prog, const char *name);
int pin_link(struct bpf_link *link, const char *name);
void unpin_all(void);
void read_percpu_counters(const char *name, __u64 *out, __u32 n);
void attached_cgroup(char *out, size_t len);

struct drain_scan {
	unsigned int sockets;   /* in the map */
	unsigned int busy;      /* of those, with unread redirected bytes */
	unsigned long long queued;
};

int scan_sockets(int prog_fd, int map_fd, bool remove_idle, struct drain_scan *s);

/* features.c: what the running kernel supports */
#define SB_MIN_KERNEL "5.10" /* the sockmap iterator; see README "Kernels" */
struct sb_features {
	bool queue_len;      /* sk_psock.msg_tot_len: queues are counted, not walked */
	bool vprintk;        /* bpf_trace_vprintk: --trace works */
	bool task_in_sockops; /* current pid and comm, for trace lines */
	bool task_in_sk_msg;
	bool sleeper_hook;   /* fentry/fexit on sk_wait_data: blocking readers resume */
};
int probe_kernel(struct sb_features *f);
void warn_degraded(const struct sb_features *f, bool trace);

/* ports.c: port lists <-> struct sb_scope */
int ports_apply(struct sb_scope *sc, const char *list, enum sb_port_class class, bool remove);
#define SB_PORTS_TEXT_MAX (SB_PORTS * 6) /* the longest list ports_format can write */
void ports_format(const struct sb_scope *sc, enum sb_port_class class, char *buf, size_t len);

/* options.c */
int sb_parse_options(int argc, char **argv, unsigned int flags);
struct argp_state;
/* an absolute, non-empty path of a sane length, or argp_error() */
int check_path_arg(struct argp_state *state, const char *opt, const char *arg);

/* splice_load.c: the proxy splice's kernel side */
int splice_load(void);
struct splice_status {
	bool present;                  /* its maps are pinned */
	unsigned long long directions; /* entries of sbs_dirs: two per registered pair */
	__u64 counters[SBS_C_NR];
};
void splice_gather(struct splice_status *st);
void splice_print(const struct splice_status *st, enum sb_format format);

/* portmap_load.c, portmap.c: virtual ports */
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
void portmap_print(const struct portmap_status *st, enum sb_format format);
int do_portmap(int argc, char **argv);

/* status.c */
int do_status(void);

/* scope.c: the scope verb, and the lists in status */
int do_scope(int argc, char **argv);
void scope_print(const struct sb_scope *sc, enum sb_format format);
bool scope_read(struct sb_scope *sc);

#endif /* SOCKBYPASS_LOADER_H */
