# shellcheck shell=bash
# Tracing: lines for a connection when loaded with --trace, none without.

tracefs() {
	local d
	for d in /sys/kernel/tracing /sys/kernel/debug/tracing; do
		[ -r "$d/trace" ] && { echo "$d"; return; }
	done
	mount -t tracefs nodev /sys/kernel/tracing && echo /sys/kernel/tracing
}

# The trace buffer is global and outlives tests: ports unique to this run
# keep an old line from passing for a new one.
port() { echo $((20000 + RANDOM % 30000)); }

# one checked connection on PORT
connection() {
	server -a 127.0.0.1 -p "$1" -s 64K -r 64K
	"$TCPCHECK" -a 127.0.0.1 -p "$1" -s 64K -r 64K >/dev/null || fail "client"
	wait "$SERVER_PID" || fail "server"
}

test_trace_lines_for_a_connection() {
	if ! "$TOP/load.sh" --cgroup "$CG" --pin-dir "$PIN" --trace >"$TMP/load.out" 2>&1; then
		grep -q "lacks bpf_trace_vprintk (Linux 5.16+), which --trace needs" "$TMP/load.out" ||
			fail "load.sh --trace failed: $(cat "$TMP/load.out")"
		[ ! -e "$PIN" ] || fail "a refused --trace load left $PIN"
		not_applicable "no bpf_trace_vprintk: --trace is refused in one line (exit 4)"
	fi
	grep -q "^trace: on" <("$SB" --status --pin-dir "$PIN") || fail "status does not say trace: on"
	# the non-consuming buffer first: trace_pipe below takes lines out of it
	local p1 p2 p3
	p1=$(port) p2=$(port) p3=$(port)
	connection "$p1"
	grep -q "sockbypass: paired 127.0.0.1:[0-9]* -> 127.0.0.1:$p1 pid [0-9]* " "$(tracefs)/trace" ||
		fail "nothing in the trace buffer"
	"$TOP/trace_bpf_output.sh" --pin-dir "$PIN" >"$TMP/trace.out" 2>"$TMP/trace.err" &
	local tracer=$!
	PIDS+=("$tracer")
	sleep 0.5
	connection "$p2"
	for _ in $(seq 100); do # under emulation the lines may take a while
		grep -q "paired .*:$p2 " "$TMP/trace.out" && break
		sleep 0.1
	done
	kill -TERM "$tracer"
	wait "$tracer"
	assert_eq "$?" 0 "trace_bpf_output.sh exit code when stopped"
	# kernels that do not let sockops ask for the task (6.1) say so at load
	local task="pid [0-9]* tcpcheck"
	grep -q "sockops programs ask for the current task" "$TMP/load.out" && task="pid 0 -"
	grep -q "sockbypass: inserted client 127.0.0.1:[0-9]* -> 127.0.0.1:$p2 $task" \
		"$TMP/trace.out" || fail "no client line: $(cat "$TMP/trace.out" "$TMP/trace.err")"
	grep -q "sockbypass: paired 127.0.0.1:[0-9]* -> 127.0.0.1:$p2" "$TMP/trace.out" ||
		fail "no pair line: $(cat "$TMP/trace.out")"
	# a server outside the cgroup: the client is skipped, and the line says why
	bg outside_cgroup "$TCPCHECK" -l -f "$TMP/ready" -a ::1 -p "$p3" -s 1K -r 1K
	wait_file "$TMP/ready"
	"$TCPCHECK" -a ::1 -p "$p3" -s 1K -r 1K >/dev/null || fail "client"
	grep -q "sockbypass: skip (server not ours) \[0000:0000:0000:0000:0000:0000:0000:0001\]:[0-9]* -> .*:$p3 " \
		"$(tracefs)/trace" || fail "no skip line for an IPv6 client of a server outside the cgroup"
}

test_no_trace_lines_without_trace() {
	load
	local p
	p=$(port)
	connection "$p"
	grep -q "sockbypass: .*:$p " "$(tracefs)/trace" && fail "trace lines without --trace"
	"$TOP/trace_bpf_output.sh" --pin-dir "$PIN" 2>"$TMP/err" >/dev/null &
	local tracer=$!
	for _ in $(seq 100); do # the note comes first; under emulation that can take seconds
		grep -q "tracing is off" "$TMP/err" && break
		sleep 0.1
	done
	kill -TERM "$tracer"
	wait "$tracer"
	grep -q "tracing is off.*load.sh --trace" "$TMP/err" || fail "no hint that tracing is off: $(cat "$TMP/err")"
}

test_verify_demo_with_and_without_bypass() {
	# no command and no --seconds: its own 3-second iperf3 test
	"$TOP/trace_lo_traffic.sh" --verify >"$TMP/off.out" 2>&1
	assert_eq "$?" 1 "--verify exit code with nothing loaded"
	grep -q "^FAIL: payload crossed lo" "$TMP/off.out" || fail "without bypass: $(cat "$TMP/off.out")"
	load
	"$TOP/trace_lo_traffic.sh" --verify >"$TMP/on.out" 2>&1 ||
		fail "--verify with the bypass loaded: $(cat "$TMP/on.out")"
	grep -q "^OK: no payload crossed lo" "$TMP/on.out" || fail "no OK line: $(cat "$TMP/on.out")"
	grep -qE "payload +0 packets, 0 bytes" "$TMP/on.out" || fail "payload line: $(cat "$TMP/on.out")"
	local syn
	syn=$(awk '/handshake/ { print $NF }' "$TMP/on.out")
	assert_gt "$syn" 3 "handshake packets of iperf3's two connections"
}

test_verify_around_a_command() {
	load
	server -a ::1 -p 9900 -s 1M -r 1M
	"$TOP/trace_lo_traffic.sh" --verify --port 9900 -- "$TCPCHECK" -a ::1 -p 9900 -s 1M -r 1M \
		>"$TMP/out" 2>&1 || fail "--verify around a bypassed command: $(cat "$TMP/out")"
	wait "$SERVER_PID" || fail "server"
	# the same from outside the cgroup: TCP carries it, and --verify says so
	server -a ::1 -p 9901 -s 1M -r 1M
	outside_cgroup "$TOP/trace_lo_traffic.sh" --verify --port 9901 -- "$TCPCHECK" -a ::1 -p 9901 \
		-s 1M -r 1M >"$TMP/out" 2>&1
	assert_eq "$?" 1 "--verify exit code for a connection that was not bypassed"
	"$TOP/trace_lo_traffic.sh" --verify --port 9902 -- false >"$TMP/out" 2>&1
	assert_eq "$?" 14 "--verify exit code when the command fails"
	"$TOP/trace_lo_traffic.sh" --verify --port 9903 --seconds 1 >"$TMP/out" 2>&1
	assert_eq "$?" 13 "--verify exit code when nothing crossed lo"
	grep -q "no TCP packet crossed lo" "$TMP/out" || fail "nothing-seen message: $(cat "$TMP/out")"
}
