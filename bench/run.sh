#!/usr/bin/env bash
# make bench [QUICK=1]: plain loopback TCP, sockbypass and AF_UNIX, interleaved
# run by run, in a network namespace, cgroup and bpffs of its own. Prints
# markdown tables (medians, min-max, on/off ratios pair by pair) and writes
# them with gnuplot PNGs to bench/results/<time>/ and bench/results/latest/.
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)

case "${1:-}" in
-h | --help)
	echo "Usage: sudo make bench [QUICK=1]   (QUICK: a headline run in under a minute)"
	exit 0 ;;
esac
# shellcheck source=bench/enter.sh
. "$here/enter.sh"
BENCH="$top/.output/sockbench"

if [ "${QUICK:-0}" = 1 ]; then
	TOOLS=${TOOLS:-0} # iperf3 and sockperf beside sockbench: off for the headline run
	REPS=3 SECS=1
	STREAM_SIZES="1024 65536"
	RR_SIZES="1024"
	PLACEMENTS=${PLACEMENTS:-split}
	EXTRAS=${EXTRAS:-0} # echo 250k, many connections, veth: full runs by default
else
	TOOLS=${TOOLS:-1}
	REPS=5 SECS=2
	STREAM_SIZES="64 1024 4096 16384 64512 65536 262144 1048576"
	RR_SIZES="64 1024 16384"
	PLACEMENTS="split same"
	EXTRAS=${EXTRAS:-1}
fi

stamp=$(date -u +%Y%m%d-%H%M%S)
out="$top/bench/results/$stamp"
mkdir -p "$out"
raw="$out/raw.tsv" # bench placement size mode rep value lo_bytes valid
: >"$out/slab-caches.txt" # placement conns mode cache:bytes,... (sockbench -m many)
printf 'bench\tplacement\tsize\tmode\trep\tvalue\tlo_bytes\tvalid\n' >"$raw"

# shellcheck disable=SC2119 # load passes loader options, none here
load
# bytes sent on this namespace's lo (/proc/net/dev follows the network
# namespace; /sys/class/net would show the host's lo)
lo_bytes() { awk '$1 == "lo:" { print $10 }' /proc/net/dev; }
# run time and runs of a program (kernel.bpf_stats_enabled): sb_sk_msg by default
prog_stats() { bpftool -j prog show pinned "$PIN/${1:-sb_sk_msg}" | jq -r '"\(.run_time_ns // 0) \(.run_cnt // 0)"'; }
# stream_pass runs: sockets stay in the map, the sk_msg program runs, but every
# message goes to TCP (sb_config.enabled = 0, as during unload): what the
# sk_msg send path costs by itself
set_redirect() { # 0|1
	local rest
	read -ra rest < <(bpftool -j map lookup pinned "$PIN/sb_config" key 0 0 0 0 | jq -r '.value[4:] | join(" ")')
	bpftool map update pinned "$PIN/sb_config" key 0 0 0 0 value "$1" 0 0 0 "${rest[@]}"
}
stats_was=$(sysctl -n kernel.bpf_stats_enabled)
sysctl -qw kernel.bpf_stats_enabled=1
trap 'sysctl -qw kernel.bpf_stats_enabled="$stats_was"; sb_cleanup' EXIT

# servers for one placement: off = plain TCP (outside the covered cgroup),
# on = TCP inside it (bypassed), unix = AF_UNIX
start_servers() {
	local cpu=$1
	stop_servers
	"$top/test/run-in-cgroup" "$ORIG_CG" "$BENCH" -l 127.0.0.1:5001 -c "$cpu" >/dev/null &
	SERVERS=($!)
	"$BENCH" -l 127.0.0.1:5002 -c "$cpu" >/dev/null &
	SERVERS+=($!)
	"$BENCH" -l "unix:$TMP/bench.sock" -c "$cpu" >/dev/null &
	SERVERS+=($!)
	# many connections at once: epoll echo servers
	"$top/test/run-in-cgroup" "$ORIG_CG" "$BENCH" -L 127.0.0.1:5011 -c "$cpu" >/dev/null &
	SERVERS+=($!)
	"$BENCH" -L 127.0.0.1:5012 -c "$cpu" >/dev/null &
	SERVERS+=($!)
	"$BENCH" -L "unix:$TMP/many.sock" -c "$cpu" >/dev/null &
	SERVERS+=($!)
	# the packaged tools, plain and bypassed: iperf3 (stream), sockperf (ping-pong)
	"$top/test/run-in-cgroup" "$ORIG_CG" taskset -c "$cpu" iperf3 -s -p 5201 >/dev/null 2>&1 &
	SERVERS+=($!)
	taskset -c "$cpu" iperf3 -s -p 5202 >/dev/null 2>&1 &
	SERVERS+=($!)
	"$top/test/run-in-cgroup" "$ORIG_CG" taskset -c "$cpu" sockperf server -i 127.0.0.1 -p 5301 --tcp \
		>/dev/null 2>&1 &
	SERVERS+=($!)
	taskset -c "$cpu" sockperf server -i 127.0.0.1 -p 5302 --tcp >/dev/null 2>&1 &
	SERVERS+=($!)
	PIDS+=("${SERVERS[@]}")
	sleep 0.3
}
stop_servers() {
	local p
	for p in "${SERVERS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	SERVERS=()
}

