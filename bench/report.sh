#!/usr/bin/env bash
# report.sh DIR: turn DIR/raw.tsv (from bench/run.sh) into DIR/results.md and,
# with gnuplot, DIR/stream.png and DIR/rr.png. Medians over the valid runs,
# min-max, and the on/off and unix/off ratios taken pair by pair (same round).
set -eu
dir=$1
raw="$dir/raw.tsv"

human_size() {
	awk -v s="$1" 'BEGIN { if (s >= 1048576 && s % 1048576 == 0) printf "%d MiB", s / 1048576;
		else if (s >= 1024 && s % 1024 == 0) printf "%d KiB", s / 1024; else printf "%d B", s }'
}

# stats BENCH PLACEMENT SIZE MODE: "median min max n"
stats() {
	awk -F'\t' -v b="$1" -v p="$2" -v s="$3" -v m="$4" \
		'$1 == b && $2 == p && $3 == s && $4 == m && $8 == 1 && $6 != "nan" { print $6 }' "$raw" |
		sort -g | awk '{ v[NR] = $1 } END {
			if (!NR) { print "nan nan nan 0"; exit }
			med = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
			print med, v[1], v[NR], NR }'
}

# ratio BENCH PLACEMENT SIZE MODE: median over rounds of MODE/off
ratio() {
	awk -F'\t' -v b="$1" -v p="$2" -v s="$3" -v m="$4" '
		$1 == b && $2 == p && $3 == s && $8 == 1 && $6 != "nan" { v[$4, $5] = $6; r[$5] = 1 }
		END { for (k in r) if ((m, k) in v && ("off", k) in v && v["off", k] > 0)
			print v[m, k] / v["off", k] }' "$raw" |
		sort -g | awk '{ v[NR] = $1 } END { if (!NR) { print "nan"; exit }
			printf "%.2f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# The slab caches that grew most per connection, by mode, for $placement
slab_caches() {
	local f="$dir/slab-caches.txt"
	awk -v p="$placement" '$1 == p && NF == 4 { f = 1 } END { exit !f }' "$f" 2>/dev/null || return 0
	printf '\n## Where that slab goes: caches that grew, bytes per connection (%s, last round)\n\n' \
		"$placement"
	echo "| connections | plain TCP | sockbypass | AF_UNIX |"
	echo "|---:|---|---|---|"
	awk -v p="$placement" '$1 == p { c[$2] = 1; v[$2, $3] = $4 } END {
		for (n in c) printf "| %s | %s | %s | %s |\n", n, v[n, "off"], v[n, "on"], v[n, "unix"] }' "$f" |
		sed 's/,/, /g; s/:/ /g' | sort -t'|' -k2 -n
}

# table BENCH TITLE SIZE_HEADER FORMAT: one markdown table, a row per size,
# for the $placement of the loop that calls it; no AF_UNIX columns for the
# packaged tools, which speak TCP only
table() {
	local bench=$1 fmt=$4 row med lo hi mode modes="off on unix" label
	awk -F'\t' -v b="$bench" -v p="$placement" '$1 == b && $2 == p { f = 1 } END { exit !f }' "$raw" ||
		return 0
	printf '\n## %s\n\n' "$2"
	has() { awk -F'\t' -v b="$bench" -v m="$1" '$1 == b && $4 == m { f = 1 } END { exit !f }' "$raw"; }
	if ! has off; then # a figure of the bypass alone (program run times)
		modes="on"
		echo "| $3 | sockbypass |"
		echo "|---:|---:|"
	elif has unix; then
		echo "| $3 | plain TCP | sockbypass | AF_UNIX | sockbypass/TCP | AF_UNIX/TCP |"
		echo "|---:|---:|---:|---:|---:|---:|"
	else
		modes="off on"
		echo "| $3 | plain TCP | sockbypass | sockbypass/TCP |"
		echo "|---:|---:|---:|---:|"
	fi
	awk -F'\t' -v b="$bench" '$1 == b { print $3 }' "$raw" | sort -un | while read -r size; do
		label=$(human_size "$size")
		[ "$3" = connections ] && label=$size
		row="| $label |"
		for mode in $modes; do
			read -r med lo hi _ < <(stats "$bench" "$placement" "$size" "$mode")
			# shellcheck disable=SC2059 # the format is the caller's number format
			row="$row $(printf "$fmt ($fmt–$fmt)" "$med" "$lo" "$hi") |"
		done
		[ "$modes" = on ] || row="$row $(ratio "$bench" "$placement" "$size" on) |"
		[ "$modes" = "off on unix" ] && row="$row $(ratio "$bench" "$placement" "$size" unix) |"
		echo "$row"
	done
}

