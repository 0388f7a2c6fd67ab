# shellcheck shell=bash
# sockbypass-proxy and libsockbypass-splice: every mode byte-exact both ways,
# the EOF passed on only after the last byte, and clear errors.

PROXY="$TOP/sockbypass-proxy"

# proxy MODE [ARGS...]: sockbypass-proxy from 127.0.0.1:9300 to 127.0.0.1:9301.
proxy() {
	local mode=$1
	shift
	bg "$PROXY" --listen 127.0.0.1:9300 --connect 127.0.0.1:9301 --mode "$mode" \
		--pin-dir "$PIN" "$@" 2>"$TMP/proxy.err"
	PROXY_PID=$!
	local _
	for _ in $(seq 100); do
		grep -q listening "$TMP/proxy.err" && return 0
		kill -0 "$PROXY_PID" 2>/dev/null || fail "proxy: $(cat "$TMP/proxy.err")"
		sleep 0.05
	done
	fail "proxy did not start: $(cat "$TMP/proxy.err")"
}

# proxy_stop: SIGTERM, then its summary line.
proxy_stop() {
	kill "$PROXY_PID"
	wait "$PROXY_PID" || fail "proxy exited $?: $(cat "$TMP/proxy.err")"
}

# through SERVER_ARGS -- CLIENT_ARGS: a checked transfer through the proxy.
through() {
	local sargs=()
	while [ "$1" != -- ]; do sargs+=("$1"); shift; done
	shift
	server -a 127.0.0.1 -p 9301 "${sargs[@]}"
	"$TCPCHECK" -a 127.0.0.1 -p 9300 "$@" >"$TMP/client.out" 2>&1 ||
		fail "client side broke: $(cat "$TMP/client.out"); $(tail -n 1 "$TMP/proxy.err")"
	wait "$SERVER_PID" || fail "server side broke (bytes lost or reordered)"
}

# The proxy's own sockets stay off the local bypass: sockmap mode needs them.
load_for_proxy() {
	load --exclude-ports 9300,9301
}

sockmap_supported() {
	# struct sk_psock_progs's skb_verdict came with verdict-only sockmap
	bpftool btf dump file /sys/kernel/btf/vmlinux format c >"$TMP/btf.h" 2>/dev/null
	grep -q "skb_verdict;" "$TMP/btf.h" ||
		not_applicable "no verdict-only sockmap (Linux 5.13+): --mode sockmap refused (README)"
}

test_every_mode_byte_exact_both_ways() {
	local mode size
	load_for_proxy
	for mode in copy splice sockmap; do
		[ "$mode" = sockmap ] && sockmap_supported
		proxy "$mode"
		for size in 1 100000 16M; do
			through -s "$size" -r "$size" -R 64K -- -s "$size" -r "$size" -w 16K
		done
		proxy_stop
		# sockmap: a client that sent its 1 byte and its FIN before the pair
		# was registered cannot enter a SOCKHASH (not ESTABLISHED): copy
		grep -q "3 connections.*$mode [1-3].*0 reset" "$TMP/proxy.err" ||
			fail "$mode: $(cat "$TMP/proxy.err")"
	done
	# the kernel moved them (what a full backlog left, the library copied):
	# fails with the verdict not attached
	assert_gt "$(counter proxy_redirected_bytes)" 1000000 "bytes the verdict redirected"
	assert_eq "$(counter proxy_pairs)" 0 "pairs registered after the proxy stopped"
	echo "result: copy, splice and sockmap: 1 B, 100 kB, 16 MiB each way, byte-exact"
}

test_eof_after_the_last_byte_either_side_first() {
	load_for_proxy
	sockmap_supported
	proxy sockmap
	local _
	for _ in 1 2 3; do
		# the client is done first, the server keeps sending; then the other way round
		through -s 24M -r 1M -S 200 -- -s 1M -r 24M
		through -s 1M -r 24M -- -s 24M -r 1M -S 200
	done
	proxy_stop
	grep -q "6 connections.*sockmap 6.*0 reset" "$TMP/proxy.err" || fail "$(cat "$TMP/proxy.err")"
	# 5.10 hands the verdict no zero-length skb for a FIN; later kernels do
	echo "result: 6 transfers, both orders, byte-exact; FINs the verdict dropped: $(counter proxy_fin)"
}

