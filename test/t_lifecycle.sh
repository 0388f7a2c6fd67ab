# shellcheck shell=bash
# Load, unload and reload: nothing left behind, and no stream harmed.

attached() { bpftool cgroup show "$CG" 2>/dev/null | grep -c sock_ops; }

test_load_unload_twice_leaves_nothing() {
	local round
	for round in 1 2; do
		load
		assert_eq "$(attached)" 1 "sockops attached after load $round"
		[ -e "$PIN/sb_sockhash" ] || fail "no map pinned after load $round"
		unload
		assert_eq "$(attached)" 0 "sockops attached after unload $round"
		[ ! -e "$PIN" ] || fail "pins left after unload $round: $(ls "$PIN")"
	done
	"$TOP/unload.sh" --pin-dir "$PIN" >"$TMP/out" 2>&1 || fail "second unload failed"
	grep -q "not loaded" "$TMP/out" || fail "second unload said: $(cat "$TMP/out")"
}

# an upgrade over a loaded 0.2, whose per-socket state was in sb_pairs and sb_state
test_unload_removes_the_maps_0_2_pinned() {
	load
	bpftool map create "$PIN/sb_pairs" type hash key 8 value 16 entries 1 name sb_pairs ||
		fail "could not pin a stand-in for 0.2's sb_pairs"
	bpftool map create "$PIN/sb_state" type hash key 8 value 8 entries 1 name sb_state ||
		fail "could not pin a stand-in for 0.2's sb_state"
	unload
	[ ! -e "$PIN" ] || fail "pins left after unload: $(ls "$PIN")"
}

test_failure_at_last_step_unwinds_everything() {
	mkdir -p "$PIN"
	# BPF_LINK_CREATE (28) fails: maps and programs were pinned by then
	NOBPF_FAIL_CMD=28 LD_PRELOAD="$TOP/.output/nobpf.so" \
		"$SB" --cgroup "$CG" --pin-dir "$PIN" >"$TMP/out" 2>&1 && fail "load succeeded"
	grep -q "attach sockops to cgroup" "$TMP/out" || fail "message: $(cat "$TMP/out")"
	assert_eq "$(find "$PIN" -mindepth 1 | wc -l)" 0 "pins left after a failed load"
	assert_eq "$(attached)" 0 "programs attached after a failed load"
	load # and a normal load works right after
	unload
}

test_connection_open_before_load_keeps_working() {
	server -a 127.0.0.1 -p 7700 -s 8M -r 24M -d 2000
	"$TCPCHECK" -a 127.0.0.1 -p 7700 -s 24M -r 8M -w 16K >"$TMP/client.out" 2>&1 &
	local client=$!
	sleep 0.3
	load # mid-stream: this connection was established before, it stays on TCP
	wait "$client" || fail "client side broke: $(cat "$TMP/client.out")"
	wait "$SERVER_PID" || fail "server side broke"
	assert_eq "$(counter inserted)" 0 "sockets of a connection older than the load"
}

# A 100 MiB checksummed stream to a slow reader; unload and reload mid-way.
test_unload_and_reload_mid_transfer_loses_nothing() {
	load --queue-limit 1G # the whole stream fits: plenty unread at the unload
	# the reader starts late, so bytes are queued whatever bounds the queue
	server -a 127.0.0.1 -p 7800 -s 0 -r 100M -R 256K -d 3000 -P 1000
	"$TCPCHECK" -a 127.0.0.1 -p 7800 -s 100M -r 0 -w 64K >"$TMP/client.out" 2>&1 &
	local client=$!
	sleep 0.7
	local queued
	queued=$(counter unread_bytes)
	assert_gt "$queued" 0 "unread bypassed bytes before the unload (the case needs some)"
	unload --timeout 20
	load
	wait "$client" || fail "client side broke: $(cat "$TMP/client.out")"
	wait "$SERVER_PID" || fail "server side broke: bytes lost or reordered across unload/reload"
	unload
}

test_unload_waits_for_a_reader_that_does_not_read() {
	load
	unload_waits_for_a_stalled_reader
}

# A load made by an older build: its sb_drain was a sockmap iterator, which
# cannot be test-run (the pinned sockops program stands in for it). Unload
# loads this build's drain check on the pinned map and still waits.
test_unload_of_an_older_build_still_waits_for_the_reader() {
	load
	{ rm "$PIN/sb_drain" && bpftool prog pin pinned "$PIN/sb_sockops" "$PIN/sb_drain"; } ||
		fail "could not pin a stand-in for an older build's sb_drain"
	unload_waits_for_a_stalled_reader
}

# unload_waits_for_a_stalled_reader: with the bypass loaded, a reader that
# does not read makes unload exit 9 (nothing lost); once it read, unload ends.
unload_waits_for_a_stalled_reader() {
	# the reader starts when the test says: a fixed pause was over before
	# the unload's timeout on a slow (emulated) machine
	server -a ::1 -p 7900 -s 0 -r 20M -G "$TMP/go"
	"$TCPCHECK" -a ::1 -p 7900 -s 20M -r 0 >"$TMP/client.out" 2>&1 &
	local client=$!
	sleep 1
	assert_gt "$(counter unread_bytes)" 0 "unread bypassed bytes before the unload (the case needs some)"
	"$TOP/unload.sh" --pin-dir "$PIN" --timeout 1 >"$TMP/out" 2>&1
	assert_eq "$?" 9 "exit code of an unload that must wait"
	grep -q "still hold .* unread bypassed bytes.*nothing is lost" "$TMP/out" ||
		fail "message: $(cat "$TMP/out")"
	assert_eq "$(attached)" 0 "sockops attached while draining"
	touch "$TMP/go"
	wait "$client" || fail "client side broke: $(cat "$TMP/client.out")"
	wait "$SERVER_PID" || fail "server side broke"
	unload
	[ ! -e "$PIN" ] || fail "pins left after the second unload"
}

test_reload_cycles_under_traffic() {
	local pids=() cycle port pid
	# every round starts two streams (both ways, paced) that are still running
	# when the bypass is unloaded and loaded again; every one must arrive intact
	for cycle in 1 2 3 4 5 6; do
		load
		for port in $((7950 + 2 * cycle)) $((7951 + 2 * cycle)); do
			server -a 127.0.0.1 -p "$port" -s 24M -r 24M -R 32K -d 300
			pids+=("$SERVER_PID")
			"$TCPCHECK" -a 127.0.0.1 -p "$port" -s 24M -r 24M -w 16K -g 100 >/dev/null &
			pids+=($!)
		done
		sleep 0.4
		assert_gt "$(counter redirected_bytes)" 0 "redirected bytes in round $cycle"
		unload --timeout 20
	done
	for pid in "${pids[@]}"; do
		wait "$pid" || fail "a stream broke across load/unload cycles"
	done
}
