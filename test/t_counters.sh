# shellcheck shell=bash
# The counters say exactly what the traffic was, and the maps do not leak.


test_counters_match_traffic() {
	load
	server -a 127.0.0.1 -p 8000 -s 0 -r 1000000
	# 200 writes: fewer than a walked queue holds (README: Kernels), so even a
	# reader that lags all the way behind leaves none of them to TCP
	"$TCPCHECK" -a 127.0.0.1 -p 8000 -s 1000000 -w 5000 -r 0 >/dev/null || fail "transfer"
	wait "$SERVER_PID" || fail "server side broke"
	assert_eq "$(counter hints)" 1 "SYNs seen by our listener"
	assert_eq "$(counter inserted)" 2 "sockets inserted"
	assert_eq "$(counter paired)" 1 "pairs"
	assert_eq "$(counter redirected_msgs)" 200 "redirected messages (one per 5000-byte write)"
	assert_eq "$(counter redirected_bytes)" 1000000 "redirected bytes"
	assert_eq "$(counter passed_bytes)" 0 "bytes sent through TCP"
	assert_eq "$(counter insert_failed)" 0 "insert failures"
}

test_maps_empty_after_connections_close() {
	load
	local i
	for i in $(seq 20); do
		server -a ::1 -p $((8100 + i)) -s 10K -r 10K
		"$TCPCHECK" -a ::1 -p $((8100 + i)) -s 10K -r 10K >/dev/null || fail "transfer $i"
		wait "$SERVER_PID" || fail "server $i"
	done
	assert_eq "$(counter paired)" 20 "pairs"
	sleep 0.2
	assert_eq "$(counter sockets)" 0 "sockets left in the SOCKHASH"
	assert_eq "$(map_count sb_socks)" 0 "entries left in sb_socks"
	assert_eq "$(map_count sb_pending)" 0 "entries left in sb_pending"
	assert_eq "$(map_count sb_sleepers)" 0 "entries left in sb_sleepers"
}

test_status_when_not_loaded() {
	"$SB" --status --pin-dir "$PIN" >"$TMP/out" 2>&1
	assert_eq "$?" 12 "status exit code when not loaded"
	grep -q "loaded: no" "$TMP/out" || fail "status said: $(cat "$TMP/out")"
}

test_status_json_and_prometheus() {
	load
	# 200 messages: fewer than a walked queue may hold, so none can fall back
	server -a 127.0.0.1 -p 8300 -s 0 -r 200000
	"$TCPCHECK" -a 127.0.0.1 -p 8300 -s 200000 -w 1000 -r 0 >/dev/null || fail "transfer"
	wait "$SERVER_PID" || fail "server side broke"
	"$SB" --status --json --pin-dir "$PIN" >"$TMP/status.json" || fail "--json exit code"
	jq -e --arg cg "$CG" '.loaded and .state == "loaded" and .cgroup == $cg and .enabled and
		.sockets == 0 and .counters.paired == 1 and .counters.redirected_bytes == 200000' \
		"$TMP/status.json" >/dev/null || fail "JSON status: $(cat "$TMP/status.json")"
	"$SB" --prometheus --pin-dir "$PIN" >"$TMP/status.prom" || fail "--prometheus exit code"
	local line
	for line in "sockbypass_loaded 1" "sockbypass_redirected_bytes_total 200000" \
		"sockbypass_pairs_total 1" 'sockbypass_fallbacks_total{reason="backlog"} 0' \
		"# TYPE sockbypass_redirected_bytes_total counter" "# TYPE sockbypass_sockets gauge"; do
		grep -qxF "$line" "$TMP/status.prom" || fail "no '$line' in: $(cat "$TMP/status.prom")"
	done
	# every sample line is NAME[{labels}] VALUE, every family has HELP and TYPE once
	grep -v '^#' "$TMP/status.prom" | grep -vqE '^sockbypass_[a-z_]+(\{(reason|list|event)="[a-z_]+"\})? [0-9]+$' &&
		fail "malformed sample line: $(cat "$TMP/status.prom")"
	assert_eq "$(grep -c '^# TYPE sockbypass_fallbacks_total ' "$TMP/status.prom")" 1 "TYPE lines per family"
	grep -q "^cgroup: $CG\$" <("$SB" --status --pin-dir "$PIN") || fail "text status has no cgroup"
	unload
	"$SB" --status --json --pin-dir "$PIN" >"$TMP/status.json"
	assert_eq "$?" 12 "--json exit code when not loaded"
	jq -e '.loaded == false' "$TMP/status.json" >/dev/null || fail "JSON when not loaded: $(cat "$TMP/status.json")"
	"$SB" --prometheus --pin-dir "$PIN" >"$TMP/status.prom"
	assert_eq "$?" 12 "--prometheus exit code when not loaded"
	grep -qx "sockbypass_loaded 0" "$TMP/status.prom" || fail "prometheus when not loaded"
}
