# shellcheck shell=bash
# Helpers of the virtual ports' tests (t_portmap.sh, s_servers.sh): instance
# cgroups are children of the test's own cgroup, removed by sb_cleanup.

VPORT=9500

portmap() {
	"$SB" portmap --pin-dir "$PIN" "$@"
}

# map NAME... : VPORT mapped in each instance cgroup NAME (made here)
map() {
	local name
	for name in "$@"; do
		mkdir -p "$CG/$name"
		portmap add --cgroup "$CG/$name" "$VPORT" >/dev/null 2>"$TMP/err" ||
			fail "portmap add --cgroup $CG/$name: $(cat "$TMP/err")"
	done
}

# in_instance NAME CMD...: run CMD in the instance cgroup NAME (made if missing)
in_instance() {
	mkdir -p "$CG/$1"
	"$TOP/test/run-in-cgroup" "$CG/$1" "${@:2}"
}