# invalid runs (their derived rows, CPU cost and the like, are invalid with them)
invalid=$(awk -F'\t' 'NR > 1 && $8 == 0 && $1 ~ /^(stream|rr|echo250k|many|iperf3|sockperf|veth)$/' "$raw" | wc -l)
{
	echo "# sockbypass benchmark"
	echo
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'); kernel $(uname -r); $(nproc) CPUs,"\
		"$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)."
	echo "Runs interleaved off / on / unix, round by round; medians with min-max over the rounds;"
	echo "ratios are the median of the per-round ratios to plain TCP. 'split': client on CPU 0,"
	echo "server on CPU 1; 'same': both on CPU 0. Runs of the bypass whose data crossed lo (more"
	echo "than 1 %: TCP carried it after a fallback) are left out as invalid: $invalid were; the"
	echo "'share of the bytes TCP carried' tables show how much."
	for placement in $(cut -f2 "$raw" | tail -n +2 | grep -vx veth | sort -u); do
		table stream "Stream throughput, Gbit/s ($placement)" "write size" '%.2f'
		table rr "Round trip (ping-pong), mean µs ($placement)" "message size" '%.1f'
		table rr_p50 "Round trip (ping-pong), p50 µs ($placement)" "message size" '%.1f'
		table rr_p99 "Round trip (ping-pong), p99 µs ($placement)" "message size" '%.1f'
		table iperf3 "iperf3 stream throughput, Gbit/s ($placement)" "write size (-l)" '%.2f'
		table tcp_share_iperf3 "iperf3 with the bypass: share of the bytes TCP carried after fallbacks, % of all runs ($placement)" "write size (-l)" '%.1f'
		table sockperf "sockperf ping-pong round trip (2 x its latency), mean µs ($placement)" \
			"message size (-m)" '%.1f'
		table sockperf_p50 "sockperf ping-pong round trip, p50 µs ($placement)" "message size (-m)" '%.1f'
		table sockperf_p99 "sockperf ping-pong round trip, p99 µs ($placement)" "message size (-m)" '%.1f'
		echo
		echo "## Connections: connect, 1-byte echo, close, per second ($placement)"
		echo
		echo "| plain TCP | sockbypass | AF_UNIX | sockbypass/TCP |"
		echo "|---:|---:|---:|---:|"
		row="|"
		for mode in off on unix; do
			read -r med lo hi _ < <(stats conn "$placement" 1 "$mode")
			row="$row $(printf '%.0f (%.0f–%.0f)' "$med" "$lo" "$hi") |"
		done
		echo "$row $(ratio conn "$placement" 1 on) |"
		table conn_p99 "Connections: connect-echo-close time, p99 µs ($placement)" "echo size" '%.1f'
		table cpu_stream "CPU cost of a stream, CPU seconds per GB, whole machine ($placement)" \
			"write size" '%.3f'
		table cpu_rr "CPU cost of a round trip, CPU µs, whole machine ($placement)" "message size" '%.2f'
		table switches_per_write "Context switches per write, whole machine ($placement)" "write size" '%.3f'
		table prog_ns "sk_msg program run time per message, ns (bpf_stats) ($placement)" \
			"write size" '%.0f'
		table rr_prog_ns "sk_msg program run time per message of a round trip, ns (bpf_stats) ($placement)" \
			"message size" '%.0f'
		table tcp_share_stream "Bypassed streams: share of the bytes TCP carried after fallbacks, % of all runs ($placement)" "write size" '%.1f'
		table stream_pass "Stream, sockets in the map but every message sent by TCP: the sk_msg send path alone, Gbit/s ($placement)" "write size" '%.2f'
		table sockops_ns "sockops program run time per connection (16 callbacks, the SOCKHASH insert included), ns (bpf_stats) ($placement)" "echo size" '%.0f'
		table echo250k "250,000 echoes of 1 KiB, mean round trip µs ($placement)" "message size" '%.2f'
		table many "Many open connections: 1 KiB round trips on each in turn, mean µs ($placement)" \
			"connections" '%.1f'
		table many_slab "Kernel slab per connection (both ends), bytes ($placement)" "connections" '%.0f'
		slab_caches
	done
	placement=veth
	table veth "Two namespaces joined by veth: iperf3 (128 KiB writes), Gbit/s" "write size" '%.2f'
	if [ -s "$dir/maps.txt" ]; then
		printf '\n## sockbypass map memory (bpftool bytes_memlock)\n\n| map | bytes |\n|---|---:|\n'
		awk '{ printf "| %s | %s |\n", $1, $2 }' "$dir/maps.txt"
	fi
} >"$dir/results.md"
cat "$dir/results.md"

command -v gnuplot >/dev/null || { echo "(gnuplot missing: no plots; apt-get install gnuplot-nox)" >&2; exit 0; }
for placement in $(cut -f2 "$raw" | tail -n +2 | grep -vx veth | sort -u); do
	for bench in stream rr; do
		awk -F'\t' -v b=$bench '$1 == b { print $3 }' "$raw" | sort -un | while read -r size; do
			printf '%s' "$size"
			for mode in off on unix; do
				read -r med _ < <(stats "$bench" "$placement" "$size" "$mode")
				printf ' %s' "$med"
			done
			echo
		done >"$dir/$bench-$placement.dat"
	done
	gnuplot <<GP
set terminal png size 900,500 noenhanced
set logscale x 2
set xtics ("64" 64, "1K" 1024, "4K" 4096, "16K" 16384, "64K" 65536, "256K" 262144, "1M" 1048576)
set key top left
set grid
set output "$dir/stream-$placement.png"
set title "Stream throughput by write size (placement: $placement, medians)"
set xlabel "write size (bytes)"
set ylabel "Gbit/s"
plot "$dir/stream-$placement.dat" using 1:2 with linespoints title "plain TCP", \
     "" using 1:3 with linespoints title "sockbypass", \
     "" using 1:4 with linespoints title "AF_UNIX"
set output "$dir/rr-$placement.png"
set title "Round trip by message size (placement: $placement, medians)"
set xlabel "message size (bytes)"
set ylabel "mean RTT (us)"
set yrange [0:*]
plot "$dir/rr-$placement.dat" using 1:2 with linespoints title "plain TCP", \
     "" using 1:3 with linespoints title "sockbypass", \
     "" using 1:4 with linespoints title "AF_UNIX"
GP
done
