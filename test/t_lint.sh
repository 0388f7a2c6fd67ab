# shellcheck shell=bash
# Static checks that need no root.

# no-root: test_shellcheck_clean
test_shellcheck_clean() {
	cd "$TOP" || fail "no $TOP"
	shellcheck -x ./*.sh test/*.sh test/run-in-cgroup test/kernels/*.sh test/kernels/initramfs-init bench/*.sh .ci/run completion/sockbypass deploy/*.sh debian/prerm || fail "shellcheck found problems"
}

# no-root: test_build_has_no_warnings
test_build_has_no_warnings() {
	local out
	out=$(make -C "$TOP" -B -s sockbypass .output/tcpcheck .output/nobpf.so .output/sockbench 2>&1 |
		grep -iE 'warning|error')
	[ -z "$out" ] || fail "compiler warnings: $out"
}
