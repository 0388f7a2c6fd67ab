// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * What the running kernel can do, asked before anything is loaded: a missing
 * required feature refuses the load with one line naming it; a missing
 * optional one loads with a warning saying what is degraded.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include "sockbypass.h"
#include "errmsg.h"
#include "kernel_features.h"

#define NEEDS "sockbypass needs Linux " SB_MIN_KERNEL "+ built with BPF, cgroup BPF and sockmap"

static const struct { enum bpf_prog_type t; const char *name; } prog_types[] = {
	{ BPF_PROG_TYPE_SOCK_OPS, "sockops programs" },
	{ BPF_PROG_TYPE_SK_MSG, "sk_msg programs" },
};

static const struct { enum bpf_map_type t; const char *name; } map_types[] = {
	{ BPF_MAP_TYPE_SOCKHASH, "SOCKHASH maps (CONFIG_BPF_STREAM_PARSER)" },
};

/* Every helper the programs call outside the generic map ones. */
static const struct { enum bpf_prog_type t; enum bpf_func_id id; const char *name; } helpers[] = {
	{ BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_sock_hash_update, "bpf_sock_hash_update in sockops" },
	{ BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_sock_ops_cb_flags_set, "bpf_sock_ops_cb_flags_set in sockops" },
	{ BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_get_socket_cookie, "bpf_get_socket_cookie in sockops" },
	{ BPF_PROG_TYPE_SK_MSG, BPF_FUNC_msg_redirect_hash, "bpf_msg_redirect_hash in sk_msg" },
	{ BPF_PROG_TYPE_SK_MSG, BPF_FUNC_skc_to_tcp_sock, "bpf_skc_to_tcp_sock in sk_msg" },
	{ BPF_PROG_TYPE_SK_MSG, BPF_FUNC_probe_read_kernel, "bpf_probe_read_kernel in sk_msg" },
	/* sb_drain, run by unload and status for each socket */
	{ BPF_PROG_TYPE_SCHED_CLS, BPF_FUNC_skc_to_tcp_sock, "bpf_skc_to_tcp_sock in tc (unload's drain check)" },
	{ BPF_PROG_TYPE_SCHED_CLS, BPF_FUNC_probe_read_kernel, "bpf_probe_read_kernel in tc (unload's drain check)" },
};

/*
 * May programs of type t call helper id? Loads "call id; return 0" and reads
 * the verifier's answer: libbpf_probe_bpf_helper() knows "unknown func" but
 * not the "program of this type cannot use helper" of newer kernels (6.12
 * answers so for bpf_get_current_comm in sockops). Any other complaint (the
 * arguments) means the helper itself is allowed.
 */
static bool helper_allowed(enum bpf_prog_type t, enum bpf_func_id id)
{
	struct bpf_insn insns[] = {
		{ .code = BPF_JMP | BPF_CALL, .imm = id },
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	char log[4096] = "";
	LIBBPF_OPTS(bpf_prog_load_opts, opts, .log_buf = log, .log_size = sizeof(log),
		    .log_level = 1);
	int fd;

	fd = bpf_prog_load(t, NULL, "GPL", insns, ARRAY_SIZE(insns), &opts);
	if (fd >= 0) {
		close(fd);
		return true;
	}
	return !strstr(log, "unknown func") && !strstr(log, "invalid func") &&
	       !strstr(log, "cannot use helper");
}

/*
 * Can an fentry program run on kernel function func? Loads and attaches an
 * empty one: kernels without BTF for it, without trampolines, or that keep
 * tracing from BPF (some sandboxes answer EPERM) say no here.
 */
static bool fentry_allowed(const struct btf *vmlinux, const char *func)
{
	struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = BPF_TRACE_FENTRY);
	int id = btf__find_by_name_kind(vmlinux, func, BTF_KIND_FUNC), fd, link;

	if (id <= 0)
		return false;
	opts.attach_btf_id = id;
	fd = bpf_prog_load(BPF_PROG_TYPE_TRACING, NULL, "GPL", insns, ARRAY_SIZE(insns), &opts);
	if (fd < 0)
		return false;
	link = bpf_raw_tracepoint_open(NULL, fd);
	if (link >= 0)
		close(link);
	close(fd);
	return link >= 0;
}

/* May programs of type t name the task they run in (trace lines)? */
static bool task_helpers(enum bpf_prog_type t)
{
	return helper_allowed(t, BPF_FUNC_get_current_pid_tgid) &&
	       helper_allowed(t, BPF_FUNC_get_current_comm);
}

static bool btf_has_member(const struct btf *btf, const char *type, const char *member)
{
	const struct btf_member *m;
	const struct btf_type *t;
	int id, i;

	id = btf__find_by_name_kind(btf, type, BTF_KIND_STRUCT);
	if (id < 0)
		return false;
	t = btf__type_by_id(btf, id);
	m = btf_members(t);
	for (i = 0; i < btf_vlen(t); i++, m++)
		if (!strcmp(btf__name_by_offset(btf, m->name_off), member))
			return true;
	return false;
}

static bool btf_has_enum_value(const struct btf *btf, const char *type, const char *value)
{
	const struct btf_enum *e;
	const struct btf_type *t;
	int id, i;

	id = btf__find_by_name_kind(btf, type, BTF_KIND_ENUM);
	if (id < 0)
		return false;
	t = btf__type_by_id(btf, id);
	e = btf_enum(t);
	for (i = 0; i < btf_vlen(t); i++, e++)
		if (!strcmp(btf__name_by_offset(btf, e->name_off), value))
			return true;
	return false;
}

