# shellcheck shell=bash
# Faults: full maps, peers that die or close with unread data, a loader killed
# half-way, and users without root.


test_full_map_leaves_the_rest_on_tcp() {
	load --map-size 4 # two connections' worth of sockets
	local i pids=()
	# nothing is sent for 5 s: all four connections are open at once, even
	# on a slow machine, so none can free its slots before the last connects
	for i in 1 2 3 4; do
		server -a 127.0.0.1 -p $((9950 + i)) -s 4M -r 4M -S 5000
		pids+=("$SERVER_PID")
	done
	for i in 1 2 3 4; do
		"$TCPCHECK" -a 127.0.0.1 -p $((9950 + i)) -s 4M -r 4M -S 5000 >/dev/null &
		pids+=($!)
		sleep 0.1 # established one after the other, so the map fills in order
	done
	for i in "${pids[@]}"; do
		wait "$i" || fail "a stream broke with the map full"
	done
	assert_eq "$(counter paired)" 2 "connections bypassed with room for four sockets"
	assert_gt "$(counter insert_failed)" 0 "insert failures counted"
}

test_peer_killed_or_closing_unread() {
	load
	# the reader dies mid-transfer: the writer fails as it would on TCP
	server -a 127.0.0.1 -p 9960 -s 0 -r 100M -d 5000
	"$TCPCHECK" -a 127.0.0.1 -p 9960 -s 100M -r 0 >"$TMP/c1.out" 2>&1 &
	local client=$!
	sleep 0.5
	kill -9 "$SERVER_PID"
	wait "$client" && fail "the writer did not notice its reader died"
	grep -qE "send at byte [0-9]+: (Broken pipe|Connection reset by peer)" "$TMP/c1.out" ||
		fail "writer's error: $(cat "$TMP/c1.out")"
	# the writer dies: the reader sees the stream end early
	server -a ::1 -p 9961 -s 0 -r 100M >"$TMP/s2.out" 2>&1
	"$TCPCHECK" -a ::1 -p 9961 -s 100M -r 0 -g 2000 >/dev/null 2>&1 &
	client=$!
	sleep 0.5
	kill -9 "$client"
	wait "$SERVER_PID" && fail "the reader did not notice its writer died"
	grep -q "received [0-9]* bytes, expected 104857600" "$TMP/s2.out" ||
		fail "reader's message: $(cat "$TMP/s2.out")"
	# a server that closes with unread data (what the writer sees: t_limits.sh)
	server -a 127.0.0.1 -p 9962 -Q
	"$TCPCHECK" -a 127.0.0.1 -p 9962 -s 64M -r 0 >/dev/null 2>&1
	sleep 0.3
	assert_eq "$(counter sockets)" 0 "sockets left in the map"
	assert_eq "$(map_count sb_socks)" 0 "sockets left in sb_socks"
	# and the next connection is bypassed as usual
	server -a 127.0.0.1 -p 9963 -s 1M -r 1M
	"$TCPCHECK" -a 127.0.0.1 -p 9963 -s 1M -r 1M >/dev/null || fail "a new connection afterwards"
	wait "$SERVER_PID" || fail "server of the new connection"
}

test_loader_killed_at_every_step_recovers() {
	local cmd at
	# BPF_OBJ_PIN (6): 9 maps, 3 programs (and the 2 sleeper links where the
	# hook loads), the link; BPF_LINK_CREATE (28): the attach
	for cmd in 6 28; do
		for at in $(seq "$([ "$cmd" = 6 ] && echo 13 || echo 1)"); do
			NOBPF_KILL_CMD=$cmd NOBPF_KILL_AT=$at LD_PRELOAD="$TOP/.output/nobpf.so" \
				"$SB" --cgroup "$CG" --pin-dir "$PIN" >/dev/null 2>&1
			[ $? = 137 ] || fail "the loader was not killed at bpf command $cmd #$at"
			"$TOP/unload.sh" --pin-dir "$PIN" >"$TMP/out" 2>&1 ||
				fail "unload after a kill at $cmd #$at: $(cat "$TMP/out")"
			[ ! -e "$PIN" ] || fail "pins left after a kill at $cmd #$at and unload: $(ls "$PIN")"
			[ "$(bpftool cgroup show "$CG" | grep -c sock_ops)" = 0 ] ||
				fail "sockops attached after a kill at $cmd #$at and unload"
		done
	done
	load
	server -a 127.0.0.1 -p 9970 -s 1M -r 1M
	"$TCPCHECK" -a 127.0.0.1 -p 9970 -s 1M -r 1M >/dev/null || fail "traffic after the recoveries"
	wait "$SERVER_PID" || fail "server"
	assert_eq "$(counter paired)" 1 "pairs after the recoveries"
}

test_pins_are_root_only() {
	load
	assert_eq "$(stat -c %a "$PIN")" 700 "pin dir mode"
	local f
	for f in "$PIN"/*; do
		assert_eq "$(stat -c %a "$f")" 600 "mode of $f"
	done
	local nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)
	"${nobody[@]}" bpftool map dump pinned "$PIN/sb_socks" >/dev/null 2>&1 &&
		fail "nobody could read a pinned map"
	"${nobody[@]}" rm -f "$PIN/sb_sockops_link" 2>/dev/null
	[ -e "$PIN/sb_sockops_link" ] || fail "nobody removed the link pin (detaching the bypass)"
	"${nobody[@]}" "$TOP/unload.sh" --pin-dir "$PIN" >/dev/null 2>&1 && fail "nobody could unload"
	assert_eq "$(bpftool cgroup show "$CG" | grep -c sock_ops)" 1 "still attached after nobody's attempts"
}

test_connection_churn_leaves_no_entries() {
	load
	# two long checked streams while short connections come and go
	checked_streams 2 9980 32M -g 300
	bg "$TOP/.output/sockbench" -l 127.0.0.1:9990 >/dev/null
	local churn=$!
	sleep 0.3
	"$TOP/.output/sockbench" -m conn -a 127.0.0.1:9990 -t 3 >"$TMP/churn.out" ||
		fail "a short connection failed"
	kill "$churn"
	wait_streams "during the churn"
	local n
	n=$(sed -n 's/^conn_per_s=\([0-9]*\).*/\1/p' "$TMP/churn.out")
	assert_gt "$(counter paired)" $((n * 2)) "pairs (3 s of short connections, bypassed)"
	sleep 0.5
	assert_eq "$(counter sockets)" 0 "sockets left in the map"
	assert_eq "$(map_count sb_socks)" 0 "sockets left in sb_socks"
	assert_eq "$(map_count sb_pending)" 0 "clients left waiting"
}

test_1000_concurrent_connections_checked() {
	ulimit -n 8192
	load
	local many="$TOP/.output/tcpmany"
	bg "$many" -l -a ::1 -p 9771 -n 1000 -k 16384 -f "$TMP/ready" >"$TMP/server.out" 2>&1
	local srv=$!
	wait_file "$TMP/ready"
	"$many" -a ::1 -p 9771 -n 1000 -k 16384 >"$TMP/client.out" 2>&1 || fail "client: $(cat "$TMP/client.out")"
	wait "$srv" || fail "server: $(cat "$TMP/server.out")"
	assert_eq "$(counter paired)" 1000 "pairs"
	assert_gt "$(counter redirected_bytes)" $((2 * 1000 * 16384 - 1)) "redirected bytes"
}
