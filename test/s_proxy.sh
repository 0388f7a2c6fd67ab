# shellcheck shell=bash
# The proxy splice's EOF gate: every byte before each FIN, in both orders.

# proxy, proxy_stop, through, load_for_proxy, sockmap_supported
# shellcheck source=test/proxy_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/proxy_lib.sh"

# 100 runs of 64 MiB each way through sockbypass-proxy in sockmap mode, a
# slow backend and small send buffers (the kernel's backlog work then waits
# for room often), half of them with the client done first, half with the
# backend done first: each byte-exact (tcpcheck checks every byte).
test_eof_gate_100_runs_of_64mib() {
	bpftool btf dump file /sys/kernel/btf/vmlinux format c >"$TMP/btf.h" 2>/dev/null
	grep -q "skb_verdict;" "$TMP/btf.h" || not_applicable "no verdict-only sockmap (Linux 5.13+)"
	load --exclude-ports 9400,9401
	bg "$PROXY" --listen 127.0.0.1:9400 --connect 127.0.0.1:9401 --mode sockmap \
		--pin-dir "$PIN" --sndbuf 65536 2>"$TMP/proxy.err"
	local proxy=$! run
	sleep 0.3
	# a stuck run: the proxy's view of it (SIGUSR1), then the failure
	stuck() {
		kill -USR1 "$proxy"
		sleep 0.5
		fail "run $run ($1 done last): client: $(cat "$TMP/client.out"); $(tail -n 2 "$TMP/proxy.err")"
	}
	for run in $(seq "${GATE_RUNS:-50}"); do
		server -a 127.0.0.1 -p 9401 -s 64M -r 64M -R 16K -d 20 -S 100
		timeout 30 "$TCPCHECK" -a 127.0.0.1 -p 9400 -s 64M -r 64M -w 64K >"$TMP/client.out" 2>&1 ||
			stuck backend
		wait "$SERVER_PID" || fail "run $run (backend done last): server saw a broken stream"
		server -a 127.0.0.1 -p 9401 -s 64M -r 64M -R 16K -d 20
		timeout 30 "$TCPCHECK" -a 127.0.0.1 -p 9400 -s 64M -r 64M -w 64K -S 100 >"$TMP/client.out" 2>&1 ||
			stuck client
		wait "$SERVER_PID" || fail "run $run (client done last): server saw a broken stream"
	done
	kill "$proxy"
	wait "$proxy" || fail "proxy: $(cat "$TMP/proxy.err")"
	grep -q "100 connections (sockmap 100.*0 reset" "$TMP/proxy.err" || fail "$(cat "$TMP/proxy.err")"
	echo "result: 100 runs of 64 MiB each way, both half-close orders: byte-exact; $(tail -n 1 "$TMP/proxy.err")"
}

# acked_while_stalled MODE SS_FILTER SERVER_ARGS... -- CLIENT_ARGS...: a
# transfer through the proxy in MODE where one end waits for $TMP/go before
# it reads; after 2 s, what the writer's socket (SS_FILTER) got acknowledged
# by then; then all is read, byte-exact. No TCP counts left: that socket
# closed, every byte (64 MiB) acknowledged.
acked_while_stalled() {
	local mode=$1 filter=$2 sargs=() client acked
	shift 2
	while [ "$1" != -- ]; do sargs+=("$1"); shift; done
	shift
	proxy "$mode"
	rm -f "$TMP/go"
	server -a 127.0.0.1 -p 9301 "${sargs[@]}" >"$TMP/server.out"
	"$TCPCHECK" -a 127.0.0.1 -p 9300 "$@" >"$TMP/client.out" 2>&1 &
	client=$!
	sleep 2
	acked=$(ss -tinH "$filter" | grep -o 'bytes_acked:[0-9]*' | head -n 1 | cut -d: -f2)
	echo "${acked:-67108864}"
	touch "$TMP/go"
	wait "$client" || fail "$mode: client side broke: $(cat "$TMP/client.out")"
	wait "$SERVER_PID" || fail "$mode: server side broke (bytes lost or reordered)"
	proxy_stop
}

