# shellcheck shell=bash
# Every user-visible failure: one line saying what to do, and its own exit code.

# expect CODE PATTERN CMD...: CMD exits CODE and its stderr+stdout match PATTERN.
expect() {
	local code=$1 pattern=$2 out rc
	shift 2
	out=$("$@" 2>&1)
	rc=$?
	[ "$rc" = "$code" ] || fail "'$*' exited $rc, expected $code: $out"
	grep -qE -- "$pattern" <<<"$out" || fail "'$*' said '$out', expected /$pattern/"
}

# no-root: test_help_everywhere
test_help_everywhere() {
	local cmd
	expect 0 "^Usage: sockbypass VERB" "$TOP/sockbypass" --help
	expect 0 "^Usage: sockbypass VERB" "$TOP/sockbypass" help
	for cmd in load unload status features; do
		expect 0 "^Usage: sockbypass $cmd " "$TOP/sockbypass" "$cmd" --help
		expect 0 "^2 bad usage, 3 not root" "$TOP/sockbypass" "$cmd" --help
	done
	expect 0 "Exit codes:" "$TOP/sockbypass" load -h
	for cmd in load.sh unload.sh trace_bpf_output.sh trace_lo_traffic.sh; do
		expect 0 "^Usage: " "$TOP/$cmd" --help
	done
	expect 0 "Usage: " "$TOP/test/run.sh" --help
	expect 0 "Exit codes:" "$TOP/sockbypass" scope --help
	expect 0 "Exit codes:" "$TOP/sockbypass" portmap --help
	expect 0 "^Usage: sockbypass-proxy" "$TOP/sockbypass-proxy" --help
	for cmd in run.sh portmap.sh proxy.sh memory.sh apps.sh; do
		expect 0 "^Usage: " "$TOP/bench/$cmd" --help
	done
}

# no-root: test_bad_arguments_give_usage_code
test_bad_arguments_give_usage_code() {
	expect 2 "unrecognized option" "$TOP/sockbypass" --bogus
	expect 2 "'extra' is not a verb of sockbypass; 'sockbypass help' lists them" "$TOP/sockbypass" extra
	expect 2 "^Usage: sockbypass VERB" "$TOP/sockbypass"
	expect 2 "unexpected argument 'extra'" "$TOP/sockbypass" load extra
	expect 2 "unrecognized option '--timeout" "$TOP/sockbypass" load --timeout 3
	expect 2 "unrecognized option '--cgroup" "$TOP/sockbypass" status --cgroup /x
	expect 2 "unrecognized option '--trace" "$TOP/sockbypass" unload --trace
	expect 2 "not a number of seconds" "$TOP/sockbypass" unload --timeout soon
	expect 2 "unrecognized option '--pin-dir" "$TOP/sockbypass" features --pin-dir /x
	expect 2 "not an absolute path" "$TOP/sockbypass" --pin-dir relative/dir
	expect 2 "empty path" "$TOP/sockbypass" --cgroup ""
	expect 2 "path too long" "$TOP/sockbypass" --pin-dir "/$(head -c 5000 /dev/zero | tr '\0' a)"
	expect 2 "not a number of seconds" "$TOP/sockbypass" --unload --timeout soon
	expect 2 "not a size of at least 64K" "$TOP/sockbypass" --queue-limit 12
	expect 2 "needs a path" "$TOP/load.sh" --pin-dir
}

# The checkout may sit where nobody cannot enter (a 0700 home directory), so
# nobody runs copies from a directory it can read.
test_not_root() {
	local dir
	dir=$(readable_copy sockbypass load.sh unload.sh Makefile)
	expect 3 "needs root.*sudo" "${NOBODY[@]}" "$dir/sockbypass" load
	expect 3 "needs root.*sudo" "${NOBODY[@]}" "$dir/sockbypass" unload
	expect 3 "needs root.*sudo" "${NOBODY[@]}" "$dir/sockbypass" status
	expect 3 "features needs root.*to probe the kernel.*sudo" "${NOBODY[@]}" "$dir/sockbypass" features
	expect 3 "needs root.*sudo" "${NOBODY[@]}" "$dir/sockbypass" --cgroup /sys/fs/cgroup
	expect 3 "needs root.*sudo ./load.sh" "${NOBODY[@]}" "$dir/load.sh"
	expect 3 "needs root.*sudo ./unload.sh" "${NOBODY[@]}" "$dir/unload.sh"
	expect 3 "scope needs root.*sudo" "${NOBODY[@]}" "$dir/sockbypass" scope
	expect 3 "portmap needs root.*sudo" "${NOBODY[@]}" "$dir/sockbypass" portmap list
	[ ! -e "$PIN" ] || fail "a failed non-root load left $PIN"
}

