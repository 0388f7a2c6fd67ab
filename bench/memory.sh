#!/usr/bin/env bash
# make bench, memory part: what the queue bound costs and saves. For plain TCP,
# the default bound (it follows TCP's buffers) and the old fixed 64 MiB one:
# bytes a stalled receiver's connection takes in (test/stall, 16 connections),
# TCP memory, read-back time, and a 1 GiB iperf3 stream's rate and payload on
# lo, REPS rounds interleaved, medians. Prints a markdown table and writes it
# to bench/results/latest/memory.md.
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)

case "${1:-}" in
-h | --help)
	echo "Usage: sudo make bench [QUICK=1]   (this is its memory part: bench/memory.sh)"
	exit 0 ;;
esac
# shellcheck source=bench/enter.sh
. "$here/enter.sh"
STALL="$top/.output/stall"
REPS=$([ "${QUICK:-0}" = 1 ] && echo 1 || echo 3)
rows="$TMP/rows.tsv" # mode rep accepted tcp_mem readback stall gbits lo_bytes
: >"$rows"

# one round of MODE: off (nothing loaded: plain TCP), auto, fixed
round() {
	local mode=$1 rep=$2 port=$((5800 + RANDOM % 100)) st gbits lo
	case "$mode" in
	auto) load ;;
	fixed) load --queue-limit 64M ;;
	esac
	st=$("$STALL" -n 16 -p "$port") || st=""
	bg iperf3 -s -1 -p 5231 >/dev/null 2>&1
	sleep 0.3
	capture_start lo tcp port 5231
	iperf3 -c 127.0.0.1 -p 5231 -n 1G -J >"$TMP/ip.json" 2>&1
	read -r _ lo < <(capture_stop)
	gbits=$(jq -r '.end.sum_sent.bits_per_second / 1e8 | floor / 10' "$TMP/ip.json" 2>/dev/null || echo 0)
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "$rep" \
		"$(stall_field accepted_median "$st")" "$(stall_field tcp_mem_delta "$st")" "$(stall_field readback_s "$st")" \
		"$(stall_field longest_stall_s "$st")" "$gbits" "$lo" >>"$rows"
	[ "$mode" = off ] || "$SB" --unload --pin-dir "$PIN" --timeout 5 >/dev/null
}

for rep in $(seq "$REPS"); do
	for mode in off auto fixed; do round "$mode" "$rep"; done
done

median() { # column mode
	awk -F'\t' -v c="$1" -v m="$2" '$1 == m && $c != "" { print $c }' "$rows" | sort -g |
		awk '{ v[++n] = $1 } END { if (!n) print "-"; else print (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2 }'
}
table() {
	local name mode
	echo "### Memory and the queue bound ($REPS round(s), medians; kernel $(uname -r))"
	echo
	echo "| | plain TCP | bound follows TCP (default) | fixed 64 MiB |"
	echo "|---|---:|---:|---:|"
	for name in "bytes a stalled connection takes in:3" "TCP memory of 16 stalled (bytes):4" \
		"read back, s:5" "read back, longest wait, s:6" "1 GiB iperf3, Gbit/s:7" \
		"1 GiB iperf3, payload bytes on lo:8"; do
		printf '| %s |' "${name%:*}"
		for mode in off auto fixed; do printf ' %s |' "$(median "${name##*:}" "$mode")"; done
		echo
	done
}
mkdir -p "$top/bench/results/latest"
table | tee "$top/bench/results/latest/memory.md"
