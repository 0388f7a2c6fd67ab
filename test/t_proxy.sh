# shellcheck shell=bash
# sockbypass-proxy and libsockbypass-splice: every mode byte-exact both ways,
# the EOF passed on only after the last byte, and clear errors.

# proxy, proxy_stop, through, load_for_proxy, sockmap_supported
# shellcheck source=test/proxy_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/proxy_lib.sh"

test_copy_and_splice_byte_exact_both_ways() {
	local mode size
	load_for_proxy
	for mode in copy splice; do
		proxy "$mode"
		for size in 1 100000 16M; do
			through -s "$size" -r "$size" -R 64K -- -s "$size" -r "$size" -w 16K
		done
		proxy_stop
		grep -q "3 connections.*$mode 3.*0 reset" "$TMP/proxy.err" ||
			fail "$mode: $(cat "$TMP/proxy.err")"
	done
	echo "result: copy and splice: 1 B, 100 kB, 16 MiB each way, byte-exact"
}

test_sockmap_every_size_byte_exact_both_ways() {
	local size
	load_for_proxy
	sockmap_supported
	proxy sockmap
	# both ends send 1 s after connecting, once the proxy registered the pair:
	# bytes that arrive before it are read by the library (direct reads) and
	# keep that direction on the copy path, which on a slow guest took every
	# byte (6.12 under TCG, CI 2026-12-02: the verdict redirected 0)
	for size in 1 100000 16M; do
		through -s "$size" -r "$size" -R 64K -S 1000 -- -s "$size" -r "$size" -w 16K -S 1000
	done
	proxy_stop
	grep -q "3 connections.*sockmap [1-3].*0 reset" "$TMP/proxy.err" || fail "$(cat "$TMP/proxy.err")"
	# the kernel moved bytes (what a full backlog left, the library copied):
	# fails with the verdict not attached
	assert_gt "$(counter proxy_redirected_bytes)" 0 "bytes the verdict redirected"
	assert_eq "$(counter proxy_pairs)" 0 "pairs registered after the proxy stopped"
	echo "result: sockmap: 1 B, 100 kB, 16 MiB each way, byte-exact"
}

# each_side_first BIG SMALL: through the running sockmap proxy, 3 times each:
# the client sends SMALL and is done first while the server keeps sending
# BIG, then the other way round; then the proxy stops, 6 pairs, none reset.
each_side_first() {
	local _
	for _ in 1 2 3; do
		through -s "$1" -r "$2" -S 200 -- -s "$2" -r "$1"
		through -s "$2" -r "$1" -- -s "$1" -r "$2" -S 200
	done
	proxy_stop
	grep -q "6 connections.*sockmap 6.*0 reset" "$TMP/proxy.err" || fail "$(cat "$TMP/proxy.err")"
}

test_eof_after_the_last_byte_either_side_first() {
	load_for_proxy
	sockmap_supported
	proxy sockmap
	each_side_first 24M 1M
	# 5.10 hands the verdict no zero-length skb for a FIN; later kernels do
	echo "result: 6 transfers, both orders, byte-exact; FINs the verdict dropped: $(counter proxy_fin)"
}

# A request, a half-close, then a long answer to a slow reader: the proxy
# passed the client's FIN to the backend, and the bound leaves the answer's
# bytes on the proxy's backend socket while the client is behind, also when
# the backend's own FIN closes that socket's connection (FIN_WAIT2 to
# TIME_WAIT) with bytes still left on it: they must all come.
test_a_half_closed_clients_slow_answer_loses_nothing() {
	load_for_proxy
	sockmap_supported
	proxy sockmap
	through -s 8M -S 300 -r 1 -- -s 1 -S 100 -r 8M -R 16K -d 2000
	through -s 8M -S 300 -r 1 -k 7 -- -s 1 -S 100 -r 8M -R 16K -d 2000 -k 7
	proxy_stop
	grep -q "2 connections.*sockmap 2.*0 reset" "$TMP/proxy.err" || fail "$(cat "$TMP/proxy.err")"
	assert_gt "$(counter proxy_pass_backlog)" 0 "skbs left on the backend's socket after the client's FIN"
	echo "result: 2 answers of 8 MiB to half-closed slow clients, byte-exact; skbs left for the bound: $(counter proxy_pass_backlog)"
}