/* One row of the table; returns present. */
static bool row(struct sb_features *f, const char *name, bool required, bool present,
		const char *without)
{
	if (f->n < SB_FEATURES_MAX)
		f->rows[f->n++] = (struct sb_feature){ name, required, present, without };
	return present;
}

#define LOST_LOAD "sockbypass cannot load"

int probe_kernel(struct sb_features *f, bool quiet)
{
	struct btf *vmlinux;
	size_t i;

	memset(f, 0, sizeof(*f));
	for (i = 0; i < ARRAY_SIZE(prog_types); i++)
		row(f, prog_types[i].name, true, libbpf_probe_bpf_prog_type(prog_types[i].t, NULL) > 0,
		    LOST_LOAD);
	for (i = 0; i < ARRAY_SIZE(map_types); i++)
		row(f, map_types[i].name, true, libbpf_probe_bpf_map_type(map_types[i].t, NULL) > 0,
		    LOST_LOAD);
	for (i = 0; i < ARRAY_SIZE(helpers); i++)
		row(f, helpers[i].name, true, helper_allowed(helpers[i].t, helpers[i].id), LOST_LOAD);

	/* CO-RE needs the kernel's own BTF; the rest is read from it. */
	vmlinux = btf__load_vmlinux_btf();
	row(f, "BTF type information (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF)", true,
	    vmlinux, LOST_LOAD);
	row(f, "cgroup bpf_link (the pinned attachment)", true,
	    vmlinux && btf_has_enum_value(vmlinux, "bpf_link_type", "BPF_LINK_TYPE_CGROUP"), LOST_LOAD);
	row(f, "the sockops snd_nxt/rcv_nxt fields (connection pairing)", true,
	    vmlinux && btf_has_member(vmlinux, "bpf_sock_ops", "snd_nxt"), LOST_LOAD);
	row(f, "the sock/tcp_sock/sk_psock layout the programs read", true,
	    vmlinux && btf_has_member(vmlinux, "sock_common", "skc_cookie") &&
	    btf_has_member(vmlinux, "tcp_sock", "copied_seq") &&
	    btf_has_member(vmlinux, "sk_psock", "ingress_msg"), LOST_LOAD);

	/* optional: each row says what its absence costs */
	f->queue_len = row(f, "sk_psock.msg_tot_len (queued redirected bytes counted)", false,
			   vmlinux && btf_has_member(vmlinux, "sk_psock", "msg_tot_len"),
			   "queues are walked (at most 256 messages): small writes fall back "
			   "to TCP sooner; FIONREAD leaves redirected bytes out");
	f->sleeper_hook = row(f, "fentry on sk_wait_data() (blocked readers counted)", false,
			      vmlinux && fentry_allowed(vmlinux, "sk_wait_data"),
			      "after a fallback, a reader blocked in recv() keeps its direction "
			      "on TCP");
	/* trace lines have more than 3 arguments: bpf_printk needs trace_vprintk */
	f->vprintk = row(f, "bpf_trace_vprintk in sockops and sk_msg (Linux 5.16+)", false,
			 helper_allowed(BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_trace_vprintk) &&
			 helper_allowed(BPF_PROG_TYPE_SK_MSG, BPF_FUNC_trace_vprintk),
			 "no --trace");
	f->task_in_sockops = row(f, "the current task in sockops", false,
				 task_helpers(BPF_PROG_TYPE_SOCK_OPS),
				 "sockops trace lines say 'pid 0 -'");
	f->task_in_sk_msg = row(f, "the current task in sk_msg", false,
				task_helpers(BPF_PROG_TYPE_SK_MSG), "sk_msg trace lines say 'pid 0 -'");
	row(f, "sk_skb stream verdict programs (the proxy splice)", false,
	    libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_SK_SKB, NULL) > 0,
	    "sockbypass-proxy uses splice(2) instead of sockmap");
	row(f, "cgroup getsockname/getpeername hooks (virtual ports, Linux 5.8+)", false,
	    vmlinux && btf_has_enum_value(vmlinux, "bpf_attach_type", "BPF_CGROUP_INET4_GETSOCKNAME"),
	    "no 'sockbypass portmap'");
	btf__free(vmlinux);

	for (i = 0; i < (size_t)f->n; i++) {
		if (!f->rows[i].required || f->rows[i].present)
			continue;
		if (!quiet)
			err_line("this kernel lacks %s; " NEEDS, f->rows[i].name);
		return -SB_EXIT_KERNEL;
	}
	return 0;
}

void warn_degraded(const struct sb_features *f, bool trace)
{
	if (trace && (!f->task_in_sockops || !f->task_in_sk_msg))
		fprintf(stderr, "sockbypass: warning: this kernel does not let %s programs ask "
			"for the current task: their trace lines say 'pid 0 -'\n",
			!f->task_in_sockops ? "sockops" : "sk_msg");
	if (!f->queue_len)
		fprintf(stderr, "sockbypass: warning: this kernel does not count a socket's queued "
			"redirected bytes (no sk_psock.msg_tot_len); --queue-limit is checked by "
			"walking at most %d queued messages, so many small writes fall back to "
			"TCP sooner\n", SB_WALK_SEND_MAX);
	if (!f->sleeper_hook)
		fprintf(stderr, "sockbypass: warning: cannot trace sk_wait_data() on this kernel; "
			"after a fallback to TCP, a reader blocked in recv() keeps its direction on "
			"TCP\n");
}
