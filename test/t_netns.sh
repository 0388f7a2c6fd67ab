# shellcheck shell=bash
# Namespaces: containers on one host are bypassed, sockets of different
# namespaces never meet, and peers outside the cgroup are left alone.

# Two namespaces joined by a veth pair: $NSA (10.99.0.1, fd99::1) and $NSB (.2).
veth_pair() {
	NSA="sb-$$-a" NSB="sb-$$-b"
	new_netns "$NSA"
	new_netns "$NSB"
	ip link add sbva type veth peer name sbvb || fail "veth"
	ip link set sbva netns "$NSA"
	ip link set sbvb netns "$NSB"
	ip -n "$NSA" addr add 10.99.0.1/24 dev sbva
	ip -n "$NSB" addr add 10.99.0.2/24 dev sbvb
	ip -n "$NSA" addr add fd99::1/64 dev sbva nodad
	ip -n "$NSB" addr add fd99::2/64 dev sbvb nodad
	ip -n "$NSA" link set sbva up
	ip -n "$NSB" link set sbvb up
}

test_veth_pair_payload_skips_the_wire() {
	veth_pair
	load_roomy
	CAP_NS=$NSA capture_start sbva tcp
	IN_NS=$NSA server -a 10.99.0.1 -p 9000 -s 16M -r 32M
	ip netns exec "$NSB" "$TCPCHECK" -a 10.99.0.1 -p 9000 -s 32M -r 16M >/dev/null || fail "client v4"
	wait "$SERVER_PID" || fail "server v4"
	IN_NS=$NSA server -a fd99::1 -p 9001 -s 4M -r 4M
	ip netns exec "$NSB" "$TCPCHECK" -a fd99::1 -p 9001 -s 4M -r 4M >/dev/null || fail "client v6"
	wait "$SERVER_PID" || fail "server v6"
	read -r pkts bytes < <(capture_stop)
	assert_eq "$bytes" 0 "payload bytes on the veth"
	assert_eq "$(counter paired)" 2 "pairs across the veth"
	: "$pkts"
}

test_bridge_payload_skips_the_wire() {
	NSA="sb-$$-a" NSB="sb-$$-b"
	new_netns "$NSA"
	new_netns "$NSB"
	ip link add sbbr type bridge || fail "bridge"
	ip link set sbbr up
	local ns i=1
	for ns in "$NSA" "$NSB"; do
		ip link add "sbv$i" type veth peer name "sbp$i"
		ip link set "sbp$i" master sbbr up
		ip link set "sbv$i" netns "$ns"
		ip -n "$ns" addr add "10.98.0.$i/24" dev "sbv$i"
		ip -n "$ns" link set "sbv$i" up
		i=$((i + 1))
	done
	load_roomy
	capture_start sbbr tcp
	IN_NS=$NSA server -a 10.98.0.1 -p 9100 -s 8M -r 8M
	ip netns exec "$NSB" "$TCPCHECK" -a 10.98.0.1 -p 9100 -s 8M -r 8M >/dev/null || fail "client"
	wait "$SERVER_PID" || fail "server"
	read -r _ bytes < <(capture_stop)
	assert_eq "$bytes" 0 "payload bytes on the bridge"
	assert_eq "$(counter paired)" 1 "pairs across the bridge"
}

