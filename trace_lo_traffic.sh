#!/usr/bin/env bash
# trace_lo_traffic.sh: tcpdump on lo, to see that only handshakes and FINs cross it;
# --verify counts the packets by kind and fails if payload crossed.
set -eu

usage() {
	cat <<USAGE
Usage: sudo ./trace_lo_traffic.sh [--port N]
       sudo ./trace_lo_traffic.sh --verify [--port N] [--seconds S] [-- CMD ...]

Without --verify: tcpdump on the loopback interface (TCP, or one port). With
sockbypass loaded, a local connection shows its SYN, SYN-ACK, ACK and FIN
packets and no payload: the data went from socket to socket. Ctrl-C stops.

--verify captures while CMD runs (or for --seconds S), then prints the
packets by kind (handshake, FIN/RST, pure ACK, payload) and the payload
bytes. With neither CMD nor --seconds it runs its own iperf3 test on a free
port for S seconds (default 3). Exit 0: no payload crossed lo; 1: payload
crossed (the bypass did not carry it); 13: no TCP packet seen at all;
14: CMD failed.

  --port N       only this TCP port
  --verify       count and judge instead of printing packets
  --seconds S    with no CMD: just capture for S seconds (no iperf3 test)
  -h, --help     this text
USAGE
}

err() { echo "Error: $*" >&2; }

port="" verify=0 seconds="" cmd=()
while [ $# -gt 0 ]; do
	case "$1" in
	-h | --help) usage; exit 0 ;;
	--port)
		if [ $# -lt 2 ] || ! [[ "$2" =~ ^[0-9]{1,5}$ ]] || [ "$2" -lt 1 ] || [ "$2" -gt 65535 ]; then
			err "--port needs a port number (1-65535)"
			exit 2
		fi
		port=$2; shift ;;
	--verify) verify=1 ;;
	--seconds)
		if [ $# -lt 2 ] || ! [[ "$2" =~ ^[0-9]{1,4}$ ]] || [ "$2" -lt 1 ]; then
			err "--seconds needs a whole number of seconds (1-9999)"
			exit 2
		fi
		seconds=$2; shift ;;
	--) shift; cmd=("$@"); break ;;
	*) err "unknown argument '$1' (see --help)"; exit 2 ;;
	esac
	shift
done
if [ "$verify" = 0 ] && { [ -n "$seconds" ] || [ ${#cmd[@]} -gt 0 ]; }; then
	err "--seconds and a command go with --verify"
	exit 2
fi
command -v tcpdump >/dev/null || { err "tcpdump is missing: apt-get install tcpdump"; exit 10; }
if [ "$(id -u)" != 0 ]; then
	err "capturing on lo needs root: run 'sudo ./trace_lo_traffic.sh'"
	exit 3
fi

if [ "$verify" = 0 ]; then
	exec tcpdump -i lo -nn tcp ${port:+port "$port"}
fi

# --verify --------------------------------------------------------------------
demo=0
if [ ${#cmd[@]} -eq 0 ] && [ -z "$seconds" ]; then
	demo=1
	seconds=3
fi
if [ "$demo" = 1 ]; then
	command -v iperf3 >/dev/null || { err "iperf3 is missing: apt-get install iperf3"; exit 10; }
	if [ -z "$port" ]; then
		for _ in $(seq 50); do
			port=$((40000 + RANDOM % 20000))
			[ -z "$(ss -Htln "sport = :$port")" ] && break
		done
	fi
fi

tmp=$(mktemp -d)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || :; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || :; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

tcpdump -i lo -nn -U --immediate-mode -w "$tmp/lo.pcap" tcp ${port:+port "$port"} 2>"$tmp/tcpdump.err" &
capture=$!
pids+=("$capture")
for _ in $(seq 50); do
	grep -q "listening on" "$tmp/tcpdump.err" && break
	kill -0 "$capture" 2>/dev/null || { err "tcpdump failed: $(cat "$tmp/tcpdump.err")"; exit 1; }
	sleep 0.1
done

start=$(date +%s.%N)
status=0
if [ "$demo" = 1 ]; then
	iperf3 -s -1 -p "$port" >"$tmp/server.log" 2>&1 &
	pids+=($!)
	sleep 0.3
	# paced at 10 Gbit/s: a receiver would have to stall 50 ms to fill the
	# 64 MiB queue limit, after which TCP would carry data for a while
	iperf3 -c 127.0.0.1 -p "$port" -t "$seconds" -b 10G >"$tmp/client.log" 2>&1 || status=$?
	[ "$status" = 0 ] || { err "iperf3 failed: $(tail -n 3 "$tmp/client.log")"; exit 14; }
	echo "iperf3 $(grep -E 'receiver$' "$tmp/client.log" | awk '{ print $7, $8 }') over 127.0.0.1:$port"
elif [ ${#cmd[@]} -gt 0 ]; then
	"${cmd[@]}" || status=$?
	[ "$status" = 0 ] || { err "the command failed (exit $status): ${cmd[*]}"; exit 14; }
else
	sleep "$seconds"
fi
elapsed=$(echo "$start $(date +%s.%N)" | awk '{ printf "%.1f", $2 - $1 }')
sleep 0.2 # the last packets
kill -INT "$capture" 2>/dev/null
wait "$capture" 2>/dev/null || true

# One line a packet: "... Flags [S.], seq ..., length N"
tcpdump -r "$tmp/lo.pcap" -nn 2>/dev/null | awk -v where="lo, tcp${port:+ port $port}, $elapsed s" '
	{
		flags = ""; len = 0
		for (i = 1; i <= NF; i++) {
			if ($i == "Flags") flags = $(i + 1)
			if ($i == "length") len = $(i + 1) + 0
		}
		total++
		if (len > 0) { payload++; bytes += len }
		else if (flags ~ /S/) syn++
		else if (flags ~ /[FR]/) fin++
		else ack++
	}
	END {
		printf "%s:\n", where
		printf "  %-24s %d\n", "handshake (SYN, SYN-ACK)", syn
		printf "  %-24s %d\n", "FIN / RST", fin
		printf "  %-24s %d\n", "pure ACK", ack
		printf "  %-24s %d packets, %d bytes\n", "payload", payload, bytes
		if (total == 0) { print "NOTHING: no TCP packet crossed lo, nothing to judge"; exit 13 }
		if (payload > 0) { print "FAIL: payload crossed lo: the bypass did not carry it (is sockbypass loaded? sudo ./load.sh)"; exit 1 }
		print "OK: no payload crossed lo"
	}'
