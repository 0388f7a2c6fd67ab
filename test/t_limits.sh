# shellcheck shell=bash
# Kernel limits the README documents: these tests pin down the documented
# behaviour, so a kernel that fixes them (or a change that hides them) shows.

test_blocking_recv_returns_eagain_on_signals() {
	server -a 127.0.0.1 -p 9600 -s 0 -r 2M -R 64K -T 1000 >"$TMP/plain.out"
	"$TCPCHECK" -a 127.0.0.1 -p 9600 -s 2M -r 0 -w 8K -g 3000 >/dev/null || fail "client"
	wait "$SERVER_PID" || fail "server (plain TCP)"
	grep -q "eagain=0" "$TMP/plain.out" || fail "plain TCP said EAGAIN: $(cat "$TMP/plain.out")"
	load
	server -a 127.0.0.1 -p 9601 -s 0 -r 2M -R 64K -T 1000 >"$TMP/bypass.out"
	"$TCPCHECK" -a 127.0.0.1 -p 9601 -s 2M -r 0 -w 8K -g 3000 >/dev/null || fail "client"
	wait "$SERVER_PID" || fail "server (bypassed)"
	local n
	n=$(sed -n 's/.*eagain=\([0-9]*\).*/\1/p' "$TMP/bypass.out")
	assert_gt "${n:-0}" 0 "EAGAINs of a blocking bypassed reader with a 1 ms timer (documented)"
	echo "result: a 1 ms SA_RESTART timer: plain TCP 0 EAGAIN, bypassed $n EAGAIN in 256 blocking reads"
}

test_splice_reader_needs_to_stay_outside_the_cgroup() {
	load
	# documented: a splice(2) reader of a bypassed socket sees no data, only EOF
	server -a 127.0.0.1 -p 9700 -s 0 -r 1M -X
	"$TCPCHECK" -a 127.0.0.1 -p 9700 -s 1M -r 0 >/dev/null || fail "client"
	wait "$SERVER_PID" && fail "a splice reader of a bypassed socket got its data: update the README"
	# the remedy the README gives: keep such a program out of the covered cgroup
	bg outside_cgroup "$TCPCHECK" -l -f "$TMP/ready" -a 127.0.0.1 -p 9701 -s 0 -r 1M -X
	wait_file "$TMP/ready"
	"$TCPCHECK" -a 127.0.0.1 -p 9701 -s 1M -r 0 >/dev/null || fail "client"
	wait "${PIDS[-1]}" || fail "splice reader outside the cgroup lost data"
}

test_close_with_unread_bypassed_data_is_a_fin() {
	# plain TCP: the reader's close with unread data resets, the writer fails
	server -a 127.0.0.1 -p 9720 -Q
	"$TCPCHECK" -a 127.0.0.1 -p 9720 -s 64M -r 0 >"$TMP/plain.out" 2>&1 &&
		fail "plain TCP: no error after the reader closed with unread data"
	grep -qE "Broken pipe|Connection reset" "$TMP/plain.out" || fail "plain TCP: $(cat "$TMP/plain.out")"
	load --queue-limit 64M
	# documented: bypassed bytes are not in the TCP receive queue, so the close
	# sends a FIN and the writer, whose writes all fitted in the queue limit, sees none
	# (4 MiB: written before the reader's close 200 ms later, even under emulation)
	server -a 127.0.0.1 -p 9721 -Q
	"$TCPCHECK" -a 127.0.0.1 -p 9721 -s 4M -r 0 >"$TMP/bypass.out" 2>&1 ||
		fail "bypassed: the writer saw an error, update the README: $(cat "$TMP/bypass.out")"
	# beyond the queue limit TCP carries the bytes again, and with them the reset
	unload
	load --queue-limit 1M
	server -a 127.0.0.1 -p 9722 -Q
	"$TCPCHECK" -a 127.0.0.1 -p 9722 -s 64M -r 0 >"$TMP/limit.out" 2>&1 &&
		fail "bypassed past the limit: no error after the reader closed with unread data"
	grep -qE "Broken pipe|Connection reset" "$TMP/limit.out" || fail "past the limit: $(cat "$TMP/limit.out")"
}
