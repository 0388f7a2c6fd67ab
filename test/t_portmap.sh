# shellcheck shell=bash
# Virtual ports: instances in sibling cgroups (children of the test's own)
# bind the same port; each one's clients reach it; names read as that port.

# VPORT, portmap, map, in_instance
# shellcheck source=test/portmap_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/portmap_lib.sh"

# http_instance NAME [BIND_ADDR]: python's http.server on VPORT in cgroup
# NAME, serving $TMP/www-NAME/who ("instance NAME"); pid in HTTP_PID.
http_instance() {
	local name=$1 addr=${2:-127.0.0.1} _
	mkdir -p "$CG/$name" "$TMP/www-$name"
	echo "instance $name" >"$TMP/www-$name/who"
	head -c 4M /dev/urandom >"$TMP/www-$name/blob"
	bg "$TOP/test/run-in-cgroup" "$CG/$name" python3 -m http.server "$VPORT" --bind "$addr" \
		--directory "$TMP/www-$name" >"$TMP/http-$name.log" 2>&1
	HTTP_PID=$!
	for _ in $(seq 100); do
		in_instance "$name" curl -s -o /dev/null "http://127.0.0.1:$VPORT/who" && return 0
		kill -0 "$HTTP_PID" 2>/dev/null || fail "http.server in $name: $(cat "$TMP/http-$name.log")"
		sleep 0.05
	done
	fail "http.server in $name does not answer: $(cat "$TMP/http-$name.log")"
}

# who NAME [URL_HOST]: what a client in cgroup NAME gets from VPORT
who() {
	in_instance "$1" curl -s --max-time 5 "http://${2:-127.0.0.1}:$VPORT/who"
}

# real_port NAME: the real port of NAME's mapping of VPORT (portmap list --json)
real_port() {
	portmap list --json | jq -r --arg cg "$CG/$1" --argjson p "$VPORT" \
		'.portmap.mappings[] | select(.cgroup == $cg and .port == $p) | .real'
}

test_two_instances_bind_the_same_port_each_serves_its_own() {
	load_roomy
	map a b
	http_instance a
	http_instance b # without the mapping: EADDRINUSE, and b's curl gets a's answer
	assert_eq "$(who a)" "instance a" "what a client in a got"
	assert_eq "$(who b)" "instance b" "what a client in b got"
	# a client of no instance gets what it would with no listener
	curl -s --max-time 5 "http://127.0.0.1:$VPORT/who" >/dev/null
	assert_eq "$?" 7 "curl's exit code for a client in no instance (connection refused)"
	# ss shows the real ports, nobody on the virtual one
	[ -z "$(ss -ltnH "sport = :$VPORT")" ] || fail "a listener on the real port $VPORT: $(ss -ltn)"
	local ra rb
	ra=$(real_port a) rb=$(real_port b)
	assert_gt "$ra" 0 "a's real port"
	assert_gt "$rb" 0 "b's real port"
	[ "$ra" != "$rb" ] || fail "a and b share real port $ra"
	ss -ltnH "sport = :$ra" | grep -q . || fail "no listener on a's real port $ra"
	# the bypass composes: the remapped connection is paired, its bytes redirected
	local before
	before=$(counter redirected_bytes)
	in_instance b curl -s "http://localhost:$VPORT/blob" | cmp - "$TMP/www-b/blob" ||
		fail "b's 4 MiB file came back different"
	assert_gt "$(($(counter redirected_bytes) - before))" 4000000 "bytes redirected for b's download"
	assert_eq "$(counter portmap_mappings)" 2 "portmap_mappings in --status"
	"$SB" --json --pin-dir "$PIN" | jq -e '.portmap.mappings | length == 2' >/dev/null ||
		fail "--json: $("$SB" --json --pin-dir "$PIN")"
	"$SB" --prometheus --pin-dir "$PIN" | grep -qx "sockbypass_portmap_mappings 2" ||
		fail "--prometheus has no sockbypass_portmap_mappings 2"
	echo "result: two http.servers on port $VPORT (real $ra and $rb), each cgroup's curl got its own"
}

# names.py FAMILY: listen on VPORT (4: 127.0.0.1, 6: ::1, dual: :: with a
# 127.0.0.1 client), connect, exchange; print the ports the application sees:
# listener, accepted socket, client's peer. Holds its sockets until $TMP/done.
write_names_py() {
	cat >"$TMP/names.py" <<'EOF'
import os, socket, sys, time
fam, port, done = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if fam == "4":
    ls, caddr = socket.socket(socket.AF_INET), ("127.0.0.1", port)
    ls.bind(("127.0.0.1", port))
else:
    ls = socket.socket(socket.AF_INET6)
    ls.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if fam == "6" else 0)
    ls.bind(("::1" if fam == "6" else "::", port))
    caddr = ("::1", port) if fam == "6" else ("127.0.0.1", port)
ls.listen()
c = socket.create_connection(caddr)
s, _ = ls.accept()
c.sendall(b"ping")
assert s.recv(4) == b"ping"
print(ls.getsockname()[1], s.getsockname()[1], c.getpeername()[1], flush=True)
while not os.path.exists(done):
    time.sleep(0.05)