# Small receive buffers on the proxy's sockets (--rcvbuf): the verdict's
# skbs and the library's reads meet a full buffer all the time, and the tail
# after each FIN must still arrive, byte-exact. (Written for the 5.10 hang
# 108 bytes short of EOF, CI 2026-12-02; it did not bring that hang back
# with the library's fix taken out, so it checks small buffers, not the fix.)
test_tail_after_a_full_receive_buffer() {
	load_for_proxy
	sockmap_supported
	proxy sockmap --rcvbuf 8192
	each_side_first 4M 1M
	echo "result: 6 transfers through 8 KiB receive buffers, both orders, byte-exact"
}

# Slow readers on both ends, so that the verdict leaves skbs on the source
# and resumes again and again, with the proxy's poll() after each map update 3 ms late
# (test/slowpoll.c): the library tells the verdict it may redirect, then
# polls; skbs the verdict redirects in that moment must reach the
# destination before the next one it leaves, which the library copies.
# (CI 2026-12-04: the library example once delivered a 16 MiB echo with a
# byte wrong at 14,218,715; with the old library this case broke 4 runs of 4,
# a wrong byte near 4 MB or a reset.)
test_copy_after_a_resume_waits_for_the_redirected() {
	load_for_proxy
	sockmap_supported
	# lib/example.c: one pair at a time, stepped on every event (in
	# sockbypass-proxy so slow a poll() kept the first pair copying)
	LD_PRELOAD="$TOP/.output/slowpoll.so" SLOWPOLL_US=3000 \
		bg "$TOP/.output/sbs-example" 9300 9301 sockmap "$PIN" 2>"$TMP/proxy.err"
	started_with "example: sockmap" "$TMP/proxy.err"
	local _
	for _ in $(seq 10); do
		through -s 8M -r 8M -R 4K -d 100 -- -s 8M -r 8M -R 4K -d 100
	done
	grep -q reset "$TMP/proxy.err" && fail "$(cat "$TMP/proxy.err")"
	assert_gt "$(counter proxy_resumed)" 0 "directions the verdict resumed (the moment the case is about)"
	echo "result: 10 transfers of 8 MiB each way through slow readers, byte-exact; $(counter proxy_resumed) resumes after copying"
}

# sbs_pair_detach(): the library forwards the first 4 MiB (both ways
# together), gives the sockets back mid-stream, and the test's proxy copies
# the rest itself (test/detach_proxy.c): byte-exact, in every mode, also
# with slow readers (sockmap: skbs left on the sources when it detaches).
# Checked to fail when the library takes the sockets out of the kernel's map
# (what the verdict left is dropped); its wait for the kernel's bytes to
# reach the destination before ours is not provoked here (taken out, runs
# with a slow backend still passed).
test_detach_gives_the_sockets_back_mid_stream() {
	load_for_proxy
	local mode readers
	for mode in $(proxy_modes); do
		for readers in fast slow; do
			bg "$TOP/.output/detach-proxy" 9300 9301 "$mode" "$PIN" 4194304 2>"$TMP/proxy.err"
			local pid=$!
			started_with "detach_proxy: $mode" "$TMP/proxy.err"
			if [ "$readers" = fast ]; then
				through -s 16M -r 16M -- -s 16M -r 16M
			else
				through -s 8M -r 8M -R 4K -d 100 -- -s 8M -r 8M -R 4K -d 100
			fi
			wait "$pid" || fail "$mode, $readers readers: $(cat "$TMP/proxy.err")"
			grep -q "$mode, the library moved .*then gave the sockets back" "$TMP/proxy.err" ||
				fail "$mode: $(cat "$TMP/proxy.err")"
			# slow readers: 16 MiB take long enough that most come after
			[ "$readers" = fast ] || grep -Eq "done, [0-9]{7,} bytes copied after" "$TMP/proxy.err" ||
				fail "$mode: detached too late: $(cat "$TMP/proxy.err")"
		done
	done
	echo "result: detached after 4 MiB and copied the rest byte-exact in $(proxy_modes | tr '\n' ' ')(fast and slow readers); skbs left for the caller: $(counter proxy_pass_detached) while detaching, $(counter proxy_pass_unregistered) after"
}

