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
	load --trace
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
	sleep 0.5
	kill -TERM "$tracer"
	wait "$tracer"
	assert_eq "$?" 0 "trace_bpf_output.sh exit code when stopped"
	grep -q "sockbypass: inserted client 127.0.0.1:[0-9]* -> 127.0.0.1:$p2 pid [0-9]* tcpcheck" \
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
	sleep 0.3
	kill -TERM "$tracer"
	wait "$tracer"
	grep -q "tracing is off.*load.sh --trace" "$TMP/err" || fail "no hint that tracing is off: $(cat "$TMP/err")"
}