# bound_like_a_copy_proxy WHAT ARGS...: acked_while_stalled ARGS through the
# copy proxy and through sockmap; sockmap may take at most 1.5 times as much
# (unbounded, the kernel took the whole 64 MiB at once), and the bound left
# skbs on the writer's side.
bound_like_a_copy_proxy() {
	local what=$1 copy sockmap
	shift
	copy=$(acked_while_stalled copy "$@")
	sockmap=$(acked_while_stalled sockmap "$@")
	assert_gt "$copy" 0 "bytes acknowledged through the copy proxy"
	assert_gt "$sockmap" 0 "bytes acknowledged through the sockmap proxy"
	[ "$sockmap" -le $((copy * 3 / 2)) ] || fail "$what: sockmap took $sockmap bytes, a copy proxy $copy"
	assert_gt "$(counter proxy_pass_backlog)" 0 "skbs left on the writer's side (the bound)"
	echo "result: bytes taken in while $what: copy $copy, sockmap $sockmap"
	echo "result: sockmap: $(counter proxy_pass_backlog) skbs left for the backlog, $(counter proxy_resumed) resumed"
}

# A backend that does not read for 2 s; it answers a byte later.
test_stalled_backend_holds_what_a_copy_proxy_holds() {
	load_for_proxy
	sockmap_supported
	bound_like_a_copy_proxy "the backend stalled" '( dport = :9300 )' \
		-s 1 -S 2500 -r 64M -R 256K -G "$TMP/go" -- -s 64M -r 1
}

# After the FIN went on to the backend the bound must still hold for what
# the backend sends: the client sends one byte and half-closes, the
# backend answers 64 MiB, the client reads nothing for 2 s.
test_stalled_client_after_its_fin_holds_what_a_copy_proxy_holds() {
	load_for_proxy
	sockmap_supported
	bound_like_a_copy_proxy "the half-closed client stalled" '( sport = :9301 )' \
		-s 64M -S 600 -r 1 -- -s 1 -S 300 -r 64M -R 256K -G "$TMP/go"
}

# redis-benchmark and curl <-> nginx through the proxy in every mode.
test_redis_and_nginx_through_every_mode() {
	command -v redis-server >/dev/null || fail "redis-server missing (make stress installs it)"
	command -v nginx >/dev/null || fail "nginx missing (make stress installs it)"
	load_for_proxy
	local mode out want
	bg redis-server --port 9301 --bind 127.0.0.1 --save "" --appendonly no --dir "$TMP" >/dev/null
	for _ in $(seq 50); do redis-cli -p 9301 ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
	for mode in $(proxy_modes); do
		proxy "$mode"
		out=$(redis-benchmark -p 9300 -q -n 20000 -c 20 -d 1024 -t set,get 2>&1) ||
			fail "$mode: redis-benchmark: $out"
		[ "$(grep -c 'requests per second' <<<"$out")" = 2 ] || fail "$mode: redis-benchmark: $out"
		echo "result: redis-benchmark through $mode: $(tr '\r' '\n' <<<"$out" |
			grep 'requests per second' | sed 's/ requests per second.*//' | tr '\n' ' ')requests/s"
		proxy_stop
	done
	mkdir -p "$TMP/www"
	head -c 32M /dev/urandom >"$TMP/www/big"
	want=$(sha256sum <"$TMP/www/big" | cut -d' ' -f1)
	nginx_conf "$TMP/nginx.conf" "$TMP/ngx" "server { listen 127.0.0.1:9302; root $TMP/www; }"
	bg nginx -c "$TMP/nginx.conf" -e "$TMP/nginx.err"
	for _ in $(seq 50); do curl -sf -o /dev/null -r 0-0 http://127.0.0.1:9302/big && break; sleep 0.1; done
	for mode in $(proxy_modes); do
		PROXY_CONNECT=127.0.0.1:9302 proxy "$mode"
		local i pids=()
		for i in 1 2 3 4; do
			curl -sf http://127.0.0.1:9300/big | sha256sum | cut -d' ' -f1 >"$TMP/got.$i" &
			pids+=($!)
		done
		wait "${pids[@]}"
		for i in 1 2 3 4; do
			assert_eq "$(cat "$TMP/got.$i")" "$want" "$mode: sha256 of download $i"
		done
		proxy_stop
	done
	echo "result: 4 curl downloads of 32 MiB from nginx at once through $(proxy_modes | tr '\n' ' '): sha256 equal"
}
