# shellcheck shell=bash
# Real servers through the bypass: redis and nginx, with the same load run
# outside the cgroup (plain TCP) for comparison. All on the test's own lo.

sha() { sha256sum | cut -d' ' -f1; }

# VPORT, portmap, map, in_instance
# shellcheck source=test/portmap_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/portmap_lib.sh"

test_redis_benchmark_and_large_values() {
	command -v redis-server >/dev/null || fail "redis-server missing (apt-get install redis-server redis-tools)"
	load
	bg redis-server --port 7379 --bind 127.0.0.1 --save "" --appendonly no --dir "$TMP" >"$TMP/redis.log"
	for _ in $(seq 50); do redis-cli -p 7379 ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
	local mode out
	for mode in plain bypass; do
		local run=()
		[ "$mode" = plain ] && run=(outside_cgroup)
		out=$("${run[@]}" redis-benchmark -p 7379 -q -n 40000 -c 20 -d 1024 -t set,get,lpush,lpop 2>&1) ||
			fail "redis-benchmark ($mode): $out"
		grep -qiE "error|refused|reset" <<<"$out" && fail "redis-benchmark ($mode) reported errors: $out"
		[ "$(grep -c 'requests per second' <<<"$out")" = 4 ] || fail "redis-benchmark ($mode): $out"
		echo "result: redis-benchmark $mode: $(tr '\r' '\n' <<<"$out" | grep 'requests per second' |
			sed 's/ requests per second.*//' | tr '\n' ' ')requests/s"
	done
	# 8 MiB of random bytes in, out, through the bypass
	head -c 8M /dev/urandom >"$TMP/value"
	redis-cli -p 7379 -x SET big <"$TMP/value" >/dev/null || fail "SET"
	assert_eq "$(redis-cli -p 7379 --raw GET big | head -c 8M | sha)" "$(sha <"$TMP/value")" "8 MiB value read back"
	assert_gt "$(counter redirected_bytes)" $((16 * 1024 * 1024)) "bytes redis traffic redirected"
}

test_nginx_large_file_to_many_clients() {
	command -v nginx >/dev/null || fail "nginx missing (apt-get install nginx-light)"
	mkdir -p "$TMP/www"
	head -c 64M /dev/urandom >"$TMP/www/big"
	nginx_conf "$TMP/nginx.conf" "$TMP/ngx" "server { listen 127.0.0.1:8088; root $TMP/www; }"
	sed -i 's/worker_processes 1/worker_processes 2/' "$TMP/nginx.conf"
	load
	bg nginx -c "$TMP/nginx.conf" -e "$TMP/nginx.err"
	for _ in $(seq 50); do curl -sf -o /dev/null -r 0-0 http://127.0.0.1:8088/big && break; sleep 0.1; done
	local want i mode
	want=$(sha <"$TMP/www/big")
	for mode in plain bypass; do
		local run=()
		[ "$mode" = plain ] && run=(outside_cgroup)
		local pids=()
		for i in $(seq 8); do
			"${run[@]}" curl -sf http://127.0.0.1:8088/big | sha >"$TMP/got.$mode.$i" &
			pids+=($!)
		done
		for i in "${pids[@]}"; do wait "$i"; done
		for i in $(seq 8); do
			assert_eq "$(cat "$TMP/got.$mode.$i")" "$want" "sha256 of download $i ($mode)"
		done
	done
	assert_gt "$(counter redirected_bytes)" $((8 * 64 * 1024 * 1024)) "bytes nginx sent through the bypass"
	echo "result: nginx sendfile of 64 MiB to 8 curl clients at once, plain and bypassed: all sha256 equal"
}

