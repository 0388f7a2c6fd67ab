#!/usr/bin/env bash
# load.sh: install what is missing, build, mount bpffs if needed, load sockbypass.
set -eu
here=$(cd "$(dirname "$0")" && pwd)

# Debian package for each command, by what needs it: load.sh itself (the
# build, and the trace scripts), make test, make stress, make bench.
BUILD_PKGS="clang:clang bpftool:bpftool make:make cc:gcc pkg-config:pkg-config ip:iproute2
tcpdump:tcpdump iperf3:iperf3"
TEST_PKGS="shellcheck:shellcheck unshare:util-linux setpriv:util-linux jq:jq
systemd-analyze:systemd nft:nftables python3:python3 curl:curl man:man-db groff:groff-base"
STRESS_PKGS="redis-server:redis-server redis-benchmark:redis-tools nginx:nginx-light curl:curl
valgrind:valgrind"
BENCH_PKGS="sockperf:sockperf gnuplot:gnuplot-nox haproxy:haproxy redis-server:redis-server
redis-benchmark:redis-tools nginx:nginx-light wrk:wrk h2load:nghttp2-client
nghttpd:nghttp2-server git:git"
# make deb's; make test builds the package too, so it installs them as well
DEB_PKGS="dh:debhelper dpkg-buildpackage:dpkg-dev"

usage() {
	cat <<USAGE
Usage: sudo ./load.sh [--cgroup PATH] [--pin-dir PATH] [--trace] [-v]
       ./load.sh --deps-only [--test-deps] [--stress-deps] [--bench-deps] [--deb-deps]

Builds ./sockbypass if needed (installing clang, bpftool, libbpf-dev, and
tcpdump and iperf3 for the trace scripts, with apt-get where missing), mounts bpffs on /sys/fs/bpf if it is not
there, and loads: TCP between two sockets of this host inside the cgroup
skips the TCP/IP stack from now on. Loading twice is harmless.

  --cgroup PATH    cgroup v2 directory to cover (default: the cgroup2 root)
  --pin-dir PATH   where to pin (default /sys/fs/bpf/sockbypass)
  --trace          print socket events to the trace pipe (trace_bpf_output.sh)
  -v, --verbose    libbpf debug output
  --deps-only      only install/check the build dependencies, then exit
  --test-deps      with --deps-only: also what 'make test' needs
  --stress-deps    with --deps-only: also what 'make stress' needs (redis,
                   nginx, curl, valgrind; their services are not started)
  --bench-deps     with --deps-only: also what 'make bench' needs
  --deb-deps       with --deps-only: also what 'make deb' needs (debhelper)
  -h, --help       this text

Exit codes are the loader's (see ./sockbypass load --help), and
  10 missing packages that could not be installed, 11 build failed.
USAGE
}

err() { echo "Error: $*" >&2; }

enabled_units() {
	command -v systemctl >/dev/null 2>&1 || return 0
	systemctl list-unit-files --state=enabled --no-legend 2>/dev/null | awk '{ print $1 }' | sort
}

# apt_install PKG...: quietly, even when it has to run apt-get update first;
# what apt said is shown only if it failed. Services a package brings are not
# started (a policy-rc.d of ours while it installs, unless one is there) and
# units it enabled are disabled again: the tests run their own instances.
apt_install() {
	local log before after new rc=0 policy=/usr/sbin/policy-rc.d own_policy=0
	log=$(mktemp)
	before=$(enabled_units)
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\n# sockbypass load.sh: no service starts while it installs packages\nexit 101\n' >"$policy"
		chmod 0755 "$policy"
		own_policy=1
		# shellcheck disable=SC2064 # expanded now: the locals are gone at exit
		trap "rm -f '$policy' '$log'" EXIT
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q "$@" >"$log" 2>&1 ||
		{ apt-get update -q >>"$log" 2>&1 && apt-get install -y -q "$@" >>"$log" 2>&1; } || rc=1
	if [ "$own_policy" = 1 ]; then
		rm -f "$policy"
		trap - EXIT
	fi
	after=$(enabled_units)
	new=$(comm -13 <(echo "$before") <(echo "$after") | tr '\n' ' ')
	if [ -n "${new// /}" ]; then
		# shellcheck disable=SC2086 # one word per unit
		systemctl disable --quiet $new >/dev/null 2>&1 || true
		echo "Disabled what the packages enabled (the tests start their own): $new" >&2
	fi
	[ "$rc" = 0 ] || tail -n 5 "$log" | sed 's/^/  apt: /' >&2
	rm -f "$log"
	return "$rc"
}

# ensure_pkgs "cmd:pkg ...": install the packages of missing commands.
ensure_pkgs() {
	local pair missing=""
	for pair in "$@"; do
		command -v "${pair%%:*}" >/dev/null 2>&1 && continue
		case " $missing " in *" ${pair#*:} "*) ;; *) missing="$missing ${pair#*:}" ;; esac
	done
	[ -z "$missing" ] && return 0
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "Installing:$missing" >&2
		# shellcheck disable=SC2086 # one word per package
		apt_install $missing && return 0
	fi
	err "missing packages:$missing; install them (apt-get install$missing) and run again"
	exit 10
}

