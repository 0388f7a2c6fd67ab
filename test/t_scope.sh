# shellcheck shell=bash
# The port scope: --only-ports and --exclude-ports at load, 'sockbypass scope'
# while loaded. Whether a connection was bypassed is read off lo (tcpdump):
# payload there means TCP carried it.

# lo_payload_of PORT CMD...: run CMD with a capture of PORT on lo; prints the
# payload bytes that crossed lo.
lo_payload_of() {
	local port=$1 bytes
	shift
	capture_start lo tcp port "$port"
	"$@" || fail "'$*' failed"
	read -r _ bytes < <(capture_stop)
	echo "$bytes"
}

# checked PORT [ADDR [LISTEN]]: one checked 1 MiB exchange to PORT.
checked() {
	local port=$1 addr=${2:-127.0.0.1} listen=${3:-${2:-127.0.0.1}}
	server -a "$listen" -p "$port" -s 1M -r 1M >/dev/null
	"$TCPCHECK" -a "$addr" -p "$port" -s 1M -r 1M >/dev/null || return 1
	wait "$SERVER_PID"
}

test_excluded_ports_stay_on_tcp() {
	load --exclude-ports 7100,7200-7210
	assert_gt "$(lo_payload_of 7100 checked 7100)" 100000 "payload on lo, excluded port"
	assert_gt "$(lo_payload_of 7205 checked 7205)" 100000 "payload on lo, port in an excluded range"
	assert_eq "$(lo_payload_of 7300 checked 7300)" 0 "payload on lo, a port not excluded"
	assert_eq "$(counter skip_excluded)" 2 "connections counted as excluded"
	assert_eq "$(counter paired)" 1 "pairs: only the one not excluded"
	# the client's port matches too
	server -a 127.0.0.1 -p 7301 -s 1M -r 1M
	"$TCPCHECK" -a 127.0.0.1 -p 7301 -b 7100 -s 1M -r 1M >/dev/null || fail "client from port 7100"
	wait "$SERVER_PID" || fail "server of the client from port 7100"
	assert_eq "$(counter skip_excluded)" 3 "excluded by the client's port"
	assert_eq "$(counter paired)" 1 "pairs after the client from an excluded port"
}

test_only_ports_bypass_just_those() {
	load --only-ports 7400
	assert_eq "$(lo_payload_of 7400 checked 7400)" 0 "payload on lo, the only port"
	assert_gt "$(lo_payload_of 7401 checked 7401)" 100000 "payload on lo, another port"
	assert_eq "$(counter paired)" 1 "pairs with --only-ports"
	assert_eq "$(counter skip_excluded)" 1 "connections outside --only-ports"
}

test_ipv6_and_v4_mapped_alike() {
	load --exclude-ports 7500
	assert_gt "$(lo_payload_of 7500 checked 7500 ::1)" 100000 "payload on lo, excluded port over ::1"
	# a v4 client of a dual-stack :: listener
	assert_gt "$(lo_payload_of 7500 checked 7500 127.0.0.1 ::)" 100000 "payload on lo, excluded, v4-mapped"
	assert_eq "$(lo_payload_of 7501 checked 7501 127.0.0.1 ::)" 0 "payload on lo, v4-mapped, not excluded"
	assert_eq "$(counter skip_excluded)" 2 "excluded connections, IPv6 and v4-mapped"
}

test_scope_changes_while_loaded() {
	load_roomy
	"$SB" scope --pin-dir "$PIN" >"$TMP/scope.out" || fail "scope show: $(cat "$TMP/scope.out")"
	assert_eq "$(cat "$TMP/scope.out")" "only_ports: -
exclude_ports: -" "scope of a plain load"
	# a connection made before the change keeps the bypass
	server -a 127.0.0.1 -p 7600 -s 4M -r 4M -R 64K
	"$TCPCHECK" -a 127.0.0.1 -p 7600 -s 4M -r 4M -w 64K -S 1500 >/dev/null &
	local early=$!
	sleep 0.5
	"$SB" scope add --exclude-ports 7600,7700-7800 --pin-dir "$PIN" >"$TMP/scope.out" ||
		fail "scope add: $(cat "$TMP/scope.out")"
	grep -qx "exclude_ports: 7600,7700-7800" "$TMP/scope.out" || fail "scope add said: $(cat "$TMP/scope.out")"
	wait "$early" || fail "the connection made before the change broke"
	wait "$SERVER_PID" || fail "server of the connection made before the change"
	assert_eq "$(counter paired)" 1 "the connection made before the change was paired"
	assert_gt "$(counter redirected_bytes)" 8000000 "the connection made before the change stayed bypassed"
	# new connections follow the change
	assert_gt "$(lo_payload_of 7750 checked 7750)" 100000 "payload on lo, port excluded while loaded"
	"$SB" scope remove --exclude-ports 7700-7800 --pin-dir "$PIN" >/dev/null || fail "scope remove"
	assert_eq "$(lo_payload_of 7750 checked 7750)" 0 "payload on lo, port no longer excluded"
	# shown in status, JSON and Prometheus
	grep -qx "exclude_ports: 7600" <("$SB" --status --pin-dir "$PIN") || fail "status: $("$SB" --status --pin-dir "$PIN")"
	"$SB" --json --pin-dir "$PIN" | jq -e '.exclude_ports == "7600" and .only_ports == "" and
		.counters.skip_excluded == 1' >/dev/null || fail "JSON: $("$SB" --json --pin-dir "$PIN")"
	"$SB" scope --json --pin-dir "$PIN" | jq -e '.exclude_ports == "7600"' >/dev/null || fail "scope --json"
	"$SB" --prometheus --pin-dir "$PIN" >"$TMP/prom"
	grep -qxF 'sockbypass_scope_ports{list="exclude"} 1' "$TMP/prom" || fail "prometheus: $(cat "$TMP/prom")"
	grep -qxF 'sockbypass_skipped_total{reason="excluded"} 1' "$TMP/prom" || fail "prometheus: $(cat "$TMP/prom")"
	# one group per metric family, the excluded reason inside it
	assert_eq "$(grep -c '^# TYPE sockbypass_skipped_total' "$TMP/prom")" 1 "TYPE lines of skipped"
	grep -A6 '^# TYPE sockbypass_skipped_total' "$TMP/prom" | grep -q 'reason="excluded"' ||
		fail "skipped{excluded} is not in its family's group: $(cat "$TMP/prom")"
	# an only-list added while loaded, then removed: every port again
	"$SB" scope add --only-ports 7900 --pin-dir "$PIN" >/dev/null || fail "scope add --only-ports"
	assert_gt "$(lo_payload_of 7901 checked 7901)" 100000 "payload on lo, outside the new only-list"
	"$SB" scope remove --only-ports 7900 --pin-dir "$PIN" >/dev/null || fail "scope remove --only-ports"
	assert_eq "$(lo_payload_of 7901 checked 7901)" 0 "payload on lo, only-list emptied"
}