# Detach while the backend stalls: bytes the kernel redirected wait in the
# backend socket's psock queue (64 KiB send buffers take little) when the
# caller takes the sockets back, and its own send()s must not overtake
# them; sbs_pair_detach() waits until the backend's TCP took them all. With
# that wait taken out, this case hung 2 runs of 2 (2026-12-06).
test_detach_waits_for_what_the_kernel_queued() {
	load_for_proxy
	sockmap_supported
	local run pid
	for run in 1 2; do
		bg "$TOP/.output/detach-proxy" 9300 9301 sockmap "$PIN" 1000ms 65536 2>"$TMP/proxy.err"
		pid=$!
		started_with "detach_proxy: sockmap" "$TMP/proxy.err"
		THROUGH_TIMEOUT=60 through -s 1 -r 8M -P 2000 -- -s 8M -S 300 -r 1
		wait "$pid" || fail "run $run: $(cat "$TMP/proxy.err")"
		grep -Eq "then gave the sockets back \([1-9][0-9]* looks waited\)" "$TMP/proxy.err" ||
			fail "run $run: the detach did not wait for the stalled backend: $(cat "$TMP/proxy.err")"
	done
	echo "result: detached with the backend stalled, byte-exact: $(grep -o '[0-9]* looks waited' "$TMP/proxy.err")"
}

# iperf3 through the proxy in every mode: one stream, reverse, both ways at
# once, 4 parallel streams (its control connection goes through it too).
test_iperf3_through_every_mode() {
	load_for_proxy
	bg iperf3 -s -p 9301 >/dev/null 2>&1
	local mode args got
	for _ in $(seq 50); do ss -ltnH "sport = :9301" | grep -q . && break; sleep 0.1; done
	for mode in $(proxy_modes); do
		proxy "$mode"
		for args in "" "-R" "--bidir" "-P 4"; do
			# shellcheck disable=SC2086 # args are words
			iperf3 -c 127.0.0.1 -p 9300 -n 32M $args -J >"$TMP/ip.json" 2>&1 ||
				fail "$mode: iperf3 $args: $(jq -r .error "$TMP/ip.json" 2>/dev/null || cat "$TMP/ip.json")"
			# -n counts what was sent; iperf3's receiver stops counting at the
			# end message, with bytes still in flight (plain TCP too)
			got=$(jq '.end.sum_sent.bytes + (.end.sum_sent_bidir_reverse.bytes // 0)' "$TMP/ip.json")
			assert_gt "$got" $((32 * 1024 * 1024 - 1)) "$mode: iperf3 $args: bytes sent"
			assert_gt "$(jq '.end.sum_received.bytes' "$TMP/ip.json")" 0 "$mode: iperf3 $args: bytes received"
		done
		# (iperf3 ends its data connections with unread bytes: resets, as over plain TCP)
		proxy_stop
		grep -q "connections (.*$mode [1-9]" "$TMP/proxy.err" || fail "$mode: $(cat "$TMP/proxy.err")"
	done
	echo "result: iperf3 -n 32M, -R, --bidir, -P 4 through $(proxy_modes | tr '\n' ' ')"
}

test_ipv6_every_mode_byte_exact() {
	load_for_proxy
	local mode
	for mode in $(proxy_modes); do
		PROXY_LISTEN="[::1]:9300" PROXY_CONNECT="[::1]:9301" proxy "$mode"
		server -a ::1 -p 9301 -s 4M -r 4M
		"$TCPCHECK" -a ::1 -p 9300 -s 4M -r 4M >"$TMP/client.out" 2>&1 ||
			fail "$mode: client side broke: $(cat "$TMP/client.out")"
		wait "$SERVER_PID" || fail "$mode: server side broke"
		proxy_stop
		grep -q "1 connections.*$mode 1.*0 reset" "$TMP/proxy.err" || fail "$mode: $(cat "$TMP/proxy.err")"
	done
}

