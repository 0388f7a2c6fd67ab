# shellcheck shell=bash
# What t_proxy.sh and s_proxy.sh share: sockbypass-proxy between a tcpcheck
# client on 127.0.0.1:9300 and a tcpcheck server on 127.0.0.1:9301.

PROXY="$TOP/sockbypass-proxy"

# proxy MODE [ARGS...]: sockbypass-proxy from PROXY_LISTEN (127.0.0.1:9300) to
# PROXY_CONNECT (127.0.0.1:9301), listening when this returns.
proxy() {
	local mode=$1
	shift
	bg "$PROXY" --listen "${PROXY_LISTEN:-127.0.0.1:9300}" --connect "${PROXY_CONNECT:-127.0.0.1:9301}" \
		--mode "$mode" --pin-dir "$PIN" "$@" 2>"$TMP/proxy.err"
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

# proxy_state: the proxy's live connections, as its SIGUSR1 prints them.
proxy_state() {
	local lines
	lines=$(wc -l <"$TMP/proxy.err")
	kill -USR1 "$PROXY_PID" 2>/dev/null
	sleep 1
	tail -n +"$((lines + 1))" "$TMP/proxy.err"
}

# exits_within SECONDS PID: did PID (not a child of ours to wait for yet) end in time?
exits_within() {
	timeout "$1" tail --pid="$2" -f /dev/null
}

# through SERVER_ARGS -- CLIENT_ARGS: a checked transfer through the proxy.
# A transfer that hangs fails after THROUGH_TIMEOUT seconds (a transfer
# takes seconds under emulation) with the proxy's view of the connection,
# not at the runner's timeout with nothing to go on.
through() {
	local sargs=() limit=${THROUGH_TIMEOUT:-180} rc
	while [ "$1" != -- ]; do sargs+=("$1"); shift; done
	shift
	server -a 127.0.0.1 -p 9301 "${sargs[@]}"
	timeout "$limit" "$TCPCHECK" -a 127.0.0.1 -p 9300 "$@" >"$TMP/client.out" 2>&1
	rc=$?
	[ "$rc" = 124 ] && fail "client hung ${limit}s; the proxy's connections: $(proxy_state)"
	[ "$rc" = 0 ] || fail "client side broke: $(cat "$TMP/client.out"); $(tail -n 1 "$TMP/proxy.err")"
	exits_within "$limit" "$SERVER_PID" ||
		fail "server hung ${limit}s after the client ended; the proxy's connections: $(proxy_state)"
	wait "$SERVER_PID" || fail "server side broke (bytes lost or reordered)"
}

# started_with PATTERN FILE: a proxy run in the background wrote PATTERN to
# FILE (its stderr) within 5 s, so it listens; else the test fails.
started_with() {
	local _
	for _ in $(seq 100); do
		grep -q "$1" "$2" && return 0
		sleep 0.05
	done
	fail "no '$1' from the proxy: $(cat "$2")"
}

# backend read SECONDS | answer COUNT: test/proxy_backend.py on 127.0.0.1:9301,
# listening when this returns; its pid in BACKEND_PID, its output in backend.out.
backend() {
	rm -f "$TMP/backend.ready"
	python3 "$TOP/test/proxy_backend.py" "$TMP/backend.ready" "$@" >"$TMP/backend.out" 2>&1 &
	BACKEND_PID=$!
	PIDS+=("$BACKEND_PID")
	wait_file "$TMP/backend.ready"
}

# The proxy's own sockets stay off the local bypass: sockmap mode needs them.
load_for_proxy() {
	load --exclude-ports 9300,9301
}

# Does this kernel splice in sockmap? struct sk_psock_progs's skb_verdict
# came with verdict-only sockmap (5.13).
has_sockmap_splice() {
	bpftool btf dump file /sys/kernel/btf/vmlinux format c 2>/dev/null | grep -q "skb_verdict;"
}

sockmap_supported() {
	has_sockmap_splice ||
		not_applicable "no verdict-only sockmap (Linux 5.13+): --mode sockmap refused (README)"
}

# The modes this kernel runs: copy and splice everywhere, sockmap where it can.
proxy_modes() {
	echo copy splice
	has_sockmap_splice && echo sockmap
}