# A splice(2) reader behind --exclude-ports gets every byte (README: Known limits).
test_splice_reader_on_an_excluded_port() {
	load --exclude-ports 7950
	server -a 127.0.0.1 -p 7950 -s 0 -r 8M -X
	"$TCPCHECK" -a 127.0.0.1 -p 7950 -s 8M -r 0 >/dev/null || fail "client"
	wait "$SERVER_PID" || fail "a splice reader on an excluded port lost data"
	# and without the exclusion the same reader fails (the limit it avoids)
	server -a 127.0.0.1 -p 7951 -s 0 -r 1M -X
	"$TCPCHECK" -a 127.0.0.1 -p 7951 -s 1M -r 0 >/dev/null || fail "client"
	wait "$SERVER_PID" && fail "a splice reader of a bypassed socket got its data: update the README"
	return 0
}

# no-root: test_bad_port_lists
test_bad_port_lists() {
	local bad out usage
	for bad in 0 65536 99999999999 "" "," "80," ",80" "80-" "-80" "8000-7000" "80:81" "http" "1--2" "80 81"; do
		out=$("$SB" --exclude-ports "$bad" --pin-dir /nonexistent 2>&1)
		assert_eq "$?" 15 "exit code of --exclude-ports '$bad' ($out)"
		[ "$(wc -l <<<"$out")" = 1 ] || fail "more than one line for '$bad': $out"
		grep -q "^Error: --exclude-ports: .*\(port list\|1-65535\|lower port\)" <<<"$out" ||
			fail "message for '$bad': $out"
	done
	out=$("$SB" --only-ports 80,8000-8100 --exclude-ports 8080 --pin-dir /nonexistent 2>&1)
	assert_eq "$?" 16 "exit code of a port on both lists ($out)"
	grep -qx "Error: port 8080 is on both --only-ports and --exclude-ports; name each port on one list" \
		<<<"$out" || fail "message: $out"
	out=$("$SB" scope add --only-ports 0 2>&1)
	assert_eq "$?" 15 "exit code of scope add with port 0 ($out)"
	out=$("$SB" scope add 2>&1)
	assert_eq "$?" 2 "exit code of scope add without a list ($out)"
	grep -q "add needs --only-ports or --exclude-ports" <<<"$out" || fail "message: $out"
	out=$("$SB" scope frobnicate 2>&1)
	assert_eq "$?" 2 "exit code of an unknown scope action ($out)"
	usage=$("$SB" scope --help) || fail "scope --help"
	grep -q "USAGE: sockbypass scope" <<<"$usage" || fail "scope --help: $usage"
	# every port fits: the map has a slot per port
	"$SB" --exclude-ports 1-65535 --only-ports 1 --pin-dir /nonexistent >/dev/null 2>&1
	assert_eq "$?" 16 "the whole range is a valid list (and then port 1 is on both)"
}

test_scope_state_errors() {
	local out
	out=$("$SB" scope --pin-dir "$PIN" 2>&1)
	assert_eq "$?" 12 "scope with nothing loaded ($out)"
	grep -q "^Error: sockbypass is not loaded" <<<"$out" || fail "message: $out"
	load --exclude-ports 7000
	out=$("$SB" scope add --only-ports 7000 --pin-dir "$PIN" 2>&1)
	assert_eq "$?" 16 "scope add of a port on the other list ($out)"
	grep -qx "exclude_ports: 7000" <("$SB" scope --pin-dir "$PIN") || fail "a refused change changed the lists"
	"$TOP/load.sh" --cgroup "$CG" --pin-dir "$PIN" --exclude-ports 7001 >"$TMP/again.out" 2>&1 ||
		fail "second load: $(cat "$TMP/again.out")"
	{ grep -q "already loaded" "$TMP/again.out" && grep -q "were not applied.*sockbypass scope" "$TMP/again.out"; } ||
		fail "a second load with lists did not say they were not applied: $(cat "$TMP/again.out")"
}
