// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockbypass portmap add --cgroup CG [--default] PORT...
 * sockbypass portmap remove --cgroup CG [PORT...]
 * sockbypass portmap list [--json]
 *
 * Virtual ports: each cgroup gets its own port space for the ports it maps
 * (bpf/portmap.bpf.c does the work). This file writes the pinned maps;
 * portmap_load.c loads the programs and reads the mappings back.
 */
#include <argp.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include "sockbypass.h"
#include "portmap.h"
#include "errmsg.h"
#include "options.h"
#include "paths.h"
#include "pins.h"
#include "portmap_load.h"
#include "verbs.h"

enum pm_action { PM_LIST, PM_ADD, PM_REMOVE };

#define MAX_ARGS 64
static struct {
	enum pm_action action;
	bool action_given, is_default;
	const char *cgroup;
	int nports;
	__u32 ports[MAX_ARGS];
} req;

static const char doc[] =
	"Virtual ports: many instances of a service, each in its own cgroup, bind the\n"
	"same port. A TCP socket of CG binding a mapped PORT gets a free port the kernel\n"
	"picks; clients in CG connecting to a local address at PORT reach it; both see\n"
	"PORT in getsockname(2) and getpeername(2). Children of CG belong to it.\n"
	"\n"
	"USAGE: sockbypass portmap add --cgroup CG [--default] PORT...\n"
	"       sockbypass portmap remove --cgroup CG [PORT...]   (no PORT: all of CG's)\n"
	"       sockbypass portmap list [--json]\n"
	"\n"
	"--default: clients in no instance's cgroup reach CG's instance on PORT (else\n"
	"they get ECONNREFUSED, as with no listener). `ss -ltn` shows the real ports.\n"
	"\v"
	"Exit codes: 0 done, 2 bad usage, 3 not root, 4 virtual ports not loaded (the\n"
	"kernel refused them), 6 not a cgroup v2 directory, 12 not loaded, 15 a port\n"
	"that is not 1-65535, 18 a port already mapped in CG (or answering outsiders\n"
	"from another cgroup), 19 removing a port CG does not map.\n";

static const struct argp_option opts[] = {
	{ "cgroup", 'c', "CG", 0, "the instance's cgroup v2 directory", 0 },
	{ "default", 'd', NULL, 0, "add: this instance answers clients of no instance", 0 },
	{ "pin-dir", 'p', "PATH", 0, "where load.sh pinned (default " SB_DEFAULT_PIN_DIR ")", 0 },
	{ "json", 'j', NULL, 0, "list: as JSON", 0 },
	{ "help", 'h', NULL, OPTION_HIDDEN, "show this help", 0 },
	{},
};

static int port_exit; /* a bad port: its own exit code, after argp */

static error_t parse_arg(int key, char *arg, struct argp_state *state)
{
	char *end;
	unsigned long port;

	switch (key) {
	case 'c':
		check_path_arg(state, "--cgroup", arg);
		req.cgroup = arg;
		break;
	case 'd':
		req.is_default = true;
		break;
	case ARGP_KEY_ARG:
		if (!req.action_given) {
			req.action_given = true;
			if (!strcmp(arg, "add"))
				req.action = PM_ADD;
			else if (!strcmp(arg, "remove"))
				req.action = PM_REMOVE;
			else if (!strcmp(arg, "list"))
				req.action = PM_LIST;
			else
				argp_error(state, "'%s' is not add, remove or list", arg);
			break;
		}
		if (req.action == PM_LIST)
			argp_error(state, "list takes no ports");
		if (req.nports == MAX_ARGS)
			argp_error(state, "at most %d ports at once", MAX_ARGS);
		errno = 0;
		port = strtoul(arg, &end, 10);
		if (errno || end == arg || *end || arg[0] == '-' || port == 0 || port > 65535) {
			if (!port_exit)
				err_line("'%s' is not a port: give ports 1-65535", arg);
			port_exit = SB_EXIT_PORTS;
			break;
		}
		req.ports[req.nports++] = port;
		break;
	case ARGP_KEY_END:
		if (!req.action_given)
			argp_error(state, "say add, remove or list");
		if (req.action != PM_LIST && !req.cgroup)
			argp_error(state, "%s needs --cgroup CG", req.action == PM_ADD ? "add" : "remove");
		if (req.action == PM_ADD && !req.nports && !port_exit)
			argp_error(state, "add needs at least one PORT");
		if (req.action == PM_LIST && req.cgroup)
			argp_error(state, "list shows every cgroup; --cgroup goes with add or remove");
		if (req.is_default && req.action != PM_ADD)
			argp_error(state, "--default goes with add");
		break;
	default:
		return sb_shared_option(key, arg, state); /* --pin-dir, --json, --help */
	}
	return 0;
}

