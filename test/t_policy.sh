# shellcheck shell=bash
# What the bypass skips (README "What the bypass skips"): nftables sees the
# handshake and the FIN of a bypassed connection, not its payload. The rules
# live in the test's own network namespace (run.sh's unshare -n).

# nft_rule RULE...: add RULE to an input chain of the test's own table.
nft_rule() {
	command -v nft >/dev/null || fail "nft missing (apt-get install nftables)"
	nft list table inet sbtest >/dev/null 2>&1 ||
		nft add table inet sbtest \; add chain inet sbtest in '{ type filter hook input priority 0; }' ||
		fail "cannot make an nftables table"
	nft add rule inet sbtest in "$@" || fail "nft add rule $*"
}

# connects PORT: does a checked 64 KiB exchange each way get through in 3 s,
# as both ends see it? (A client can finish while its own bytes are dropped.)
connects() {
	server -a 127.0.0.1 -p "$1" -s 64K -r 64K >/dev/null
	timeout 3 "$TCPCHECK" -a 127.0.0.1 -p "$1" -s 64K -r 64K >/dev/null 2>&1 || {
		kill "$SERVER_PID" 2>/dev/null
		wait "$SERVER_PID" 2>/dev/null
		return 1
	}
	for _ in $(seq 30); do
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill "$SERVER_PID" 2>/dev/null
	wait "$SERVER_PID" 2>/dev/null
}

test_syn_rules_still_stop_connections() {
	nft_rule tcp dport 7010 tcp flags syn reject with tcp reset
	nft_rule tcp dport 7011 tcp flags syn drop
	connects 7010 && fail "plain TCP: a rejected SYN connected"
	connects 7011 && fail "plain TCP: a dropped SYN connected"
	load
	connects 7010 && fail "bypass loaded: a rejected SYN connected"
	connects 7011 && fail "bypass loaded: a dropped SYN connected"
	connects 7012 || fail "bypass loaded: a port without a rule did not connect"
	assert_eq "$(counter paired)" 1 "pairs: only the connection the rules let through"
}

# Established payload: a rule that drops data segments (longer than any
# handshake segment) stops plain TCP, not a bypassed connection; once
# unload.sh turned the bypass off, it stops that connection's new writes.
test_payload_rules_do_not_see_bypassed_data() {
	nft_rule tcp dport 7020-7029 ip length '>' 100 drop
	connects 7020 && fail "plain TCP: data got through a rule that drops it"
	load
	connects 7021 || fail "bypassed: the documented behaviour changed (the rule stopped bypassed data)"
	# one connection across the unload: 32 writes of 16 KiB, 150 ms apart
	server -a 127.0.0.1 -p 7022 -s 0 -r 512K >"$TMP/server.out" 2>&1
	"$TCPCHECK" -a 127.0.0.1 -p 7022 -s 512K -r 0 -w 16K -g 150000 >/dev/null 2>&1 &
	local client=$! before
	PIDS+=("$client")
	sleep 1
	before=$(counter redirected_bytes)
	assert_gt "$before" 0 "bytes redirected before the unload"
	unload
	sleep 5
	kill -0 "$SERVER_PID" 2>/dev/null ||
		fail "the stream completed after unload.sh: the rule did not stop its new writes ($(cat "$TMP/server.out"))"
	echo "result: $before bytes bypassed the rule; after unload.sh the rule stopped the rest"
}