# 1,000 pairs at once through each mode, each a checked stream both ways
# (tcpmany), all established before any byte; afterwards no entry is left.
test_1000_concurrent_pairs_leave_nothing_behind() {
	ulimit -n 8192
	load_for_proxy
	local many="$TOP/.output/tcpmany" mode srv
	for mode in $(proxy_modes); do
		bg "$many" -l -a 127.0.0.1 -p 9301 -n 1000 -k 16384 -f "$TMP/ready.$mode" >"$TMP/server.out" 2>&1
		srv=$!
		wait_file "$TMP/ready.$mode"
		proxy "$mode"
		"$many" -a 127.0.0.1 -p 9300 -n 1000 -k 16384 -H 200 >"$TMP/client.out" 2>&1 ||
			fail "$mode: client: $(cat "$TMP/client.out"); $(tail -n 1 "$TMP/proxy.err")"
		wait "$srv" || fail "$mode: server: $(cat "$TMP/server.out")"
		proxy_stop
		grep -q "1000 connections (.*$mode 1000.*0 reset" "$TMP/proxy.err" ||
			fail "$mode: $(tail -n 1 "$TMP/proxy.err")"
		assert_eq "$(counter proxy_pairs)" 0 "$mode: pairs registered afterwards"
		assert_eq "$(map_count sbs_ctl)" 0 "$mode: sbs_ctl entries afterwards"
	done
	echo "result: 1,000 concurrent checked pairs through $(proxy_modes | tr '\n' ' ')"
}

# A client that resets mid-stream: the backend must see a reset too, never
# a FIN (a truncated stream must not look complete), in every mode.
test_reset_mid_stream_is_passed_on_as_a_reset() {
	local bytes pause slow
	load_for_proxy
	cat >"$TMP/client.py" <<'EOF'
import socket, struct, sys, time
c = socket.create_connection(("127.0.0.1", 9300))
c.sendall(b"x" * int(sys.argv[1]))
time.sleep(float(sys.argv[2]))
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
c.close()
EOF
	local mode out case
	# mid-stream: 1 MiB, a pause, the reset; during the drain: 8 MiB into a
	# backend that reads 64 KiB every 10 ms, the reset as soon as they are sent
	for case in "1048576 0.3 0" "8388608 0 0.01"; do
		read -r bytes pause slow <<<"$case"
		for mode in $(proxy_modes); do
			backend read "$slow"
			proxy "$mode"
			python3 "$TMP/client.py" "$bytes" "$pause" || fail "$mode: client"
			wait "$BACKEND_PID"
			out=$(cat "$TMP/backend.out")
			[ "${out%% *}" = reset ] || fail "$mode ($bytes B): the backend saw '$out', not a reset"
			proxy_stop
			grep -q "1 connections.*1 reset" "$TMP/proxy.err" ||
				fail "$mode ($bytes B): $(tail -n 1 "$TMP/proxy.err")"
		done
	done
}

# A client that writes and close()s at once, while the proxy still drains
# its bytes into a slow backend: every byte arrives (sha256), then the EOF,
# and the pair ends without a reset.
test_close_racing_the_drain_loses_nothing() {
	load_for_proxy
	cat >"$TMP/client.py" <<'EOF'
import socket, sys
data = open(sys.argv[1], "rb").read()
c = socket.create_connection(("127.0.0.1", 9300))
c.sendall(data)
c.close()  # everything is in the kernel's hands; no shutdown, no wait
EOF
	head -c 8M /dev/urandom >"$TMP/payload"
	local want mode
	want="eof $(stat -c %s "$TMP/payload") $(sha256sum <"$TMP/payload" | cut -d' ' -f1)"
	for mode in $(proxy_modes); do
		backend read 0.01 # 64 KiB every 10 ms: the proxy is still draining at the close
		proxy "$mode"
		python3 "$TMP/client.py" "$TMP/payload" || fail "$mode: client"
		exits_within 120 "$BACKEND_PID" ||
			fail "$mode: the backend got no EOF in 120 s; the proxy's connections: $(proxy_state)"
		wait "$BACKEND_PID"
		assert_eq "$(cat "$TMP/backend.out")" "$want" "$mode: bytes and sha256 at the backend"
		proxy_stop
		grep -q "1 connections.*0 reset" "$TMP/proxy.err" ||
			fail "$mode: $(tail -n 1 "$TMP/proxy.err")"
	done
	echo "result: 8 MiB then close() while draining, $(proxy_modes | xargs): byte-exact, no reset"
}