test_kernel_without_bpf() {
	LD_PRELOAD="$TOP/.output/nobpf.so" expect 4 "kernel lacks sockops programs.*5.10" \
		"$TOP/sockbypass" load --cgroup "$CG" --pin-dir "$PIN"
	[ ! -e "$PIN" ] || fail "left $PIN behind"
	LD_PRELOAD="$TOP/.output/nobpf.so" expect 4 "^MISSING +required +sockops programs" \
		"$TOP/sockbypass" features
}

# features: this kernel's table (every required piece there, or load would
# fail in the other cases) as text and JSON; a refused helper is MISSING and
# exits 4; a missing optional piece says what it costs.
test_features_table() {
	local out json
	out=$("$TOP/sockbypass" features) || fail "features exited $?: $out"
	grep -qE "^kernel: $(uname -r)$" <<<"$out" || fail "no kernel line: $out"
	grep -qE "^yes +required +sk_msg programs$" <<<"$out" || fail "no sk_msg row: $out"
	grep -q "MISSING *required" <<<"$out" && fail "a required piece missing here: $out"
	json=$("$TOP/sockbypass" features --json) || fail "features --json exited $?"
	jq -e '.usable == true and (.features | length) >= 20 and
		([.features[] | select(.required and (.present | not))] | length) == 0' \
		<<<"$json" >/dev/null || fail "features --json: $json"
	if bpftool btf dump file /sys/kernel/btf/vmlinux format raw | grep -q "'msg_tot_len'"; then
		jq -e '.features[] | select(.name | startswith("sk_psock.msg_tot_len")) | .present' \
			<<<"$json" >/dev/null || fail "msg_tot_len not seen: $json"
	fi
	NOBPF_NO_HELPER=113 LD_PRELOAD="$TOP/.output/nobpf.so" expect 4 \
		"MISSING +required +bpf_probe_read_kernel in sk_msg" "$TOP/sockbypass" features
	NOBPF_NO_HELPER=177 LD_PRELOAD="$TOP/.output/nobpf.so" expect 0 \
		"MISSING +optional +bpf_trace_vprintk.*: no --trace" "$TOP/sockbypass" features
	echo "result: $(grep -c '^yes' <<<"$out") of $(grep -c 'required\|optional' <<<"$out") present on $(uname -r)"
}

# without_helper ID PATTERN [OPTION...]: a load on a kernel that refuses helper
# ID (the shim answers as its verifier would) exits 4 saying PATTERN, pins nothing.
without_helper() {
	local id=$1 pattern=$2
	shift 2
	NOBPF_NO_HELPER=$id LD_PRELOAD="$TOP/.output/nobpf.so" expect 4 "$pattern" \
		"$TOP/sockbypass" --cgroup "$CG" --pin-dir "$PIN" "$@"
	[ ! -e "$PIN" ] || fail "left $PIN behind"
}

# A kernel that has the program types but not a helper they call (e.g.
# bpf_probe_read_kernel in sk_msg before it was allowed there) is named.
test_kernel_without_a_helper() {
	without_helper 113 "kernel lacks bpf_probe_read_kernel in sk_msg; sockbypass needs Linux 5.10"
}

# Before 5.16 (Debian 11's 5.10) trace lines cannot be printed: --trace is
# refused in one line.
test_trace_refused_without_vprintk() {
	without_helper 177 \
		"lacks bpf_trace_vprintk \(Linux 5.16\+\), which --trace needs; load without --trace" \
		--trace
	# (without --trace it loads there: the matrix's 5.10 guest shows it; this shim
	# cannot, as it refuses the call even where the verifier would prune it)
}