static const struct argp argp = { opts, parse_arg, "add|remove|list [PORT...]", doc, NULL, NULL,
				  NULL };

static int list(void)
{
	static struct portmap_status st;
	char path[PATH_MAX];

	portmap_gather(&st);
	if (env.format == FORMAT_JSON) {
		putchar('{');
		portmap_print(&st, FORMAT_JSON);
		puts("}");
		return SB_EXIT_OK;
	}
	if (!st.n)
		puts("no ports mapped");
	for (int i = 0; i < st.n; i++) {
		const struct portmap_entry *e = &st.entries[i];

		printf("%s %u -> ", portmap_entry_path(e, path, sizeof(path)), e->vport);
		if (e->live)
			printf("real port %u (%u socket%s)", e->real, e->live, e->live == 1 ? "" : "s");
		else
			printf("no listener yet");
		puts(e->is_default ? ", default for outsiders" : "");
	}
	return SB_EXIT_OK;
}

/* ---- changing the maps ------------------------------------------------- */

struct pm_fds {
	int ports, mapped, defaults, real;
};

static void close_fds(struct pm_fds *f)
{
	int *fds[] = { &f->ports, &f->mapped, &f->defaults, &f->real };

	for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
		if (*fds[i] >= 0)
			close(*fds[i]);
}

static int open_fds(struct pm_fds *f)
{
	f->ports = obj_get(PM_PIN_PORTS);
	f->mapped = obj_get(PM_PIN_MAPPED);
	f->defaults = obj_get(PM_PIN_DEFAULTS);
	f->real = obj_get(PM_PIN_REAL);
	if (f->ports < 0 || f->mapped < 0 || f->defaults < 0 || f->real < 0) {
		err_line("open the virtual ports' maps in %s: %s", env.pin_dir, strerror(errno));
		close_fds(f);
		return errno_exit(-errno);
	}
	return 0;
}

/* pm_mapped[port] += delta: how many cgroups map the port; [0] counts all mappings */
static int count_mapped(struct pm_fds *f, __u32 port, int delta)
{
	__u32 keys[2] = { port, 0 };

	for (int i = 0; i < 2; i++) {
		__u32 n = 0;

		bpf_map_lookup_elem(f->mapped, &keys[i], &n);
		n = delta < 0 && n == 0 ? 0 : n + delta;
		if (bpf_map_update_elem(f->mapped, &keys[i], &n, BPF_ANY))
			return -errno;
	}
	return 0;
}

static int add(struct pm_fds *f, __u64 cg)
{
	struct pm_port zero = {};
	__u64 owner;
	int i, err;

	/* every port free in CG (and its default not taken) before anything changes */
	for (i = 0; i < req.nports; i++) {
		struct pm_key key = { .cgroup = cg, .vport = req.ports[i] };
		struct pm_port v;
		bool twice = false;

		for (int j = 0; j < i; j++)
			twice |= req.ports[j] == req.ports[i];
		if (twice || !bpf_map_lookup_elem(f->ports, &key, &v)) {
			err_line("port %u is already mapped in %s; 'sockbypass portmap list' shows the "
				 "mappings", req.ports[i], req.cgroup);
			return SB_EXIT_PORT_MAPPED;
		}
		if (req.is_default && !bpf_map_lookup_elem(f->defaults, &req.ports[i], &owner) &&
		    owner != cg) {
			char path[PATH_MAX];

			if (!cgroup_path_of(owner, path, sizeof(path)))
				snprintf(path, sizeof(path), "cgroup %llu", (unsigned long long)owner);
			err_line("port %u already answers clients of no instance from %s; remove "
				 "that mapping first", req.ports[i], path);
			return SB_EXIT_PORT_MAPPED;
		}
	}
	for (i = 0; i < req.nports; i++) {
		struct pm_key key = { .cgroup = cg, .vport = req.ports[i] };

		err = bpf_map_update_elem(f->ports, &key, &zero, BPF_NOEXIST) ?
			-errno : count_mapped(f, req.ports[i], 1);
		if (!err && req.is_default &&
		    bpf_map_update_elem(f->defaults, &req.ports[i], &cg, BPF_ANY))
			err = -errno;
		if (err) {
			err_line("map port %u: %s", req.ports[i], strerror(-err));
			return errno_exit(err);
		}
		printf("mapped port %u in %s%s\n", req.ports[i], req.cgroup,
		       req.is_default ? " (default for outsiders)" : "");
	}
	return SB_EXIT_OK;
}

/*
 * Forget a mapping. Its listeners keep their real ports and their
 * connections; getsockname shows those ports from now on, and clients
 * connect to the port as asked (no one listens there: ECONNREFUSED).
 */