test_bypassed_sockets_are_left_to_the_local_bypass() {
	load_roomy # the proxy's connections are local ones, in the cgroup: bypassed
	sockmap_supported
	proxy sockmap
	through -s 8M -r 8M -- -s 8M -r 8M
	proxy_stop
	grep -q "1 connections.*copy 1" "$TMP/proxy.err" || fail "$(cat "$TMP/proxy.err")"
	assert_eq "$(counter proxy_redirected_bytes)" 0 "bytes the proxy's verdict took"
	assert_gt "$(counter redirected_bytes)" 16000000 "bytes the local bypass redirected"
}

test_bad_input_gets_one_line_and_its_code() {
	local rc
	check() { # code pattern args...
		local code=$1 pattern=$2
		shift 2
		"$PROXY" "$@" >"$TMP/out" 2>&1
		rc=$?
		assert_eq "$rc" "$code" "exit code of sockbypass-proxy $*"
		grep -q -- "$pattern" "$TMP/out" || fail "sockbypass-proxy $*: $(cat "$TMP/out")"
		assert_eq "$(wc -l <"$TMP/out")" 1 "lines from sockbypass-proxy $*"
	}
	check 2 "needs --listen" --listen 127.0.0.1:9300
	check 2 "bad --listen address" --listen 127.0.0.1 --connect 127.0.0.1:1
	check 2 "bad --connect address '127.0.0.1:0'" --listen 127.0.0.1:9300 --connect 127.0.0.1:0
	check 2 "--mode must be" --listen 127.0.0.1:9300 --connect 127.0.0.1:1 --mode fast
	check 12 "not loaded" --listen 127.0.0.1:9300 --connect 127.0.0.1:1 --mode sockmap \
		--pin-dir "$PIN"
	bg "$TCPCHECK" -l -a 127.0.0.1 -p 9302 -f "$TMP/ready.busy" -s 0 -r 0
	wait_file "$TMP/ready.busy"
	check 17 "cannot listen on 127.0.0.1:9302: Address already in use" \
		--listen 127.0.0.1:9302 --connect 127.0.0.1:1 --mode copy
	"$PROXY" --help | grep -q "Exit status" || fail "--help"
}

# acked_by_stalled_backend MODE: bytes a client got acknowledged, through
# the proxy, by a backend that does not read for 2 s; then all is read. The
# backend answers a byte later: its FIN must not reach the client before
# the measurement (after a FIN to a socket, the bound no longer holds for
# what that socket receives: README, Proxy splice).
acked_by_stalled_backend() {
	proxy "$1"
	rm -f "$TMP/go"
	server -a 127.0.0.1 -p 9301 -s 1 -S 2500 -r 64M -R 256K -G "$TMP/go" >"$TMP/server.out"
	"$TCPCHECK" -a 127.0.0.1 -p 9300 -s 64M -r 1 >"$TMP/client.out" 2>&1 &
	local client=$!
	sleep 2
	ss -tinH '( dport = :9300 )' | grep -o 'bytes_acked:[0-9]*' | head -n 1 | cut -d: -f2
	touch "$TMP/go"
	wait "$client" || fail "$1: client side broke: $(cat "$TMP/client.out")"
	wait "$SERVER_PID" || fail "$1: server side broke (bytes lost or reordered)"
	proxy_stop
}

test_stalled_backend_holds_what_a_copy_proxy_holds() {
	load_for_proxy
	sockmap_supported
	local copy sockmap
	copy=$(acked_by_stalled_backend copy)
	sockmap=$(acked_by_stalled_backend sockmap)
	assert_gt "$copy" 0 "bytes acknowledged through the copy proxy"
	assert_gt "$sockmap" 0 "bytes acknowledged through the sockmap proxy"
	# unbounded, the kernel took the whole 64 MiB at once
	[ "$sockmap" -le $((copy * 3 / 2)) ] ||
		fail "a stalled backend: sockmap took $sockmap bytes, a copy proxy $copy"
	assert_gt "$(counter proxy_pass_backlog)" 0 "skbs left on the client's socket (the bound)"
	echo "result: bytes taken in from the client while the backend stalled: copy $copy, sockmap $sockmap"
	echo "result: sockmap: $(counter proxy_pass_backlog) skbs left for the backlog, $(counter proxy_resumed) resumed"
}