# Backpressure reads sk_psock.msg_tot_len: where the kernel has it the load is
# silent; where not, it loads and says what is degraded (seen in the matrix).
test_degraded_kernel_features_named() {
	local out
	out=$("$TOP/sockbypass" --cgroup "$CG" --pin-dir "$PIN" 2>&1) || fail "load: $out"
	if bpftool btf dump file /sys/kernel/btf/vmlinux format raw | grep -q "'msg_tot_len'"; then
		grep -q "warning: .*msg_tot_len" <<<"$out" && fail "warned on a kernel that has msg_tot_len: $out"
	else
		grep -q "warning: .*no sk_psock.msg_tot_len.*--queue-limit is checked by walking" <<<"$out" ||
			fail "no warning about --queue-limit: $out"
	fi
	echo "result: kernel $(uname -r): $(grep -c warning <<<"$out") degraded feature(s)"
	"$TOP/sockbypass" --unload --pin-dir "$PIN" >/dev/null || fail "unload"
	# where fentry cannot trace sk_wait_data (some kernels, some sandboxes)
	out=$(SOCKBYPASS_NO_SLEEPER_HOOK=1 "$TOP/sockbypass" --cgroup "$CG" --pin-dir "$PIN" 2>&1) ||
		fail "load without the sleeper hook: $out"
	grep -q "warning: cannot trace sk_wait_data() on this kernel; after a fallback to TCP, a reader blocked in recv() keeps its direction on TCP" <<<"$out" ||
		fail "no warning without the sleeper hook: $out"
	[ -e "$PIN/sb_wait_enter_link" ] && fail "a sleeper link pinned without the hook"
	return 0
}

test_pin_dir_not_on_bpffs() {
	mkdir -p "$TMP/plain"
	expect 5 "not on a bpffs mount; mount it with 'mount -t bpf bpf $TMP/plain'" \
		"$TOP/sockbypass" --cgroup "$CG" --pin-dir "$TMP/plain/sockbypass"
	[ ! -e "$TMP/plain/sockbypass" ] || fail "left a pin dir behind"
}

test_bad_cgroup_paths() {
	expect 6 "does-not-exist.*No such file.*--cgroup" \
		"$TOP/sockbypass" --cgroup "$CG/does-not-exist" --pin-dir "$PIN"
	expect 6 "not a cgroup v2 directory" "$TOP/sockbypass" --cgroup "$TMP" --pin-dir "$PIN"
	touch "$TMP/file"
	expect 6 "not a cgroup v2 directory" "$TOP/sockbypass" --cgroup "$TMP/file" --pin-dir "$PIN"
	local v1
	v1=$(awk '$3 == "cgroup" { print $2; exit }' /proc/mounts)
	if [ -n "$v1" ]; then
		expect 6 "cgroup v1 or another filesystem" "$TOP/sockbypass" --cgroup "$v1" --pin-dir "$PIN"
	fi
	[ ! -e "$PIN" ] || fail "a failed load left $PIN"
}

test_no_cgroup2_mounted() {
	# in a mount namespace of its own, so the host keeps its cgroup2 mount
	# shellcheck disable=SC2016 # expanded by the inner shell
	unshare -m --propagation private bash -c '
		awk "\$3 == \"cgroup2\" { print \$2 }" /proc/mounts | while read -r m; do umount -l "$m"; done
		"$1" --pin-dir "$2"' _ "$TOP/sockbypass" "$PIN" >"$TMP/out" 2>&1
	local rc=$?
	assert_eq "$rc" 6 "exit code without cgroup2"
	grep -q "no cgroup v2 mount in /proc/mounts" "$TMP/out" || fail "message: $(cat "$TMP/out")"
}

test_already_loaded_and_not_loaded() {
	load
	expect 0 "already loaded" "$TOP/load.sh" --cgroup "$CG" --pin-dir "$PIN"
	unload
	grep -q "unloaded" "$TMP/unload.out" || fail "unload said: $(cat "$TMP/unload.out")"
	expect 0 "not loaded" "$TOP/unload.sh" --pin-dir "$PIN"
}

test_partial_state_refused() {
	load
	# a crash between pins leaves maps but no link: load must not pile on top
	rm "$PIN/sb_sockops_link"
	expect 7 "unfinished load or unload; run 'unload.sh --pin-dir $PIN'" \
		"$TOP/load.sh" --cgroup "$CG" --pin-dir "$PIN"
	unload
	[ ! -e "$PIN" ] || fail "unload left $PIN"
}

