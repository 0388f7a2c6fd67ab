#!/usr/bin/env bash
# make bench, proxy part: sockbypass-proxy in its three modes (copy: read and
# write; splice: splice(2) through a pipe; sockmap: the kernel's verdict) and
# HAProxy (mode tcp, with and without option splice-auto) where it is
# installed. Clients and backends are in network namespaces of their own,
# joined to the proxy's by veth pairs, so the proxy's sockets are real TCP
# as a gateway's are; nothing is in the covered cgroup, so the local bypass
# takes none of it. Per mode and round: iperf3 with one and with 8 streams
# (Gbit/s, whole-machine CPU s per GB), 1 KiB round trips on one connection
# (mean, p99) and across CONNS open connections (mean, p99, requests/s; CPU
# µs and context switches per request over the timed window: the machine's,
# and the proxy's own with the kernel's workers, where sockmap mode's bytes
# move). REPS rounds interleaved, medians.
# Prints a markdown table and writes it to bench/results/latest/proxy.md.
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)

case "${1:-}" in
-h | --help)
	echo "Usage: sudo make bench [QUICK=1]   (this is its proxy part: bench/proxy.sh)"
	exit 0 ;;
esac
# shellcheck source=bench/enter.sh
. "$here/enter.sh"
BENCH="$top/.output/sockbench"
PROXY="$top/sockbypass-proxy"
if [ "${QUICK:-0}" = 1 ]; then
	REPS=1 SECS=1 CONNS=${CONNS:-100}
else
	REPS=3 SECS=2 CONNS=${CONNS:-}
fi
# 10,000 connections through a proxy: 20,000 sockets in the proxy, four
# pipe fds per pair in splice mode, the client's and backend's sockets
ulimit -Hn 1048576 2>/dev/null
ulimit -n "$(ulimit -Hn)"
# where the hard limit is lower (a container), as many as splice mode fits
if [ -z "$CONNS" ]; then
	CONNS=$(($(ulimit -n) >= 60100 ? 10000 : ($(ulimit -n) - 100) / 6 / 500 * 500))
fi
# and, there, as many as the modes with two fds per pair fit (copy, sockmap,
# HAProxy without splice): a second set of rows, nearer the published 10,000
MANY=$(($(ulimit -n) >= 20100 ? 10000 : ($(ulimit -n) - 100) / 2 / 500 * 500))
[ "${QUICK:-0}" = 1 ] || [ "$MANY" -le "$CONNS" ] && MANY=0
rows="$TMP/rows.tsv" # mode rep, then the columns of table's rows
: >"$rows"
# PROXY_MODES="copy sockmap": only those (a quick comparison)
if [ -n "${PROXY_MODES:-}" ]; then MODES=$PROXY_MODES; else
	MODES="copy splice sockmap"
	command -v haproxy >/dev/null && MODES="$MODES haproxy haproxy-splice"
fi

field() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p" | head -n 1; }
outside() { "$top/test/run-in-cgroup" "$ORIG_CG" "$@"; }
# in the background, its pid the command's own (run-in-cgroup and ip netns exec exec)
outside_bg() {
	"$top/test/run-in-cgroup" "$ORIG_CG" "$@" &
	PIDS+=($!)
}

# client namespace 10.198.1.1 -- 10.198.1.2 proxy -- 10.198.2.2 ... 10.198.2.1 backend namespace
CLI="sbpx-c-$$" SRV="sbpx-b-$$"
new_netns "$CLI"
new_netns "$SRV"
ip link add sbpx-c type veth peer name sbpx-c1 netns "$CLI"
ip link add sbpx-b type veth peer name sbpx-b1 netns "$SRV"
ip addr add 10.198.1.2/24 dev sbpx-c
ip addr add 10.198.2.2/24 dev sbpx-b
ip link set sbpx-c up
ip link set sbpx-b up
ip -n "$CLI" addr add 10.198.1.1/24 dev sbpx-c1
ip -n "$SRV" addr add 10.198.2.1/24 dev sbpx-b1
ip -n "$CLI" link set sbpx-c1 up
ip -n "$SRV" link set sbpx-b1 up
in_cli() { outside ip netns exec "$CLI" "$@"; }

load
# backends: one client at a time (rr), an epoll echo server (many), iperf3
outside_bg ip netns exec "$SRV" "$BENCH" -l 10.198.2.1:5601 -c 1 >/dev/null
outside_bg ip netns exec "$SRV" "$BENCH" -L 10.198.2.1:5602 -c 1 >/dev/null
outside_bg ip netns exec "$SRV" iperf3 -s -p 5603 >/dev/null 2>&1
if [ "$MANY" != 0 ]; then
	i=0
	for _ in $MODES; do
		outside_bg ip netns exec "$SRV" "$BENCH" -L "10.198.2.1:$((5630 + i))" -c 1 >/dev/null
		i=$((i + 1))
	done
fi
sleep 0.5

# start_proxy MODE LISTEN_PORT BACKEND_PORT: pid in PROXY_PID, listening when it returns
start_proxy() {
	local mode=$1 lport=$2 bport=$3 _ maxconn=$CONNS
	case $mode in
	haproxy*)
		# splice-auto's pipes take fds too: only plain mode tcp fits MANY
		[ "$mode" = haproxy ] && [ "$MANY" -gt "$CONNS" ] && maxconn=$MANY
		cat >"$TMP/haproxy.cfg" <<CFG
global
	maxconn $((maxconn + 100))
defaults
	mode tcp
	timeout connect 5s
	timeout client 120s
	timeout server 120s
	$([ "$mode" = haproxy-splice ] && echo "option splice-auto")
frontend f
	bind 10.198.1.2:$lport
	default_backend b
backend b
	server s1 10.198.2.1:$bport