# run BENCH PLACEMENT SIZE MODE REP CLIENT_CPU: one measurement, appended to $raw
run_one() {
	local bench=$1 placement=$2 size=$3 mode=$4 rep=$5 cpu=$6 addr key value before after moved valid
	local res ticks ctxt prog sockops conns=0
	case $mode in
	off) addr=127.0.0.1:5001 ;;
	on) addr=127.0.0.1:5002 ;;
	unix) addr="unix:$TMP/bench.sock" ;;
	esac
	case $bench in
	stream | stream_pass) key=gbit_s ;;
	rr | echo250k | many) key=mean_us ;;
	conn) key=conn_per_s ;;
	esac
	local cmd port
	port=$([ "$mode" = off ] && echo 1 || echo 2)
	case $bench in
	iperf3) key=gbit_s
		cmd=(taskset -c "$cpu" iperf3 -c 127.0.0.1 -p "520$port" -l "$size" -t "$SECS" -J) ;;
	sockperf) key=mean_us
		cmd=(taskset -c "$cpu" sockperf ping-pong -i 127.0.0.1 -p "530$port" --tcp -m "$size"
			-t "$SECS") ;;
	echo250k) # the published experiment: 250,000 echoes of 1 KiB, average RTT
		cmd=("$BENCH" -m rr -a "$addr" -s "$size" -n 250000 -c "$cpu") ;;
	many) # $size connections open at once, 1 KiB round trips on each in turn
		conns=$size
		addr=${addr/:500[12]/:501$port}; addr=${addr/bench.sock/many.sock}
		cmd=("$BENCH" -m many -a "$addr" -s 1024 -n "$size" -t "$SECS" -c "$cpu") ;;
	stream_pass) cmd=("$BENCH" -m stream -a "$addr" -s "$size" -t "$SECS" -c "$cpu") ;;
	*) cmd=("$BENCH" -m "$bench" -a "$addr" -s "$size" -t "$SECS" -c "$cpu") ;;
	esac
	[ "$mode" = off ] && cmd=("$top/test/run-in-cgroup" "$ORIG_CG" "${cmd[@]}")
	before=$(lo_bytes)
	ticks=$(cpu_ticks) ctxt=$(switches) prog=$(prog_stats) sockops=$(prog_stats sb_sockops)
	[ "$bench" = stream_pass ] && [ "$mode" = on ] && set_redirect 0
	res=$("${cmd[@]}" 2>&1)
	[ "$bench" = stream_pass ] && [ "$mode" = on ] && set_redirect 1
	ticks=$(($(cpu_ticks) - ticks)) ctxt=$(($(switches) - ctxt)) prog="$prog $(prog_stats)"
	sockops="$sockops $(prog_stats sb_sockops)"
	after=$(lo_bytes)
	case $bench in
	iperf3) # Gbit/s received; bytes moved for the validity check
		res="gbit_s=$(jq '.end.sum_received.bits_per_second / 1e9' <<<"$res" 2>/dev/null)
			bytes=$(jq '.end.sum_received.bytes' <<<"$res" 2>/dev/null)" ;;
	sockperf) # its figures are half the round trip; report round trips like sockbench
		res="mean_us=$(sed -n 's/.*Summary: Latency is \([0-9.]*\) usec.*/\1/p' <<<"$res" |
			awk '{ print $1 * 2 }') $(awk '/percentile 50.000 =/ { printf "p50_us=%s ", $NF * 2 }
			/percentile 99.000 =/ { printf "p99_us=%s ", $NF * 2 }' <<<"$res")" ;;
	esac
	value=$(tr ' \t' '\n' <<<"$res" | sed -n "s/^$key=//p" | head -n 1)
	# a bypassed run is valid only if its data did not cross lo (handshakes may)
	valid=1
	if [ "$mode" = on ] && [ "$bench" != conn ] && [ "$bench" != stream_pass ]; then
		case $bench in
		stream) moved=$(tr ' ' '\n' <<<"$res" | sed -n 's/^bytes=//p') ;;
		iperf3) moved=$(tr ' \t' '\n' <<<"$res" | sed -n 's/^bytes=//p') ;;
		sockperf) moved=$((size * 2)) ;; # sockperf does not say how many: lo must stay ~empty
		rr) moved=$(awk -v r="$(tr ' ' '\n' <<<"$res" | sed -n 's/^rtt_per_s=//p')" \
			-v s="$size" -v t="$SECS" 'BEGIN { printf "%d", r * t * s * 2 }') ;;
		echo250k) moved=$((250000 * size * 2)) ;;
		many) moved=$(awk -v r="$(tr ' ' '\n' <<<"$res" | sed -n 's/^rtt_per_s=//p')" \
			-v t="$SECS" 'BEGIN { printf "%d", r * t * 2048 }') ;;
		esac
		# handshakes and FINs cross lo: ~380 bytes a connection
		[ $((after - before)) -le $((moved / 100 + 20000 + ${conns:-0} * 512)) ] || valid=0
	fi
	record "$bench" "${value:-nan}"
	# how much of a bypassed stream TCP carried after fallbacks (every run)
	case $mode-$bench in on-stream | on-iperf3)
		valid=1 record "tcp_share_$bench" "$(awk -v l=$((after - before)) -v m="${moved:-0}" \
			'BEGIN { if (m > 0) printf "%.1f", 100 * l / m }')" ;;
	esac
	# what else the same run tells: CPU cost, connection p99, kernel memory
	case $bench in
	stream) record cpu_stream "$(field bytes | awk -v t="$ticks" '$1 > 0 { printf "%.3f", t / 100 / ($1 / 1e9) }')"
		record switches_per_write "$(field bytes | awk -v c="$ctxt" -v s="$size" '$1 > 0 { printf "%.3f", c / ($1 / s) }')"
		[ "$mode" = on ] && record prog_ns "$(prog_ns)" ;;
	rr) record cpu_rr "$(awk -v t="$ticks" -v r="$(field rtt_per_s)" -v s="$SECS" \
		'BEGIN { if (r > 0) printf "%.2f", t / 100 / (r * s) * 1e6 }')"
		record rr_p50 "$(field p50_us)"
		record rr_p99 "$(field p99_us)"
		[ "$mode" = on ] && record rr_prog_ns "$(prog_ns)" ;;
	sockperf) record sockperf_p50 "$(field p50_us)"
		record sockperf_p99 "$(field p99_us)" ;;
	conn) record conn_p99 "$(field p99_us)"
		# sockops time per connection: 16 callbacks, the SOCKHASH insert included
		[ "$mode" = on ] && record sockops_ns "$(awk -v r="$(field conn_per_s)" -v t="$SECS" \
			'r > 0 { printf "%.0f", ($3 - $1) / (r * t) }' <<<"$sockops")" ;;
	many) record many_slab "$(field slab_per_conn)"
		# which kernel objects: the last round's figure per mode wins
		sed -i "/^$placement $size $mode /d" "$out/slab-caches.txt"
		echo "$placement $size $mode $(field slab_caches)" >>"$out/slab-caches.txt" ;;
	esac
}
field() { tr ' \t' '\n' <<<"$res" | sed -n "s/^$1=//p" | head -n 1; }
# sk_msg's run time per run over the run in progress ($prog: before and after)
prog_ns() { awk '$4 > $2 { printf "%.0f", ($3 - $1) / ($4 - $2) }' <<<"$prog"; }
record() { # bench value: one row of raw.tsv for the run in progress
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$placement" "$size" "$mode" "$rep" \
		"${2:-nan}" $((after - before)) "$valid" >>"$raw"
}

