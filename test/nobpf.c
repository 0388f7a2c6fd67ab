// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * LD_PRELOAD shim: makes bpf(2) fail with EINVAL for program loads and map
 * creation, as on a kernel built without BPF, sockmap or cgroup BPF; or, with
 * NOBPF_FAIL_CMD=N, only for bpf command N (e.g. 28, BPF_LINK_CREATE: the
 * last step of a load), or with NOBPF_FAIL_PROG=NAME only for loading the
 * program called NAME (as a verifier refusal would). NOBPF_KILL_CMD=N with
 * NOBPF_KILL_AT=K instead kills the process (SIGKILL) at its K-th bpf command
 * N, to leave a load half done. NOBPF_NO_HELPER=ID refuses any program
 * calling helper ID the way a kernel without that helper does (EINVAL and
 * "unknown func" in the verifier log). libbpf calls bpf(2) through glibc's
 * syscall(), which this replaces.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <linux/bpf.h>

/* Does the program call helper id? (BPF_JMP|BPF_CALL with src_reg 0) */
static int calls_helper(const union bpf_attr *attr, long id)
{
	const struct bpf_insn *insn = (const void *)(unsigned long)attr->insns;
	__u32 i;

	for (i = 0; i < attr->insn_cnt; i++)
		if (insn[i].code == (BPF_JMP | BPF_CALL) && insn[i].src_reg == 0 &&
		    insn[i].imm == id)
			return 1;
	return 0;
}

long syscall(long nr, ...)
{
	static long (*real)(long, ...);
	long a[6];
	va_list ap;
	int i;

	va_start(ap, nr);
	for (i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (nr == __NR_bpf && getenv("NOBPF_KILL_CMD")) {
		static long seen;

		if (a[0] == atol(getenv("NOBPF_KILL_CMD")) &&
		    ++seen == atol(getenv("NOBPF_KILL_AT") ? getenv("NOBPF_KILL_AT") : "1"))
			raise(SIGKILL);
	} else if (nr == __NR_bpf && getenv("NOBPF_NO_HELPER")) {
		union bpf_attr *attr = (void *)a[1];
		long id = atol(getenv("NOBPF_NO_HELPER"));

		if (a[0] == BPF_PROG_LOAD && calls_helper(attr, id)) {
			if (attr->log_buf && attr->log_size)
				snprintf((char *)(unsigned long)attr->log_buf, attr->log_size,
					 "unknown func #%ld\n", id);
			errno = EINVAL;
			return -1;
		}
	} else if (nr == __NR_bpf) {
		const char *only = getenv("NOBPF_FAIL_CMD"), *prog = getenv("NOBPF_FAIL_PROG");
		const union bpf_attr *attr = (const void *)a[1];
		int hit;

		if (prog)
			hit = a[0] == BPF_PROG_LOAD && !strncmp(attr->prog_name, prog, BPF_OBJ_NAME_LEN);
		else if (only)
			hit = a[0] == atol(only);
		else
			hit = a[0] == BPF_PROG_LOAD || a[0] == BPF_MAP_CREATE;

		if (hit) {
			errno = prog ? EACCES : EINVAL;
			return -1;
		}
	}
	if (!real)
		real = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
	return real(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}
