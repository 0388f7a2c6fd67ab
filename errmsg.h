/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* How every part of sockbypass reports a failure: one line, one exit code. */
#ifndef SOCKBYPASS_ERRMSG_H
#define SOCKBYPASS_ERRMSG_H

/* Exit codes: listed in --help, sockbypass(8) and README.md; scripts pass them through. */
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
	SB_EXIT_NOT_LOADED = 12, /* status, scope, portmap: nothing loaded at the pin dir */
	/* 13 and 14 are trace_lo_traffic.sh's: nothing to judge, the command failed */
	SB_EXIT_PORTS = 15,      /* a port list that is not one: port 0, > 65535, malformed */
	SB_EXIT_PORT_CONFLICT = 16, /* a port on both --only-ports and --exclude-ports */
	/* 17 is sockbypass-proxy's: it cannot listen on --listen */
	SB_EXIT_PORT_MAPPED = 18,   /* portmap add: the port is mapped in that cgroup already */
	SB_EXIT_PORT_UNMAPPED = 19, /* portmap remove: the cgroup does not map the port */
	/* 20 is sockbypass-proxy's: --mode sockmap, sockbypass loaded by another version */
};

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* "Error: ..." on stderr */
void err_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* 0 as root; else "WHO needs root (CAPS): run it with sudo" and SB_EXIT_PERM */
int need_root(const char *who, const char *caps);
/* the exit code of a failed call's -errno: no permission, or internal */
int errno_exit(int err);
/* s as a JSON string on stdout, quotes and escapes included */
void json_string(const char *s);

#endif