# Virtual ports with real servers: two redis-server --port VPORT in sibling
# cgroups; each cgroup's redis-cli reaches its own (a SET in one is not seen
# through the other), and redis's own view of its port (CONFIG, INFO, the
# client list's laddr, from getsockname) is VPORT.
test_portmap_two_redis_on_one_port() {
	command -v redis-server >/dev/null || fail "redis-server missing (apt-get install redis-server redis-tools)"
	load
	map a b
	local name _
	for name in a b; do
		mkdir -p "$TMP/redis-$name"
		bg "$TOP/test/run-in-cgroup" "$CG/$name" redis-server --port "$VPORT" --bind 127.0.0.1 \
			--save "" --appendonly no --dir "$TMP/redis-$name" >"$TMP/redis-$name.log"
		for _ in $(seq 50); do
			in_instance "$name" redis-cli -p "$VPORT" ping 2>/dev/null | grep -q PONG && break
			sleep 0.1
		done
	done
	in_instance a redis-cli -p "$VPORT" SET who a >/dev/null || fail "SET in a"
	assert_eq "$(in_instance a redis-cli -p "$VPORT" GET who)" "a" "GET who in a"
	assert_eq "$(in_instance b redis-cli -p "$VPORT" GET who)" "" "GET who in b (a's SET)"
	in_instance b redis-cli -p "$VPORT" SET who b >/dev/null || fail "SET in b"
	assert_eq "$(in_instance a redis-cli -p "$VPORT" GET who)" "a" "GET who in a after b's SET"
	in_instance a redis-cli -p "$VPORT" INFO server | grep -q "^tcp_port:$VPORT" ||
		fail "redis in a does not say tcp_port:$VPORT"
	in_instance a redis-cli -p "$VPORT" CLIENT LIST | grep -q "laddr=127.0.0.1:$VPORT" ||
		fail "redis in a: client laddr: $(in_instance a redis-cli -p "$VPORT" CLIENT LIST)"
	[ -z "$(ss -ltnH "sport = :$VPORT")" ] || fail "a listener on the real port $VPORT"
	# the remapped connections are bypassed
	head -c 4M /dev/urandom >"$TMP/value"
	local before
	before=$(counter redirected_bytes)
	in_instance b redis-cli -p "$VPORT" -x SET big <"$TMP/value" >/dev/null || fail "SET big in b"
	assert_eq "$(in_instance b redis-cli -p "$VPORT" --raw GET big | head -c 4M | sha)" \
		"$(sha <"$TMP/value")" "4 MiB value read back in b"
	assert_gt "$(($(counter redirected_bytes) - before))" 8000000 "bytes redis traffic redirected"
	echo "result: two redis-server --port $VPORT, one per cgroup: separate data, names $VPORT"
}

# nginx listening on VPORT twice (IPv4 and IPv6 each), one per cgroup.
test_portmap_nginx_twice_on_one_port() {
	command -v nginx >/dev/null || fail "nginx missing (apt-get install nginx-light)"
	load
	map a b
	local name _
	for name in a b; do
		nginx_conf "$TMP/nginx-$name.conf" "$TMP/ngx-$name" "server {
		listen 127.0.0.1:$VPORT;
		listen [::1]:$VPORT;
		location / { return 200 \"nginx $name\\n\"; }
	}"
		bg "$TOP/test/run-in-cgroup" "$CG/$name" nginx -c "$TMP/nginx-$name.conf" \
			-e "$TMP/nginx-$name.err"
		for _ in $(seq 50); do
			in_instance "$name" curl -sf -o /dev/null "http://127.0.0.1:$VPORT/" && break
			sleep 0.1
		done
	done
	for name in a b; do
		assert_eq "$(in_instance "$name" curl -s "http://127.0.0.1:$VPORT/")" "nginx $name" "IPv4 in $name"
		assert_eq "$(in_instance "$name" curl -s "http://[::1]:$VPORT/")" "nginx $name" "IPv6 in $name"
	done
	portmap list | grep -q "a $VPORT -> real port [0-9]* (2 sockets)" ||
		fail "a's v4 and v6 listeners do not share one real port: $(portmap list)"
	echo "result: nginx on [::1]:$VPORT and 127.0.0.1:$VPORT twice, one per cgroup: each its own"
}
