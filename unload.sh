#!/usr/bin/env bash
# unload.sh: turn the bypass off and remove everything load.sh made, losing no data.
set -eu
here=$(cd "$(dirname "$0")" && pwd)

usage() {
	cat <<USAGE
Usage: sudo ./unload.sh [--pin-dir PATH] [--timeout SECONDS] [-v]

Turns redirection off at once (every connection continues over TCP),
detaches from the cgroup, waits until no socket holds unread bypassed bytes
(at most --timeout, default 30 s), then removes the pins. Unloading when
nothing is loaded is harmless (exit 0). Exit 9 means readers still hold
bypassed data: the bypass is off, nothing is lost; run unload.sh again.

  --pin-dir PATH      where load.sh pinned (default /sys/fs/bpf/sockbypass)
  --timeout SECONDS   how long to wait for readers to drain (default 30)
  --cgroup PATH       accepted for symmetry with load.sh; not needed
  -v, --verbose       libbpf debug output
  -h, --help          this text
USAGE
}

args=()
while [ $# -gt 0 ]; do
	case "$1" in
	-h | --help) usage; exit 0 ;;
	--cgroup | -c) [ $# -ge 2 ] || { echo "Error: $1 needs a path" >&2; exit 2; }; shift ;;
	--cgroup=*) ;;
	*) args+=("$1") ;;
	esac
	shift
done

if [ "$(id -u)" != 0 ]; then
	echo "Error: unload.sh needs root: run 'sudo ./unload.sh'" >&2
	exit 3
fi
if [ ! -x "$here/sockbypass" ] && { [ ! -f "$here/Makefile" ] || ! make -s -C "$here" >/dev/null; }; then
	echo "Error: ./sockbypass is not built and 'make' failed; run 'sudo ./load.sh --deps-only' then 'make'" >&2
	exit 11
fi
exec "${SOCKBYPASS_BIN:-$here/sockbypass}" unload "${args[@]}"