# The container case: iperf3 between two namespaces joined by a veth pair,
# both ends outside (off) or inside (on) the covered cgroup.
setup_veth() {
	new_netns "sbbench-a-$$"
	new_netns "sbbench-b-$$"
	ip link add sbb-a netns "sbbench-a-$$" type veth peer name sbb-b netns "sbbench-b-$$"
	ip -n "sbbench-a-$$" addr add 10.199.0.1/24 dev sbb-a
	ip -n "sbbench-b-$$" addr add 10.199.0.2/24 dev sbb-b
	ip -n "sbbench-a-$$" link set sbb-a up
	ip -n "sbbench-b-$$" link set sbb-b up
	# cgroup first: ip netns exec mounts a fresh /sys, without the cgroup mount
	"$top/test/run-in-cgroup" "$ORIG_CG" ip netns exec "sbbench-b-$$" iperf3 -s -p 5401 >/dev/null 2>&1 &
	PIDS+=($!)
	ip netns exec "sbbench-b-$$" iperf3 -s -p 5402 >/dev/null 2>&1 &
	PIDS+=($!)
	sleep 0.5
}
veth_tx() { ip netns exec "sbbench-a-$$" cat /sys/class/net/sbb-a/statistics/tx_bytes; }
run_veth() { # mode rep
	local mode=$1 rep=$2 placement=veth size=131072 before after valid=1 res value port=1 cmd
	[ "$mode" = on ] && port=2
	cmd=(ip netns exec "sbbench-a-$$" iperf3 -c 10.199.0.2 -p "540$port" -t "$SECS" -J)
	[ "$mode" = off ] && cmd=("$top/test/run-in-cgroup" "$ORIG_CG" "${cmd[@]}")
	before=$(veth_tx)
	res=$("${cmd[@]}" 2>&1)
	after=$(veth_tx)
	value=$(jq '.end.sum_received.bits_per_second / 1e9' <<<"$res" 2>/dev/null)
	# bypassed: the payload must not have crossed the veth
	[ "$mode" = on ] && [ $((after - before)) -gt $(($(jq '.end.sum_received.bytes' <<<"$res") / 100 + 20000)) ] &&
		valid=0
	record veth "${value:-nan}"
}

