#!/usr/bin/env bash
# make bench, proxy part: sockbypass-proxy in its three modes (copy: read and
# write; splice: splice(2) through a pipe; sockmap: the kernel's verdict) and
# HAProxy (mode tcp) where it is installed, between a sockbench client and a
# sockbench backend on lo. All of it outside the covered cgroup, so the local
# bypass takes none of these connections. Per mode and round: a 64 KiB-write
# stream (Gbit/s, whole-machine CPU s per GB), 1 KiB round trips on one
# connection (mean, p99), and 1 KiB round trips across CONNS open connections.
# REPS rounds interleaved, medians. Prints a markdown table and writes it to
# bench/results/latest/proxy.md.
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
rows="$TMP/rows.tsv" # mode rep gbit cpu_s_per_gb rtt_mean rtt_p99 many_mean many_p99
: >"$rows"
MODES="copy splice sockmap"
command -v haproxy >/dev/null && MODES="$MODES haproxy"

cpu_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
field() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p" | head -n 1; }
outside() { "$top/test/run-in-cgroup" "$ORIG_CG" "$@"; }
# in the background, its pid the command's own (run-in-cgroup execs)
outside_bg() {
	"$top/test/run-in-cgroup" "$ORIG_CG" "$@" &
	PIDS+=($!)
}

load
# backends: one client at a time (stream, rr), and an epoll echo server (many)
outside_bg "$BENCH" -l 127.0.0.1:5601 -c 1 >/dev/null
outside_bg "$BENCH" -L 127.0.0.1:5602 -c 1 >/dev/null
sleep 0.3

# start_proxy MODE LISTEN_PORT BACKEND_PORT: pid in PROXY_PID, listening when it returns
start_proxy() {
	local mode=$1 lport=$2 bport=$3 _
	if [ "$mode" = haproxy ]; then
		cat >"$TMP/haproxy.cfg" <<CFG
global
	maxconn $((CONNS + 100))
defaults
	mode tcp
	timeout connect 5s
	timeout client 120s
	timeout server 120s
frontend f
	bind 127.0.0.1:$lport
	default_backend b
backend b
	server s1 127.0.0.1:$bport
CFG
		outside_bg haproxy -db -f "$TMP/haproxy.cfg" >"$TMP/proxy.err" 2>&1
	else
		outside_bg "$PROXY" --listen "127.0.0.1:$lport" --connect "127.0.0.1:$bport" \
			--mode "$mode" --pin-dir "$PIN" --quiet 2>"$TMP/proxy.err"
	fi
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

round() {
	local mode=$1 rep=$2 res t0 t1 gbit cpu rr many
	start_proxy "$mode" 5611 5601
	t0=$(cpu_ticks)
	res=$(outside "$BENCH" -m stream -a 127.0.0.1:5611 -s 65536 -t "$SECS" -c 0) || res=""
	t1=$(cpu_ticks)
	gbit=$(field gbit_s "$res")
	cpu=$(awk -v t="$((t1 - t0))" -v b="$(field bytes "$res")" 'BEGIN { if (b > 0) printf "%.2f", t / 100 / (b / 1e9); else print "" }')
	rr=$(outside "$BENCH" -m rr -a 127.0.0.1:5611 -s 1024 -t "$SECS" -c 0) || rr=""
	stop_proxy
	start_proxy "$mode" 5612 5602
	many=$(outside "$BENCH" -m many -a 127.0.0.1:5612 -s 1024 -n "$CONNS" -t "$SECS" -c 0) || many=""
	stop_proxy
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "$rep" "$gbit" "$cpu" \
		"$(field mean_us "$rr")" "$(field p99_us "$rr")" "$(field mean_us "$many")" \
		"$(field p99_us "$many")" >>"$rows"
}

for rep in $(seq "$REPS"); do
	for mode in $MODES; do round "$mode" "$rep"; done
done

median() { # column mode
	awk -F'\t' -v c="$1" -v m="$2" '$1 == m && $c != "" { print $c }' "$rows" | sort -g |
		awk '{ v[++n] = $1 } END { if (!n) print "-"; else print (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2 }'
}
table() {
	local name mode
	echo "### Proxies on lo ($REPS round(s), medians; kernel $(uname -r))"
	echo
	printf '|'
	for mode in "" $MODES; do printf ' %s |' "$mode"; done
	echo
	printf '|---|'
	for mode in $MODES; do printf -- '---:|'; done
	echo
	for name in "stream, 64 KiB writes (Gbit/s):3" "CPU s per GB (whole machine):4" \
		"1 KiB round trip, mean (µs):5" "1 KiB round trip, p99 (µs):6" \
		"1 KiB round trips over $CONNS connections, mean (µs):7" "... p99 (µs):8"; do
		printf '| %s |' "${name%:*}"
		for mode in $MODES; do printf ' %s |' "$(median "${name##*:}" "$mode")"; done
		echo
	done
}
mkdir -p "$top/bench/results/latest"
table | tee "$top/bench/results/latest/proxy.md"