# One round: 127.0.0.1:40000 -> 127.0.0.1:9200 in both namespaces, streams
# keyed apart (a byte of the other namespace breaks a stream). With STAGGER,
# the second client connects once the first connection is paired.
identical_tuples_round() {
	local pids=() pid paired
	IN_NS="sb-$$-1" server -a 127.0.0.1 -p 9200 -k 1 -s 8M -r 8M
	pids+=("$SERVER_PID")
	IN_NS="sb-$$-2" server -a 127.0.0.1 -p 9200 -k 2 -s 8M -r 8M
	pids+=("$SERVER_PID")
	paired=$(counter paired)
	ip netns exec "sb-$$-1" "$TCPCHECK" -a 127.0.0.1 -p 9200 -b 40000 -k 1 -s 8M -r 8M >/dev/null &
	pids+=($!)
	if [ -n "${STAGGER:-}" ]; then
		for _ in $(seq 100); do [ "$(counter paired)" -gt "$paired" ] && break; sleep 0.05; done
	fi
	ip netns exec "sb-$$-2" "$TCPCHECK" -a 127.0.0.1 -p 9200 -b 40000 -k 2 -s 8M -r 8M >/dev/null &
	pids+=($!)
	for pid in "${pids[@]}"; do
		wait "$pid" || fail "a stream broke (bytes of the other namespace?)"
	done
	sleep 1 # TIME_WAIT on port 40000 is per namespace and harmless with SO_REUSEADDR
}

# Pairing keys on ports and sequence numbers, so two handshakes with identical
# tuples in the same clock tick (coarse guest clocks) have identical keys:
# then neither is paired and both stay on TCP. Otherwise both are paired.
test_identical_tuples_in_two_namespaces_never_meet() {
	local round paired conflicts bytes collided=0
	new_netns "sb-$$-1"
	new_netns "sb-$$-2"
	load_roomy
	for round in 1 2 3 staggered; do
		paired=$(counter paired) conflicts=$(counter skip_conflict) bytes=$(counter redirected_bytes)
		STAGGER=${round#[0-9]} identical_tuples_round || fail "round $round"
		paired=$(($(counter paired) - paired)) conflicts=$(($(counter skip_conflict) - conflicts))
		bytes=$(($(counter redirected_bytes) - bytes))
		if [ "$paired" = 0 ] && [ "$conflicts" -gt 0 ] && [ "$round" != staggered ]; then
			collided=$((collided + 1))
			continue
		fi
		[ "$paired" = 2 ] || fail "round $round: $paired of 2 paired, $conflicts key conflicts"
		assert_gt "$bytes" 30000000 "round $round: redirected bytes"
	done
	echo "result: 4 rounds of identical tuples in two namespaces: $((4 - collided)) paired apart," \
		"$collided refused as same-key handshakes, every stream intact"
}

test_server_outside_cgroup_not_bypassed() {
	load
	bg outside_cgroup "$TCPCHECK" -l -f "$TMP/ready" -a 127.0.0.1 -p 9300 -s 1M -r 1M
	wait_file "$TMP/ready"
	"$TCPCHECK" -a 127.0.0.1 -p 9300 -s 1M -r 1M >/dev/null || fail "client"
	assert_eq "$(counter inserted)" 0 "sockets inserted"
	assert_gt "$(counter skip_not_local)" 0 "clients left alone"
}

test_client_outside_cgroup_not_bypassed() {
	load
	server -a ::1 -p 9301 -s 1M -r 1M
	outside_cgroup "$TCPCHECK" -a ::1 -p 9301 -s 1M -r 1M >/dev/null || fail "client"
	wait "$SERVER_PID" || fail "server"
	assert_eq "$(counter inserted)" 0 "sockets inserted"
	assert_gt "$(counter skip_unpaired)" 0 "servers left alone"
}

test_remote_host_never_in_the_map() {
	# a host of our own: a namespace whose sockets never run our programs
	veth_pair
	load
	bg outside_cgroup ip netns exec "$NSB" "$TCPCHECK" -l -f "$TMP/ready" \
		-a 10.99.0.2 -p 9400 -s 1M -r 1M
	wait_file "$TMP/ready"
	ip netns exec "$NSA" "$TCPCHECK" -a 10.99.0.2 -p 9400 -s 1M -r 1M >/dev/null || fail "client"
	assert_eq "$(counter inserted)" 0 "sockets inserted"
	assert_eq "$(counter sockets)" 0 "sockets in the map"
	assert_gt "$(counter skip_not_local)" 0 "clients of a remote host left alone"
}