EOF
}

test_names_read_as_the_virtual_port_ipv4_ipv6_dual_stack() {
	load
	write_names_py
	local fam
	map a b
	for fam in 4 6 dual; do
		rm -f "$TMP/done"
		in_instance a python3 "$TMP/names.py" "$fam" "$VPORT" "$TMP/done" >"$TMP/names.a" 2>&1 &
		local pa=$!
		PIDS+=("$pa")
		wait_file_content "$TMP/names.a"
		# b binds the same port while a holds it
		in_instance b python3 "$TMP/names.py" "$fam" "$VPORT" "$TMP/done" >"$TMP/names.b" 2>&1 &
		local pb=$!
		PIDS+=("$pb")
		wait_file_content "$TMP/names.b"
		[ -z "$(ss -ltnH "sport = :$VPORT")" ] || fail "$fam: a listener on real port $VPORT"
		touch "$TMP/done"
		wait "$pa" || fail "$fam: a: $(cat "$TMP/names.a")"
		wait "$pb" || fail "$fam: b: $(cat "$TMP/names.b")"
		assert_eq "$(cat "$TMP/names.a")" "$VPORT $VPORT $VPORT" "$fam: a's listener, accepted, peer ports"
		assert_eq "$(cat "$TMP/names.b")" "$VPORT $VPORT $VPORT" "$fam: b's listener, accepted, peer ports"
	done
	assert_gt "$(counter portmap_names)" 17 "getsockname/getpeername answers translated"
	echo "result: IPv4, IPv6, dual-stack with a v4 client: listener, accepted and peer name $VPORT in both"
}

# wait_file_content FILE: a line in FILE (at most 5 s)
wait_file_content() {
	local _
	for _ in $(seq 100); do
		[ -s "$1" ] && return 0
		sleep 0.05
	done
	fail "nothing in $1"
}

test_default_instance_answers_outsiders() {
	load
	map a
	mkdir -p "$CG/b"
	portmap add --cgroup "$CG/b" --default "$VPORT" >"$TMP/add.out" ||
		fail "add --default: $(cat "$TMP/add.out")"
	http_instance a
	http_instance b
	assert_eq "$(curl -s --max-time 5 "http://127.0.0.1:$VPORT/who")" "instance b" \
		"what a client in no instance got"
	assert_eq "$(who a)" "instance a" "what a client in a got"
	# a child cgroup of a is part of a
	assert_eq "$(who a/worker)" "instance a" "what a client in a child of a got"
	assert_gt "$(counter portmap_default_connects)" 0 "connects sent to the default instance"
	portmap list | grep -q "b $VPORT -> real port [0-9]* (1 socket), default for outsiders" ||
		fail "list: $(portmap list)"
}

test_reuseport_group_shares_one_real_port() {
	load
	map a
	cat >"$TMP/reuse.py" <<'EOF'
import os, socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
open(sys.argv[2], "w").close()
while not os.path.exists(sys.argv[3]):
    time.sleep(0.05)
EOF
	bg "$TOP/test/run-in-cgroup" "$CG/a" python3 "$TMP/reuse.py" "$VPORT" "$TMP/r1" "$TMP/done"
	local p1=$!
	wait_file "$TMP/r1"
	bg "$TOP/test/run-in-cgroup" "$CG/a" python3 "$TMP/reuse.py" "$VPORT" "$TMP/r2" "$TMP/done"
	local p2=$!
	wait_file "$TMP/r2"
	local real
	real=$(real_port a)
	assert_eq "$(ss -ltnH "sport = :$real" | wc -l)" 2 "listeners on a's real port $real"
	portmap list | grep -q "a $VPORT -> real port $real (2 sockets)" || fail "list: $(portmap list)"
	touch "$TMP/done"
	wait "$p1" "$p2"
	sleep 0.2
	portmap list | grep -q "a $VPORT -> no listener yet" || fail "after both closed: $(portmap list)"
}

test_restarted_instance_gets_a_new_port_and_no_stale_entry() {
	load
	map a
	local i
	for i in 1 2 3; do
		http_instance a
		assert_eq "$(who a)" "instance a" "restart $i: what a client in a got"
		assert_eq "$(map_count pm_real)" 1 "restart $i: real ports known"
		kill "$HTTP_PID"
		wait "$HTTP_PID" 2>/dev/null
		sleep 0.2
		assert_eq "$(map_count pm_real)" 0 "restart $i: real ports known after the instance ended"
		assert_eq "$(map_count pm_socks)" 0 "restart $i: sockets remembered after the instance ended"
		portmap list | grep -q "a $VPORT -> no listener yet" || fail "restart $i: $(portmap list)"
	done
}

