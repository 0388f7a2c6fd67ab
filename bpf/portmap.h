/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Virtual ports: types and names shared by the portmap programs, the loader
 * and `sockbypass portmap`. A cgroup maps a port (the virtual port); a TCP
 * socket of that cgroup binding it binds a free port the kernel picks (the
 * real port); its clients in the same cgroup connect to the real one; both
 * see the virtual port in getsockname(2) and getpeername(2).
 */
#ifndef SOCKBYPASS_PORTMAP_H_SHARED
#define SOCKBYPASS_PORTMAP_H_SHARED

#include <linux/types.h>
#include <linux/bpf.h> /* struct bpf_spin_lock */

/* Pins, in the pin dir beside the local bypass's. */
#define PM_PIN_PORTS    "pm_ports"
#define PM_PIN_MAPPED   "pm_mapped"
#define PM_PIN_DEFAULTS "pm_defaults"
#define PM_PIN_REAL     "pm_real"
#define PM_PIN_SOCKS    "pm_socks"
#define PM_PIN_COUNTERS "pm_counters"
#define PM_MAPS PM_PIN_PORTS, PM_PIN_MAPPED, PM_PIN_DEFAULTS, PM_PIN_REAL, PM_PIN_SOCKS, \
	PM_PIN_COUNTERS
/* each program's cgroup link is pinned under the program's name */
#define PM_PROGS "pm_bind4", "pm_bind6", "pm_post_bind4", "pm_post_bind6", "pm_release", \
	"pm_connect4", "pm_connect6", "pm_getsockname4", "pm_getsockname6", \
	"pm_getpeername4", "pm_getpeername6"

#define PM_PORTS_MAX 4096   /* (cgroup, port) mappings */
#define PM_SOCKS_MAX 65536  /* sockets bound through a mapping */
#define PM_MAX_LEVEL 15     /* cgroup depth searched for an owning cgroup */

/* A mapping: cgroup (its id: the directory's inode number) and virtual port. */
struct pm_key {
	__u64 cgroup;
	__u32 vport;
	__u32 pad;
};

/*
 * What a mapping holds now. real is the port the kernel picked for the
 * first socket that bound the virtual port; others of the cgroup binding it
 * get the same real port (an SO_REUSEPORT group, or v4 and v6 listeners).
 * live counts those sockets; when the last one closes the real port is
 * forgotten, so an instance that restarts gets a new one.
 */
struct pm_port {
	struct bpf_spin_lock lock;
	__u32 real;
	__u32 live;
	__u32 pad;
};

/* pm_real's key: a real port in one network namespace. */
struct pm_real_key {
	__u64 netns;
	__u32 real;
	__u32 pad;
};

/* pm_socks's value, keyed by socket cookie: a socket bound through a mapping. */
struct pm_sock {
	struct pm_key key;
	__u64 netns;
	__u32 real;    /* the port it got (post_bind) */
	__u32 counted; /* 1: counted in its mapping's live */
};

/* Per-CPU counters, one array slot each. Keep PM_COUNTER_NAMES in step. */
enum pm_counter {
	PM_C_BINDS,     /* binds of a mapped port given a real port */
	PM_C_CONNECTS,  /* connects to a virtual port sent to its cgroup's real port */
	PM_C_DEFAULTS,  /* ... of an outsider, sent to the --default cgroup's */
	PM_C_NAMES,     /* getsockname/getpeername answers given the virtual port */
	PM_C_RACED,     /* two first binds at once: the second got a port of its own */
	PM_C_NR,
};

#define PM_COUNTER_NAMES "binds", "connects", "default_connects", "names", "raced_binds"

#endif