# The client's last bytes and its FIN in one segment (TCP_CORK holds the
# bytes until shutdown() sets the FIN on them; tcpdump shows it): every mode
# passes the bytes on, then the EOF, and the backend's answer comes back.
test_fin_in_the_same_segment_as_data() {
	load_for_proxy
	cat >"$TMP/client.py" <<'EOF'
import hashlib, os, socket, sys
data = os.urandom(int(sys.argv[1]))
c = socket.create_connection(("127.0.0.1", 9300))
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
c.sendall(data)
c.shutdown(socket.SHUT_WR)  # the FIN joins the corked tail
got = b""
while True:
    b = c.recv(256)
    if not b:
        break
    got += b
sys.exit(0 if got.decode() == hashlib.sha256(data).hexdigest() else 1)
EOF
	local mode size fins
	for mode in $(proxy_modes); do
		backend answer 3
		proxy "$mode"
		# segments to the proxy with the FIN flag and a payload
		capture_start lo "tcp dst port 9300 and tcp[tcpflags] & tcp-fin != 0"
		for size in 1 1000 60000; do
			timeout 60 python3 "$TMP/client.py" "$size" ||
				fail "$mode: $size B: no answer or a wrong one; the proxy's connections: $(proxy_state)"
		done
		fins=$(capture_stop)
		assert_eq "${fins%% *}" 3 "$mode: FIN segments that carried data"
		wait "$BACKEND_PID" || fail "$mode: backend: $(cat "$TMP/backend.out")"
		proxy_stop
		grep -q "3 connections.*0 reset" "$TMP/proxy.err" || fail "$mode: $(tail -n 1 "$TMP/proxy.err")"
	done
	echo "result: 1 B, 1000 B, 60 kB with the FIN in their last segment, $(proxy_modes | xargs): answered"
}

# A client whose bytes and FIN all arrived before the proxy took the
# connection (the proxy stopped meanwhile): every mode passes all of it on,
# then the EOF, and the backend's answer comes back whole.
test_bytes_and_fin_before_registration() {
	load_for_proxy
	local mode client
	for mode in $(proxy_modes); do
		proxy "$mode"
		server -a 127.0.0.1 -p 9301 -s 64K -r 100000
		kill -STOP "$PROXY_PID"
		"$TCPCHECK" -a 127.0.0.1 -p 9300 -s 100000 -r 64K >"$TMP/client.out" 2>&1 &
		client=$!
		PIDS+=("$client")
		sleep 0.5 # connected (the kernel's backlog), 100 kB and the FIN queued
		kill -CONT "$PROXY_PID"
		wait "$client" || fail "$mode: client side broke: $(cat "$TMP/client.out")"
		wait "$SERVER_PID" || fail "$mode: server side broke"
		proxy_stop
		grep -q "1 connections.*0 reset" "$TMP/proxy.err" || fail "$mode: $(tail -n 1 "$TMP/proxy.err")"
	done
}

# lib/example.c, the README's complete small proxy, in every mode
test_library_example_forwards_byte_exact() {
	load_for_proxy
	local mode _
	for mode in $(proxy_modes); do
		bg "$TOP/.output/sbs-example" 9300 9301 "$mode" "$PIN" 2>"$TMP/example.err"
		local ex=$!
		started_with "example: $mode" "$TMP/example.err"
		through -s 16M -r 16M -- -s 16M -r 16M
		through -s 1 -r 1 -- -s 1 -r 1
		kill "$ex"
		wait "$ex" 2>/dev/null
		grep -q reset "$TMP/example.err" && fail "$mode: $(cat "$TMP/example.err")"
	done
	echo "result: lib/example.c forwarded 16 MiB and 1 B each way, byte-exact, in $(proxy_modes | tr '\n' ' ')"
}

