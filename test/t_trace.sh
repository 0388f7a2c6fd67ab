# shellcheck shell=bash
# Tracing: lines for a connection when loaded with --trace, none without.

tracefs() {
	local d
	for d in /sys/kernel/tracing /sys/kernel/debug/tracing; do
		[ -r "$d/trace" ] && { echo "$d"; return; }
	done
	mount -t tracefs nodev /sys/kernel/tracing && echo /sys/kernel/tracing
}

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
	connection 9800
	grep -q "sockbypass: paired 9800<-" "$(tracefs)/trace" || fail "nothing in the trace buffer"
	"$TOP/trace_bpf_output.sh" --pin-dir "$PIN" >"$TMP/trace.out" 2>"$TMP/trace.err" &
	local tracer=$!
	PIDS+=("$tracer")
	sleep 0.5
	connection 9801
	sleep 0.5
	kill -TERM "$tracer"
	wait "$tracer"
	assert_eq "$?" 0 "trace_bpf_output.sh exit code when stopped"
	grep -q "sockbypass: client [0-9]*->9801 inserted" "$TMP/trace.out" ||
		fail "no client line: $(cat "$TMP/trace.out" "$TMP/trace.err")"
	grep -q "sockbypass: paired 9801<-" "$TMP/trace.out" || fail "no pair line: $(cat "$TMP/trace.out")"
}

test_no_trace_lines_without_trace() {
	load
	connection 9802
	grep -q "sockbypass: paired 9802<-" "$(tracefs)/trace" && fail "trace lines without --trace"
	"$TOP/trace_bpf_output.sh" --pin-dir "$PIN" 2>"$TMP/err" >/dev/null &
	local tracer=$!
	sleep 0.3
	kill -TERM "$tracer"
	wait "$tracer"
	grep -q "tracing is off.*load.sh --trace" "$TMP/err" || fail "no hint that tracing is off: $(cat "$TMP/err")"
}