# Packages without a command to look for: the libbpf headers, libmicrohttpd's
# and python3-yaml for make test, clang's sanitizer and fuzzer runtimes for
# make stress, PostgreSQL's server for make bench.
lib_pkgs() {
	[ -e /usr/include/bpf/libbpf.h ] || echo "libbpf-dev:libbpf-dev"
	# make bench: PostgreSQL's server (pgbench alone comes with the client)
	if [ "$bench_deps" = 1 ] && ! compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null; then
		echo "postgresql:postgresql"
	fi
	# make test: the metrics endpoint's HTTP library, and YAML for the manifest
	if [ "$test_deps" = 1 ]; then
		[ -e /usr/include/microhttpd.h ] || echo "libmicrohttpd-dev:libmicrohttpd-dev"
		python3 -c 'import yaml' 2>/dev/null || echo "python3-yaml:python3-yaml"
	fi
	if [ "$stress_deps" = 1 ] &&
		! compgen -G "/usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a" >/dev/null; then
		echo "libclang-rt-dev:libclang-rt-dev"
	fi
}

deps_only=0 test_deps=0 stress_deps=0 bench_deps=0 deb_deps=0 pin_dir="" want_cgroup=0
args=()
while [ $# -gt 0 ]; do
	case "$1" in
	-h | --help) usage; exit 0 ;;
	--deps-only) deps_only=1 ;;
	--test-deps) test_deps=1 ;;
	--stress-deps) stress_deps=1 ;;
	--bench-deps) bench_deps=1 ;;
	--deb-deps) deb_deps=1 ;;
	--pin-dir | -p)
		[ $# -ge 2 ] || { err "$1 needs a path"; exit 2; }
		pin_dir=$2; args+=("$1" "$2"); shift ;;
	--pin-dir=*) pin_dir=${1#*=}; args+=("$1") ;;
	--cgroup | -c)
		[ $# -ge 2 ] || { err "$1 needs a path"; exit 2; }
		want_cgroup=1; args+=("$1" "$2"); shift ;;
	--cgroup=*) want_cgroup=1; args+=("$1") ;;
	*) args+=("$1") ;;
	esac
	shift
done

if [ "$deps_only" = 1 ]; then
	want=$BUILD_PKGS
	[ "$test_deps" = 1 ] && want="$want $TEST_PKGS $DEB_PKGS"
	[ "$stress_deps" = 1 ] && want="$want $STRESS_PKGS"
	[ "$bench_deps" = 1 ] && want="$want $BENCH_PKGS"
	[ "$deb_deps" = 1 ] && want="$want $DEB_PKGS"
	# shellcheck disable=SC2086,SC2046 # one word per command:package
	ensure_pkgs $want $(lib_pkgs)
	exit 0
fi

if [ "$(id -u)" != 0 ]; then
	err "load.sh needs root (CAP_BPF and CAP_NET_ADMIN): run 'sudo ./load.sh'"
	exit 3
fi

# In the source tree: build what is missing. Installed (make install): the
# binary sits beside this script already.
if [ -f "$here/Makefile" ]; then
	# shellcheck disable=SC2086,SC2046 # one word per command:package
	ensure_pkgs $BUILD_PKGS $(lib_pkgs)
	if ! make -s -C "$here" >/dev/null; then
		err "build failed; run 'make V=1' in $here to see why"
		exit 11
	fi
elif [ ! -x "$here/sockbypass" ]; then
	err "$here/sockbypass is missing; reinstall sockbypass"
	exit 11
fi

# Mount bpffs only where it is missing: a second mount would hide existing pins.
if [ -z "$pin_dir" ] && [ "$(stat -f -c %T /sys/fs/bpf 2>/dev/null)" != bpf_fs ]; then
	mkdir -p /sys/fs/bpf
	mount -t bpf bpf /sys/fs/bpf || { err "cannot mount bpffs on /sys/fs/bpf"; exit 5; }
fi

# No cgroup v2 at all (a pure v1 system): mount the unified hierarchy beside it.
if [ "$want_cgroup" = 0 ] && ! awk '$3 == "cgroup2" { f = 1 } END { exit !f }' /proc/mounts; then
	mkdir -p /run/sockbypass/cgroup2
	mount -t cgroup2 none /run/sockbypass/cgroup2 ||
		{ err "no cgroup v2 mounted and mounting one failed; pass --cgroup"; exit 6; }
fi

# SOCKBYPASS_BIN: another build of the loader (the tests use a sanitizer build)
exec "${SOCKBYPASS_BIN:-$here/sockbypass}" load "${args[@]}"
