# shellcheck shell=bash
# Real servers through the bypass: redis and nginx, with the same load run
# outside the cgroup (plain TCP) for comparison. All on the test's own lo.

sha() { sha256sum | cut -d' ' -f1; }

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
	mkdir -p "$TMP/www" "$TMP/ngx"
	head -c 64M /dev/urandom >"$TMP/www/big"
	cat >"$TMP/nginx.conf" <<CONF
daemon off;
user root;
worker_processes 2;
pid $TMP/nginx.pid;
error_log $TMP/nginx.err;
events {}
http {
	access_log off;
	client_body_temp_path $TMP/ngx/body;
	proxy_temp_path $TMP/ngx/proxy;
	fastcgi_temp_path $TMP/ngx/fastcgi;
	uwsgi_temp_path $TMP/ngx/uwsgi;
	scgi_temp_path $TMP/ngx/scgi;
	server { listen 127.0.0.1:8088; root $TMP/www; }
}
CONF
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
