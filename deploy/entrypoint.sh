#!/usr/bin/env bash
# The DaemonSet's container: load the bypass on this node (idempotent: a pod
# restart or a rolling update finds it loaded and changes nothing), then
# serve its metrics. Stopping the pod leaves the bypass loaded: the pins in
# the host's bpffs keep it, and its connections never notice. Only the
# unload command removes it: SOCKBYPASS_COMMAND=unload in the DaemonSet
# (kubectl set env, a rolling update) unloads every node, losing no byte.
#
#   entrypoint.sh [load|unload|ready]   (ready: the readiness probe)
#   SOCKBYPASS_COMMAND   overrides the argument (load or unload)
#   SOCKBYPASS_CGROUP    the host's cgroup to cover, as mounted in the pod
#                        (default /run/sockbypass/cgroup2: the cgroup2 root)
#   SOCKBYPASS_PIN_DIR   default /sys/fs/bpf/sockbypass (the host's bpffs)
#   SOCKBYPASS_ARGS      more load options (--only-ports 5432,6379 ...)
#   SOCKBYPASS_METRICS   where to serve /metrics (default 0.0.0.0:9477)
#   SOCKBYPASS_BINDIR    where sockbypass and sockbypass-metrics are (/usr/sbin)
set -u
bindir=${SOCKBYPASS_BINDIR:-/usr/sbin}
cgroup=${SOCKBYPASS_CGROUP:-/run/sockbypass/cgroup2}
pin_dir=${SOCKBYPASS_PIN_DIR:-/sys/fs/bpf/sockbypass}

command=${1:-load}
[ "$command" = ready ] || command=${SOCKBYPASS_COMMAND:-$command}
case "$command" in
-h | --help)
	sed -n '2,/^set -u/{ /^set -u/d; s/^# \{0,1\}//p }' "$0"
	exit 0 ;;
load)
	# shellcheck disable=SC2086 # SOCKBYPASS_ARGS is a list of options
	"$bindir/sockbypass" load --cgroup "$cgroup" --pin-dir "$pin_dir" ${SOCKBYPASS_ARGS:-} || exit
	exec "$bindir/sockbypass-metrics" --listen "${SOCKBYPASS_METRICS:-0.0.0.0:9477}" \
		--pin-dir "$pin_dir" --sockbypass "$bindir/sockbypass" ;;
unload)
	# until every reader took its bypassed bytes (exit 9: run it again)
	while :; do
		"$bindir/sockbypass" unload --pin-dir "$pin_dir"
		rc=$?
		[ "$rc" = 9 ] || break
		sleep 5
	done
	[ "$rc" = 0 ] || exit "$rc"
	# stay, so the DaemonSet shows every node done (readiness: not loaded)
	# (the sleep is a child: a stopped pod must not leave it behind)
	trap 'kill "$nap" 2>/dev/null; exit 0' TERM INT
	while :; do
		sleep 3600 &
		nap=$!
		wait "$nap"
	done ;;
ready)
	# loading: ready once loaded (status exits 0); unloading: once it is gone (12)
	"$bindir/sockbypass" status --pin-dir "$pin_dir" >/dev/null
	rc=$?
	if [ "${SOCKBYPASS_COMMAND:-load}" = unload ]; then [ "$rc" = 12 ]; else [ "$rc" = 0 ]; fi ;;
*)
	echo "Error: unknown command '$command' (load, unload or ready)" >&2
	exit 2 ;;
esac