static int unmap(struct pm_fds *f, const struct pm_key *key)
{
	struct pm_real_key rk = {}, next, *prev = NULL;
	struct pm_key owner;
	__u64 def;

	if (bpf_map_delete_elem(f->ports, key))
		return -errno;
	count_mapped(f, key->vport, -1);
	if (!bpf_map_lookup_elem(f->defaults, &key->vport, &def) && def == key->cgroup)
		bpf_map_delete_elem(f->defaults, &key->vport);
	while (bpf_map_get_next_key(f->real, prev, &next) == 0) {
		rk = next;
		prev = &rk;
		if (!bpf_map_lookup_elem(f->real, &rk, &owner) && owner.cgroup == key->cgroup &&
		    owner.vport == key->vport)
			bpf_map_delete_elem(f->real, &rk);
	}
	return 0;
}

static int remove_ports(struct pm_fds *f, __u64 cg)
{
	static struct pm_key found[PM_PORTS_MAX];
	struct pm_key key, next, *prev = NULL;
	int i, n = 0, err;
	struct pm_port v;

	if (!req.nports) { /* every port of CG */
		while (bpf_map_get_next_key(f->ports, prev, &next) == 0 && n < PM_PORTS_MAX) {
			key = next;
			prev = &key;
			if (key.cgroup == cg)
				found[n++] = key;
		}
	}
	for (i = 0; i < req.nports; i++) {
		found[n] = (struct pm_key){ .cgroup = cg, .vport = req.ports[i] };
		if (bpf_map_lookup_elem(f->ports, &found[n], &v)) {
			err_line("port %u is not mapped in %s; 'sockbypass portmap list' shows the "
				 "mappings", req.ports[i], req.cgroup);
			return SB_EXIT_PORT_UNMAPPED;
		}
		n++;
	}
	for (i = 0; i < n; i++) {
		err = unmap(f, &found[i]);
		if (err) {
			err_line("unmap port %u: %s", found[i].vport, strerror(-err));
			return errno_exit(err);
		}
		printf("unmapped port %u in %s\n", found[i].vport, req.cgroup);
	}
	if (!n)
		printf("no ports mapped in %s\n", req.cgroup);
	return SB_EXIT_OK;
}

/*
 * The hooks see only sockets of the covered cgroup's tree: a mapping
 * elsewhere would never apply. Paths compared after resolving links.
 */
static bool under_covered(const char *cg)
{
	char covered[PATH_MAX], covered_real[PATH_MAX], real[PATH_MAX];
	size_t n;

	attached_cgroup(covered, sizeof(covered));
	if (!covered[0] || !realpath(covered, covered_real) || !realpath(cg, real))
		return true; /* cannot tell: let it be */
	n = strlen(covered_real);
	if (!strncmp(real, covered_real, n) && (real[n] == '/' || real[n] == '\0' || n == 1))
		return true;
	err_line("'%s' is outside the cgroup sockbypass covers (%s): its sockets never reach "
		 "the virtual ports' hooks; pick a cgroup under it", cg, covered_real);
	return false;
}

int cmd_portmap(int argc, char **argv)
{
	struct pm_fds f;
	int cg_fd, lock_fd, ret;
	__u64 cg;

	argp_err_exit_status = SB_EXIT_USAGE;
	argp_parse(&argp, argc, argv, 0, NULL, NULL);
	if (port_exit)
		return port_exit;
	if (need_root("sockbypass portmap", "CAP_BPF"))
		return SB_EXIT_PERM;
	if (!pin_exists(SB_PIN_LINK)) {
		err_line("sockbypass is not loaded (nothing in %s); load it with load.sh first",
			 env.pin_dir);
		return SB_EXIT_NOT_LOADED;
	}
	if (!pin_exists(PM_PIN_PORTS)) {
		err_line("virtual ports are not loaded in %s: the kernel refused their programs at "
			 "load (cgroup getsockname hooks need Linux 5.8+; load.sh -v says why)",
			 env.pin_dir);
		return SB_EXIT_KERNEL;
	}
	if (req.action == PM_LIST)
		return list();
	cg_fd = open_cgroup(req.cgroup);
	if (cg_fd < 0)
		return -cg_fd;
	if (req.action == PM_ADD && !under_covered(req.cgroup)) {
		close(cg_fd);
		return SB_EXIT_CGROUP;
	}
	cg = cgroup_id_of(cg_fd);
	close(cg_fd);
	ret = open_fds(&f);
	if (ret)
		return ret;
	/* one change at a time: two adds must not both count a port */
	lock_fd = open(env.pin_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (lock_fd >= 0)
		flock(lock_fd, LOCK_EX);
	ret = req.action == PM_ADD ? add(&f, cg) : remove_ports(&f, cg);
	if (lock_fd >= 0)
		close(lock_fd);
	close_fds(&f);
	return ret;
}
