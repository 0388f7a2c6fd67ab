# shellcheck shell=bash
# Sourced by each benchmark script, after its --help: be root, re-run the
# script in a mount and network namespace of its own (a private lo and bpffs,
# nothing left behind), and set up test/lib.sh's cgroup there.
if [ "$(id -u)" != 0 ]; then
	echo "Error: the benchmark loads sockbypass: run 'sudo make bench'" >&2
	exit 3
fi
if [ -z "${SB_BENCH_INNER:-}" ]; then
	exec unshare -m -n --propagation private env SB_BENCH_INNER=1 "$0" "$@"
fi
top=${top:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
# shellcheck source=test/lib.sh
. "$top/test/lib.sh"
sb_setup
# CPU time of the whole machine (both ends run here), in 1/100 s
cpu_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
# context switches of the whole machine: a reader woken per write shows here
switches() { awk '$1 == "ctxt" { print $2 }' /proc/stat; }
# a signal ends the benchmark through its EXIT trap: nothing of it left running.
# Later signals are ignored, so they cannot cut the cleanup short: a group kill
# (or timeout(1) forwarding its own) sends a second one, and left the
# namespaces, test cgroup and temp directory behind.
trap 'trap "" INT TERM; exit 130' INT
trap 'trap "" INT TERM; exit 143' TERM
