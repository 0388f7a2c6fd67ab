# shellcheck shell=bash
# Stress (make stress): long runs of what t_*.sh checks briefly. Bounded in
# time; traffic stays on the test's own loopback.


# slot N: checked 32 MiB exchanges, one after the other, until $TMP/stop exists;
# a broken one is written to $TMP/failed
slot() {
	local n=$1 round=0 port srv
	while [ ! -e "$TMP/stop" ]; do
		round=$((round + 1))
		port=$((20000 + n * 100 + round % 100))
		"$TCPCHECK" -l -f "$TMP/ready.$n" -a 127.0.0.1 -p "$port" -s 32M -r 32M -R 32K >/dev/null 2>"$TMP/slot.$n.err" &
		srv=$!
		while [ ! -e "$TMP/ready.$n" ]; do sleep 0.01; done
		rm -f "$TMP/ready.$n"
		"$TCPCHECK" -a 127.0.0.1 -p "$port" -s 32M -r 32M -w 16K -g 200 >/dev/null 2>>"$TMP/slot.$n.err" ||
			echo "slot $n round $round client: $(cat "$TMP/slot.$n.err")" >>"$TMP/failed"
		wait "$srv" || echo "slot $n round $round server: $(cat "$TMP/slot.$n.err")" >>"$TMP/failed"
		echo >>"$TMP/done.$n"
	done
}

test_50_reload_cycles_under_20_streams() {
	local i pids=()
	for i in $(seq 20); do
		slot "$i" &
		pids+=($!)
	done
	for _ in $(seq 50); do
		load
		sleep 0.2
		unload --timeout 30
		sleep 0.1
	done
	touch "$TMP/stop"
	for i in "${pids[@]}"; do wait "$i"; done
	[ ! -s "$TMP/failed" ] || fail "streams broke across load/unload cycles: $(head -c 2000 "$TMP/failed")"
	local n
	n=$(cat "$TMP"/done.* | wc -l)
	assert_gt "$n" 100 "checked exchanges completed"
	echo "result: 50 load/unload cycles, $n checked 32 MiB exchanges on 20 slots, 0 bytes lost"
}

test_200k_short_connections_beside_long_streams() {
	sysctl -qw net.ipv4.ip_local_port_range="1024 65535"
	load
	local secs=0 total=0 n
	# 640 MiB each way at 32 MiB/s: about 20 s, past the churn
	checked_streams 2 9880 640M -g 2000
	bg "$TOP/.output/sockbench" -l 127.0.0.1:9890 >/dev/null
	local churn=$!
	sleep 0.3
	# 2-second runs until 200,000 connections, or 4 minutes
	while [ "$total" -lt 200000 ] && [ "$secs" -lt 240 ]; do
		"$TOP/.output/sockbench" -m conn -a 127.0.0.1:9890 -t 2 >"$TMP/churn.out" ||
			fail "a short connection failed after $total"
		n=$(sed -n 's/^conn_per_s=\([0-9]*\).*/\1/p' "$TMP/churn.out")
		total=$((total + n * 2))
		secs=$((secs + 2))
	done
	kill "$churn"
	wait_streams "during the churn"
	assert_gt "$total" 199999 "short connections in ${secs}s"
	assert_gt "$(counter paired)" $((total * 9 / 10)) "short connections bypassed"
	sleep 1
	assert_eq "$(counter sockets)" 0 "sockets left in the map"
	assert_eq "$(map_count sb_socks)" 0 "sockets left in sb_socks"
	assert_eq "$(map_count sb_pending)" 0 "clients left waiting"
	echo "result: $total short connections in ${secs}s beside 2 long streams: map empty after"
}

test_10k_concurrent_connections_checked() {
	ulimit -n 65536
	sysctl -qw net.ipv4.ip_local_port_range="1024 65535" net.core.somaxconn=16384
	load
	local many="$TOP/.output/tcpmany"
	bg "$many" -l -a 127.0.0.1 -p 9770 -n 10000 -k 65536 -f "$TMP/ready" >"$TMP/server.out" 2>&1
	local srv=$!
	wait_file "$TMP/ready"
	"$many" -a 127.0.0.1 -p 9770 -n 10000 -k 65536 -H 3000 >"$TMP/client.out" 2>&1 &
	local cli=$!
	for _ in $(seq 300); do
		grep -q "established" "$TMP/client.out" && break
		sleep 0.1
	done
	sleep 1
	local held
	held=$(counter sockets)
	wait "$cli" || fail "client: $(cat "$TMP/client.out")"
	wait "$srv" || fail "server: $(cat "$TMP/server.out")"
	assert_gt "$held" 19999 "sockets in the map while 10,000 connections were open"
	assert_gt "$(counter redirected_bytes)" $((2 * 10000 * 65536 - 1)) "redirected bytes"
	sleep 0.5
	assert_eq "$(counter sockets)" 0 "sockets left in the map"
	echo "result: 10,000 concurrent connections ($held sockets in the map), 64 KiB checked each way on each"
}

test_memory_pressure_no_kernel_warnings() {
	local before pids=() i
	before=$(dmesg | wc -l)
	load
	join_memory_limit $((192 * 1024 * 1024))
	for i in $(seq 8); do
		server -a 127.0.0.1 -p $((9700 + i)) -s 64M -r 64M -R 16K -d 500
		pids+=("$SERVER_PID")
		"$TCPCHECK" -a 127.0.0.1 -p $((9700 + i)) -s 64M -r 64M -w 256K >/dev/null &
		pids+=($!)
	done
	for i in "${pids[@]}"; do
		wait "$i" || fail "a stream broke under a 192 MiB memory limit"
	done
	local new
	new=$(dmesg | tail -n +$((before + 1)) | grep -E "WARNING|BUG|bad page|Call Trace|Out of memory" || true)
	[ -z "$new" ] || fail "kernel warnings during the run: $new"
	echo "result: 8 checked 64 MiB streams both ways under a 192 MiB memory limit, no kernel warning"
}

# The issue's target for iperf3 --bidir: both directions within 2x of each
# other (or no further apart than plain TCP's), in each of 6 runs. Not always
# met (README "Memory"): 2 runs of 39 ended 2.05x and 2.67x apart, a direction
# that fell back to TCP and whose writer did not let the TCP bytes drain.
test_bidir_within_2x() {
	local run over=0
	for run in 1 2 3 4 5 6; do
		bidir_plain_then_bypassed $((5230 + 2 * run))
		unload
		echo "result: run $run: plain TCP ${PLAIN_APART}x apart, bypassed ${BYPASSED_APART}x"
		bidir_fair 2 || over=$((over + 1))
	done
	[ "$over" = 0 ] || fail "$over of 6 runs more than 2x apart (and further than plain TCP)"
}