CFG
		outside_bg haproxy -db -f "$TMP/haproxy.cfg" >"$TMP/proxy.err" 2>&1 ;;
	*)
		outside_bg "$PROXY" --listen "10.198.1.2:$lport" --connect "10.198.2.1:$bport" \
			--mode "$mode" --pin-dir "$PIN" --quiet 2>"$TMP/proxy.err" ;;
	esac
	PROXY_PID=$!
	for _ in $(seq 100); do
		ss -ltnH "sport = :$lport" | grep -q . && return 0
		sleep 0.05
	done
	echo "$mode did not listen: $(cat "$TMP/proxy.err")" >&2
	exit 1
}
stop_proxy() {
	kill "$PROXY_PID" 2>/dev/null
	wait "$PROXY_PID" 2>/dev/null
}

# iperf3 STREAMS through the proxy on 5613: "Gbit/s CPU-s-per-GB"
streams() {
	local t0 t1 res
	t0=$(cpu_ticks)
	res=$(in_cli iperf3 -c 10.198.1.2 -p 5613 -t "$SECS" -P "$1" -J 2>&1)
	t1=$(cpu_ticks)
	jq -r --arg t "$((t1 - t0))" '.end.sum_received | "\(.bits_per_second / 1e9 * 100 | floor / 100) " +
		"\(if .bytes > 0 then ($t | tonumber) / 100 / (.bytes / 1e9) * 100 | floor / 100 else "" end)"' \
		<<<"$res" 2>/dev/null || echo " "
}

# COUNT open connections through the proxy on PORT, 1 KiB requests in turn;
# CPU over the timed window only (set-up left out): the machine's, and the
# proxy's with the kernel workers its sockets use
requests() { # port count
	in_cli "$BENCH" -m many -a "10.198.1.2:$1" -s 1024 -n "$2" -t "$SECS" -c 0 -p "$PROXY_PID"
}

round() { # mode rep index
	local mode=$1 rep=$2 one eight rr many most=""
	start_proxy "$mode" 5613 5603
	one=$(streams 1)
	eight=$(streams 8)
	stop_proxy
	start_proxy "$mode" 5611 5601
	rr=$(in_cli "$BENCH" -m rr -a 10.198.1.2:5611 -s 1024 -t "$SECS" -c 0) || rr=""
	stop_proxy
	start_proxy "$mode" 5612 5602
	many=$(requests 5612 "$CONNS") || many=""
	stop_proxy
	# ports of the mode's own: the last round's MANY connections are in
	# TIME_WAIT, and two modes' would need more ephemeral ports than there are
	case "$MANY:$mode" in
	0:* | *:splice | *:haproxy-splice) ;;
	*) start_proxy "$mode" "$((5620 + $3))" "$((5630 + $3))"
	   most=$(requests "$((5620 + $3))" "$MANY") || most=""
	   stop_proxy ;;
	esac
	# one and eight are "Gbit/s CPU": two columns each once the spaces are tabs
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "$rep" \
		"$one" "$eight" "$(field mean_us "$rr")" "$(field p99_us "$rr")" "$(field mean_us "$many")" \
		"$(field p99_us "$many")" "$(field rtt_per_s "$many")" "$(field cpu_us "$many")" \
		"$(field side_cpu_us "$many")" "$(field switches "$many")" "$(field p99_us "$most")" \
		"$(field rtt_per_s "$most")" "$(field cpu_us "$most")" "$(field side_cpu_us "$most")" \
		"$(field worker_cpu_us "$many")" |
		tr ' ' '\t' >>"$rows"
}

for rep in $(seq "$REPS"); do
	i=0
	for mode in $MODES; do
		round "$mode" "$rep" "$i"
		i=$((i + 1))
	done
done

median() { # column mode
	awk -F'\t' -v c="$1" -v m="$2" '$1 == m && $c != "" { print $c }' "$rows" | sort -g |
		awk '{ v[++n] = $1 } END { if (!n) print "-"; else print (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2 }'
}
table() {
	local name mode
	echo "### Proxies between network namespaces over veth ($REPS round(s), medians; kernel $(uname -r))"
	echo
	[ "$MANY" = 0 ] || echo "Open files are limited to $(ulimit -n) here: $CONNS connections is what splice mode fits (six fds a pair), $MANY what two fds a pair fit (not the splice modes, \"-\")."
	[ "$MANY" = 0 ] || echo
	printf '|'
	for mode in "" $MODES; do printf ' %s |' "$mode"; done
	echo
	printf '|---|'
	for mode in $MODES; do printf -- '---:|'; done
	echo
	for name in "iperf3, 1 stream (Gbit/s):3" "... CPU s per GB (whole machine):4" \
		"iperf3, 8 streams (Gbit/s):5" "... CPU s per GB:6" \
		"1 KiB round trip, mean (µs):7" "1 KiB round trip, p99 (µs):8" \
		"$CONNS connections, 1 KiB requests: mean (µs):9" "... p99 (µs):10" \
		"... requests/s:11" "... CPU µs per request (whole machine):12" \
		"... CPU µs per request (the proxy and kernel workers):13" \
		"... of which kernel workers (kworker, ksoftirqd):19" \
		"... context switches per request (whole machine):14" \
		"$MANY connections: p99 (µs):15" "... requests/s:16" \
		"... CPU µs per request (whole machine):17" \
		"... CPU µs per request (the proxy and kernel workers):18"; do
		case "$MANY:${name##*:}" in 0:1[5-8]) continue ;; esac # the MANY rows
		printf '| %s |' "${name%:*}"
		for mode in $MODES; do printf ' %s |' "$(median "${name##*:}" "$mode")"; done
		echo
	done
}
mkdir -p "$top/bench/results/latest"
table | tee "$top/bench/results/latest/proxy.md"