echo "sockbench: off = plain loopback TCP, on = sockbypass, unix = AF_UNIX stream" >&2
[ "$EXTRAS" = 1 ] && setup_veth
for placement in $PLACEMENTS; do
	if [ "$placement" = same ]; then server_cpu=0 client_cpu=0; else server_cpu=1 client_cpu=0; fi
	start_servers "$server_cpu"
	for rep in $(seq "$REPS"); do
		for size in $STREAM_SIZES; do
			for mode in off on unix; do run_one stream "$placement" "$size" "$mode" "$rep" "$client_cpu"; done
		done
		for size in $RR_SIZES; do
			for mode in off on unix; do run_one rr "$placement" "$size" "$mode" "$rep" "$client_cpu"; done
		done
		for mode in off on unix; do run_one conn "$placement" 1 "$mode" "$rep" "$client_cpu"; done
		if [ "$EXTRAS" = 1 ] && [ "$placement" = same ]; then
			for mode in off on unix; do run_one echo250k "$placement" 1024 "$mode" "$rep" "$client_cpu"; done
			for size in 64 1024 4096 16384; do
				for mode in off on; do run_one stream_pass "$placement" "$size" "$mode" "$rep" "$client_cpu"; done
			done
			for conns in 1000 10000; do
				for mode in off on unix; do run_one many "$placement" "$conns" "$mode" "$rep" "$client_cpu"; done
			done
		fi
		if [ "$EXTRAS" = 1 ] && [ "$placement" = split ]; then
			for mode in off on; do run_veth "$mode" "$rep"; done
		fi
		if [ "$TOOLS" = 1 ]; then
			for size in $STREAM_SIZES; do
				for mode in off on; do run_one iperf3 "$placement" "$size" "$mode" "$rep" "$client_cpu"; done
			done
			for size in $RR_SIZES; do
				for mode in off on; do run_one sockperf "$placement" "$size" "$mode" "$rep" "$client_cpu"; done
			done
		fi
		echo "  $placement: round $rep of $REPS done" >&2
	done
done
stop_servers
for pin in "$PIN"/sb_*; do bpftool -j map show pinned "$pin" 2>/dev/null; done |
	jq -r 'select(.name) | "\(.name) \(.bytes_memlock)"' >"$out/maps.txt"

"$here/report.sh" "$out"
# this run's files over the last ones; the other sections' tables (apps.md,
# memory.md, portmap.md, proxy.md) stay
mkdir -p "$top/bench/results/latest"
cp -r "$out"/. "$top/bench/results/latest/"
echo "results: $out (and bench/results/latest)" >&2