test_bypassed_sockets_are_left_to_the_local_bypass() {
	load_roomy # the proxy's connections are local ones, in the cgroup: bypassed
	# splice(2) cannot see bytes sk_msg hands to a socket: the library copies
	# those directions (without that, splice waits for them for ever)
	proxy splice
	through -s 8M -r 8M -- -s 8M -r 8M
	proxy_stop
	assert_gt "$(counter redirected_bytes)" 16000000 "bytes the local bypass redirected (splice mode)"
	has_sockmap_splice || return 0
	proxy sockmap # asks for it: each pair still goes to the copy path
	through -s 8M -r 8M -- -s 8M -r 8M
	proxy_stop
	grep -q "1 connections.*copy 1" "$TMP/proxy.err" || fail "$(cat "$TMP/proxy.err")"
	assert_eq "$(counter proxy_redirected_bytes)" 0 "bytes the proxy's verdict took"
	assert_gt "$(counter redirected_bytes)" 32000000 "bytes the local bypass redirected"
}

# --mode auto (the default) takes the kernel path where it works and says
# so; where sockbypass is not loaded it takes splice and says why.
test_auto_is_sockmap_where_it_works() {
	load_for_proxy
	local want=sockmap loaded
	has_sockmap_splice || want="splice: no sockmap (this kernel has no verdict-only"
	proxy auto
	grep -q "mode $want" "$TMP/proxy.err" || fail "loaded: $(cat "$TMP/proxy.err")"
	through -s 1M -r 1M -- -s 1M -r 1M
	proxy_stop
	grep -q "1 connections (${want%%:*} 1" "$TMP/proxy.err" || fail "$(tail -n 1 "$TMP/proxy.err")"
	loaded=$(sed -n 's/.*listening on [^,]*, mode //p' "$TMP/proxy.err")
	mkdir -p "$TMP/nothing-pinned"
	PIN="$TMP/nothing-pinned" proxy auto
	grep -q "mode splice: no sockmap (sockbypass is not loaded at $TMP/nothing-pinned" \
		"$TMP/proxy.err" || fail "not loaded: $(cat "$TMP/proxy.err")"
	proxy_stop
	echo "result: auto with sockbypass loaded: $loaded; without: splice"
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
	check 2 "--rcvbuf wants a size in bytes" --listen 127.0.0.1:9300 --connect 127.0.0.1:1 \
		--rcvbuf 12
	check 2 "--sndbuf wants a size in bytes" --listen 127.0.0.1:9300 --connect 127.0.0.1:1 \
		--sndbuf 2G
	check 12 "not loaded" --listen 127.0.0.1:9300 --connect 127.0.0.1:1 --mode sockmap \
		--pin-dir "$PIN"
	# maps of another layout, as a load by another version leaves them (the
	# package upgraded while loaded): the library must not write them
	local other
	other="$(dirname "$PIN")/other-version"
	mkdir -p "$other"
	if ! bpftool map create "$other/sbs_sockhash" type sockhash key 8 value 8 entries 16 name sbs_sockhash ||
		! bpftool map create "$other/sbs_dirs" type hash key 8 value 40 entries 16 name sbs_dirs ||
		! bpftool map create "$other/sbs_ctl" type hash key 8 value 24 entries 16 name sbs_ctl; then
		fail "bpftool map create"
	fi
	check 20 "loaded by another version; reload it" --listen 127.0.0.1:9300 --connect 127.0.0.1:1 \
		--mode sockmap --pin-dir "$other"
	bg "$TCPCHECK" -l -a 127.0.0.1 -p 9302 -f "$TMP/ready.busy" -s 0 -r 0
	wait_file "$TMP/ready.busy"
	check 17 "cannot listen on 127.0.0.1:9302: Address already in use" \
		--listen 127.0.0.1:9302 --connect 127.0.0.1:1 --mode copy
	"$PROXY" --help | grep -q "Exit status" || fail "--help"
}