test_bpffs_missing_load_sh_mounts_it() {
	# private mount namespace: /sys/fs/bpf here is ours to unmount and remount
	# shellcheck disable=SC2016 # expanded by the inner shell
	unshare -m --propagation private bash -c '
		while [ "$(stat -f -c %T /sys/fs/bpf)" = bpf_fs ]; do umount -l /sys/fs/bpf; done
		"$1/load.sh" --cgroup "$2" && [ "$(stat -f -c %T /sys/fs/bpf)" = bpf_fs ] &&
			[ -e /sys/fs/bpf/sockbypass/sb_sockops_link ] && "$1/unload.sh"' \
		_ "$TOP" "$CG" >"$TMP/out" 2>&1 || fail "load.sh did not mount bpffs: $(cat "$TMP/out")"
	grep -q "sockbypass loaded" "$TMP/out" || fail "no load message: $(cat "$TMP/out")"
	grep -q "sockbypass unloaded" "$TMP/out" || fail "no unload message: $(cat "$TMP/out")"
}

test_programs_refused_by_the_kernel() {
	NOBPF_FAIL_PROG=sb_sk_msg LD_PRELOAD="$TOP/.output/nobpf.so" expect 8 \
		"kernel refused the BPF programs: Permission denied" \
		"$SB" --cgroup "$CG" --pin-dir "$PIN"
	[ ! -e "$PIN" ] || fail "a refused load left $PIN"
}

test_unexpected_failure_is_internal_error() {
	# BPF_OBJ_PIN (6) fails: no user error, so exit 1 with the failing call named
	NOBPF_FAIL_CMD=6 LD_PRELOAD="$TOP/.output/nobpf.so" expect 1 "^Error: pin .*/sb_sockhash: Invalid argument" \
		"$SB" --cgroup "$CG" --pin-dir "$PIN"
	[ ! -e "$PIN" ] || fail "a failed load left $PIN"
}

test_missing_packages_named() {
	# a PATH with no compiler and no apt-get: load.sh must name the packages
	mkdir -p "$TMP/bin"
	local c
	for c in bash dirname id env; do ln -s "$(command -v "$c")" "$TMP/bin/$c"; done
	expect 10 "missing packages: clang bpftool make gcc pkg-config iproute2 tcpdump iperf3.*apt-get install" \
		env PATH="$TMP/bin" "$TOP/load.sh" --cgroup "$CG" --pin-dir "$PIN"
}

test_build_failure_reported() {
	# a copy of the sources, so the build really runs, with a compiler that fails
	mkdir -p "$TMP/tree"
	(cd "$TOP" && cp -r Makefile loader.c load.sh bpf "$TMP/tree/")
	CLANG=false expect 11 "build failed; run 'make V=1'" \
		"$TMP/tree/load.sh" --cgroup "$CG" --pin-dir "$PIN"
}

test_hostile_paths() {
	# one line, the right code, nothing left behind, for each odd path
	local long
	long="/$(head -c 4096 /dev/zero | tr '\0' a)" # PATH_MAX + 1 with the slash
	expect 2 "path too long" "$SB" --pin-dir "$long"
	expect 2 "path too long" "$SB" --cgroup "$long"
	ln -s /proc/self "$TMP/proc-link"
	expect 6 "not a cgroup v2 directory" "$SB" --cgroup "$TMP/proc-link" --pin-dir "$PIN"
	expect 5 "not on a bpffs mount" "$SB" --cgroup "$CG" --pin-dir "$TMP/proc-link/pins"
	mkdir -p "$TMP/with space"
	expect 6 "'$TMP/with space' is not a cgroup v2 directory" "$SB" --cgroup "$TMP/with space" --pin-dir "$PIN"
	local nl="$TMP/new
line"
	mkdir -p "$nl"
	expect 6 "is not a cgroup v2 directory" "$SB" --cgroup "$nl" --pin-dir "$PIN"
	# a pin dir with spaces and a newline on bpffs works, and unloads
	local odd="$TMP/bpffs/pins with space
and newline"
	"$SB" --cgroup "$CG" --pin-dir "$odd" >"$TMP/out" 2>&1 || fail "load into an odd pin dir: $(cat "$TMP/out")"
	"$TOP/unload.sh" --pin-dir "$odd" >"$TMP/out" 2>&1 || fail "unload of an odd pin dir: $(cat "$TMP/out")"
	[ ! -e "$odd" ] || fail "odd pin dir left behind"
	[ ! -e "$PIN" ] || fail "a failed load left $PIN"
	assert_eq "$(bpftool cgroup show "$CG" | grep -c sock_ops)" 0 "attachments left"
}