test_remove_and_unload_with_listeners_alive() {
	load
	map a
	# a checked 32 MiB exchange through the virtual port to a slow reader
	bg "$TOP/test/run-in-cgroup" "$CG/a" "$TCPCHECK" -l -f "$TMP/ready" -a 127.0.0.1 \
		-p "$VPORT" -s 32M -r 32M -R 64K -d 2000
	local server=$!
	wait_file "$TMP/ready"
	in_instance a "$TCPCHECK" -a 127.0.0.1 -p "$VPORT" -s 32M -r 32M >"$TMP/client.out" 2>&1 &
	local client=$! real _
	PIDS+=("$client")
	real=$(real_port a)
	# connected (a slow guest may take a while to start the client)
	for _ in $(seq 100); do
		[ -n "$(ss -tnH state established "( sport = :$real )")" ] && break
		sleep 0.05
	done
	portmap remove --cgroup "$CG/a" >"$TMP/rm.out" || fail "remove: $(cat "$TMP/rm.out")"
	grep -q "unmapped port $VPORT" "$TMP/rm.out" || fail "remove said: $(cat "$TMP/rm.out")"
	# the listener keeps its real port; new clients get what they would with no listener
	in_instance a "$TCPCHECK" -a 127.0.0.1 -p "$VPORT" -s 1 -r 0 >/dev/null 2>&1 &&
		fail "a new client reached the unmapped port"
	sleep 0.3
	unload --timeout 30
	wait "$client" || fail "the stream broke: $(cat "$TMP/client.out")"
	wait "$server" || fail "the server saw a broken stream"
	echo "result: 32 MiB each way intact across portmap remove and unload"
}

test_udp_binds_are_left_alone() {
	load
	map a
	in_instance a python3 -c '
import socket, sys
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("127.0.0.1", int(sys.argv[1])))
print(u.getsockname()[1])' "$VPORT" >"$TMP/udp.out" 2>&1 || fail "UDP bind: $(cat "$TMP/udp.out")"
	assert_eq "$(cat "$TMP/udp.out")" "$VPORT" "the port a UDP socket of a bound"
}

test_bad_input_gets_one_line_and_its_code() {
	local rc
	check() { # code pattern args...
		local code=$1 pattern=$2
		shift 2
		"$SB" portmap "$@" >"$TMP/out" 2>&1
		rc=$?
		assert_eq "$rc" "$code" "exit code of sockbypass portmap $*"
		grep -q -- "$pattern" "$TMP/out" || fail "sockbypass portmap $*: $(cat "$TMP/out")"
		# usage errors: argp's line and its "Try --help"
		[ "$code" = 2 ] || assert_eq "$(wc -l <"$TMP/out")" 1 "lines from sockbypass portmap $*"
	}
	mkdir -p "$CG/a"
	check 12 "not loaded" add --cgroup "$CG/a" "$VPORT" --pin-dir "$PIN"
	load
	check 2 "say add, remove or list" --pin-dir "$PIN"
	check 2 "add needs --cgroup" add "$VPORT" --pin-dir "$PIN"
	check 2 "'move' is not add, remove or list" move --pin-dir "$PIN"
	check 15 "'0' is not a port" add --cgroup "$CG/a" 0 --pin-dir "$PIN"
	check 15 "'70000' is not a port" add --cgroup "$CG/a" 70000 --pin-dir "$PIN"
	check 15 "'http' is not a port" add --cgroup "$CG/a" http --pin-dir "$PIN"
	check 6 "No such file" add --cgroup "$CG/nosuch" "$VPORT" --pin-dir "$PIN"
	check 6 "not a cgroup v2 directory" add --cgroup "$TMP" "$VPORT" --pin-dir "$PIN"
	check 6 "outside the cgroup sockbypass covers" add --cgroup "$ORIG_CG" "$VPORT" --pin-dir "$PIN"
	map a
	check 18 "already mapped" add --cgroup "$CG/a" "$VPORT" --pin-dir "$PIN"
	mkdir -p "$CG/b"
	check 18 "already mapped" add --cgroup "$CG/b" 9501 9501 --pin-dir "$PIN"
	check 19 "not mapped" remove --cgroup "$CG/a" 9501 --pin-dir "$PIN"
	portmap add --cgroup "$CG/a" --default 9502 >/dev/null
	check 18 "already answers clients of no instance" add --cgroup "$CG/b" --default 9502 \
		--pin-dir "$PIN"
	"$SB" portmap --help | grep -q "Exit codes" || fail "portmap --help"
	unload
	# a kernel that refuses the programs (here: a shim refuses the getsockname hook)
	NOBPF_FAIL_PROG=pm_getsockname4 LD_PRELOAD="$TOP/.output/nobpf.so" \
		"$SB" --cgroup "$CG" --pin-dir "$PIN" >"$TMP/load.out" 2>&1 || fail "load: $(cat "$TMP/load.out")"
	grep -q "virtual ports are not available" "$TMP/load.out" || fail "load: $(cat "$TMP/load.out")"
	check 4 "virtual ports are not loaded" list --pin-dir "$PIN"
	assert_eq "$(find "$PIN" -name 'pm_*' | wc -l)" 0 "virtual ports' pins after the refusal"
}
