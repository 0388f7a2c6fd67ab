# shellcheck shell=bash
# A receiver that stops reading must not pile up unbounded kernel memory.

# max_unread SECONDS: the largest unread_bytes seen, sampled every 50 ms.
max_unread() {
	local max=0 q
	for _ in $(seq $(($1 * 20))); do
		q=$(counter unread_bytes)
		[ "${q:-0}" -gt "$max" ] && max=$q
		sleep 0.05
	done
	echo "$max"
}

# stalled_stream PORT: 100 MiB to a server that reads nothing for 3 s; the
# client runs in the background as $CLIENT.
stalled_stream() {
	server -a 127.0.0.1 -p "$1" -s 0 -r 100M -P 3000
	"$TCPCHECK" -a 127.0.0.1 -p "$1" -s 100M -r 0 -w 64K >"$TMP/client.out" 2>&1 &
	CLIENT=$!
}

test_non_reading_peer_stays_bounded() {
	load --queue-limit 1M
	stalled_stream 8200
	local max
	max=$(max_unread 2)
	# the limit, plus the one message that crossed it
	[ "$max" -le $((1024 * 1024 + 256 * 1024)) ] || fail "unread bypassed bytes grew to $max"
	assert_gt "$max" $((512 * 1024)) "unread bytes (the redirect did fill the queue)"
	assert_gt "$(counter fallback_backlog)" 0 "fallbacks for a full queue"
	wait "$CLIENT" || fail "client side broke: $(cat "$TMP/client.out")"
	wait "$SERVER_PID" || fail "server side broke: bytes lost or reordered"
}

# The same on the path of kernels without sk_psock.msg_tot_len (6.1), where
# the programs sum the queued messages themselves.
test_walked_queue_stays_bounded() {
	export SOCKBYPASS_WALK_QUEUE=1
	test_non_reading_peer_stays_bounded
	grep -q "warning: .*checked by walking at most 256" "$TMP/load.out" ||
		fail "load said: $(cat "$TMP/load.out")"
}

# fallback_then_catch_up PORT READER_OPTIONS...: a reader away for 1.5 s lets
# a 1 MiB queue limit send the stream to TCP, then reads faster than the
# sender writes; the stream must arrive whole.
fallback_then_catch_up() {
	local port=$1
	shift
	load --queue-limit 1M
	server -a 127.0.0.1 -p "$port" -s 0 -r 64M -P 1500 -R 256K "$@"
	"$TCPCHECK" -a 127.0.0.1 -p "$port" -s 64M -r 0 -w 64K -g 2000 >"$TMP/client.out" 2>&1 ||
		fail "client side broke: $(cat "$TMP/client.out")"
	wait "$SERVER_PID" || fail "server side broke: bytes lost or reordered"
	assert_gt "$(counter fallback_backlog)" 0 "fallbacks for a full queue"
}

test_redirect_resumes_when_reader_caught_up() {
	# a reader mostly outside recv(): 1 ms between reads
	fallback_then_catch_up 8202 -d 1000
	assert_gt "$(counter resumed)" 0 "directions redirected again once the reader caught up"
}

test_epoll_reader_resumes_after_fallback() {
	# an event loop's reader: its epoll entry sits in the socket's wait
	# queue all the time, yet it never sleeps inside recv()
	fallback_then_catch_up 8203 -e
	assert_gt "$(counter resumed)" 0 "directions redirected again though the reader uses epoll"
}

test_blocking_reader_resumes_after_fallback() {
	# a reader that waits inside recv() whenever it has caught up
	fallback_then_catch_up 8204
	if grep -q "cannot trace sk_wait_data" "$TMP/load.out"; then
		# only a reader caught between two reads lets the bypass back here
		not_applicable "this kernel lets no fentry program trace sk_wait_data(): after a" \
			"fallback a blocking reader mostly keeps its direction on TCP (resumed" \
			"$(counter resumed) times; warned at load); the stream was intact"
	fi
	assert_gt "$(counter resumed)" 0 "directions redirected again though the reader blocks in recv()"
}

test_without_limit_the_queue_would_grow() {
	# the same non-reader with the largest limit shows what the limit prevents
	load --queue-limit 4G
	stalled_stream 8201
	local max
	max=$(max_unread 2)
	if queue_is_walked; then
		# 256 messages of at most 64 KiB: what stops the queue here
		[ "$max" -le $((260 * 64 * 1024)) ] || fail "a walked queue grew to $max"
		wait "$CLIENT" || fail "client side broke: $(cat "$TMP/client.out")"
		wait "$SERVER_PID" || fail "server side broke"
		not_applicable "no sk_psock.msg_tot_len: the queue stops at 256 messages ($max bytes)," \
			"whatever --queue-limit says; the stream was intact"
	fi
	assert_gt "$max" $((50 * 1024 * 1024)) "unread bytes with no effective limit"
	wait "$CLIENT" || fail "client side broke: $(cat "$TMP/client.out")"
	wait "$SERVER_PID" || fail "server side broke"
}

test_iperf3_bidir_bounded_and_complete() {
	load --queue-limit 4M
	bg iperf3 -s -1 -p 5201 >"$TMP/iperf-s.out" 2>&1
	sleep 0.5
	iperf3 -c 127.0.0.1 -p 5201 -t 3 --bidir >"$TMP/iperf.out" 2>&1 &
	local client=$! max
	max=$(max_unread 2)
	wait "$client" || fail "iperf3 --bidir failed: $(tail -5 "$TMP/iperf.out")"
	[ "$max" -le $((2 * (4 + 1) * 1024 * 1024)) ] || fail "unread bypassed bytes grew to $max"
	grep -q "receiver" "$TMP/iperf.out" || fail "no iperf3 summary: $(tail -5 "$TMP/iperf.out")"
}
