#!/usr/bin/env bash
# trace_bpf_output.sh: stream the lines sockbypass's programs print (load.sh --trace).
set -eu
here=$(cd "$(dirname "$0")" && pwd)

usage() {
	cat <<USAGE
Usage: sudo ./trace_bpf_output.sh [--pin-dir PATH]

Streams the kernel trace pipe, filtered to sockbypass's own lines: one per
socket event (client inserted, pair made, skipped and why). The programs
print only when loaded with 'sudo ./load.sh --trace'; without it they cost
nothing and this shows nothing. Ctrl-C stops.

  --pin-dir PATH   where load.sh pinned (default /sys/fs/bpf/sockbypass)
  -h, --help       this text
USAGE
}

pin_dir=/sys/fs/bpf/sockbypass
while [ $# -gt 0 ]; do
	case "$1" in
	-h | --help) usage; exit 0 ;;
	--pin-dir) [ $# -ge 2 ] || { echo "Error: $1 needs a path" >&2; exit 2; }; pin_dir=$2; shift ;;
	*) echo "Error: unknown argument '$1' (see --help)" >&2; exit 2 ;;
	esac
	shift
done
if [ "$(id -u)" != 0 ]; then
	echo "Error: reading the trace pipe needs root: run 'sudo ./trace_bpf_output.sh'" >&2
	exit 3
fi

# tracefs: the modern place, the debugfs one, or mount it
tracefs=""
for d in /sys/kernel/tracing /sys/kernel/debug/tracing; do
	[ -r "$d/trace_pipe" ] && { tracefs=$d; break; }
done
if [ -z "$tracefs" ]; then
	mount -t tracefs nodev /sys/kernel/tracing ||
		{ echo "Error: no tracefs and mounting it failed" >&2; exit 1; }
	tracefs=/sys/kernel/tracing
fi

if ! "$here/sockbypass" status --pin-dir "$pin_dir" 2>/dev/null | grep -q '^trace: on'; then
	echo "Note: tracing is off (or sockbypass not loaded at $pin_dir): load with 'sudo ./load.sh --trace'" >&2
fi
# grep runs in the background so that Ctrl-C or kill ends this at once, with 0
grep --line-buffered 'sockbypass: ' "$tracefs/trace_pipe" &
reader=$!
trap 'kill "$reader" 2>/dev/null; exit 0' INT TERM
wait "$reader"
