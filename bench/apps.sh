#!/usr/bin/env bash
# make bench, application part: the programs an operator would try first, over
# plain TCP on 127.0.0.1 (servers and clients outside the covered cgroup),
# through sockbypass (both inside it), and over AF_UNIX where the program
# speaks it (the limit of what skipping TCP can give). Each server runs twice,
# once per cgroup, for the whole run; rounds interleave the modes, and the
# table gives medians and the median of the per-round ratios. Writes
# bench/results/latest/apps.md and, with gnuplot, apps.png.
#
#   redis-benchmark  SET/GET 1 KiB, 50 clients, and pipelined (-P 16): requests/s, p50, p99
#   pgbench          -S (select only) and the TPC-B-like default, 8 clients: tps, mean latency
#   wrk -> nginx     1 KiB and 1 MiB, keep-alive; 1 KiB with Connection: close: requests/s, p99
#   h2load -> nghttpd  HTTP/2, 4 connections x 32 streams, 1 KiB: requests/s
#   git clone        from git daemon, a 64 MiB repository: seconds
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)

case "${1:-}" in
-h | --help)
	echo "Usage: sudo make bench [QUICK=1]   (this is its application part: bench/apps.sh)"
	echo "Needs redis-server, redis-tools, postgresql, nginx-light, wrk, nghttp2-client,"
	echo "nghttp2-server, git ('make bench' installs them)."
	exit 0 ;;
esac
# shellcheck source=bench/enter.sh
. "$here/enter.sh"
for c in redis-server redis-benchmark pgbench nginx wrk h2load nghttpd git; do
	command -v "$c" >/dev/null || { echo "Error: $c is missing: run 'sudo make bench' (it installs what the benchmark uses)" >&2; exit 10; }
done
pgbin=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
[ -x "$pgbin/postgres" ] || { echo "Error: no PostgreSQL server in /usr/lib/postgresql: apt-get install postgresql" >&2; exit 10; }

if [ "${QUICK:-0}" = 1 ]; then REPS=2 SECS=2 REDIS_N=20000; else REPS=3 SECS=5 REDIS_N=100000; fi
rows="$TMP/rows.tsv" # workload mode rep metric value
: >"$rows"
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$rows"; }

load
chmod 711 "$TMP" # the postgres user reaches its data directories below
# off and unix outside the covered cgroup, on inside it
cgroup_of() { [ "$1" = on ] && echo "$CG" || echo "$ORIG_CG"; }
in_mode() { # MODE CMD...: run CMD where MODE's servers and clients live
	local cg
	cg=$(cgroup_of "$1")
	shift
	"$top/test/run-in-cgroup" "$cg" "$@"
}
bg_in_mode() { local m=$1; shift; bg "$top/test/run-in-cgroup" "$(cgroup_of "$m")" "$@"; }
# a TCP port per mode: off and on each have their own server
port() { [ "$2" = on ] && echo $(($1 + 1)) || echo "$1"; }
wait_port() { # PORT: listening within 10 s
	for _ in $(seq 100); do
		ss -Hltn "sport = :$1" | grep -q . && return 0
		sleep 0.1
	done
	echo "Error: nothing listens on port $1" >&2
	exit 1
}

# ---- servers: one per mode, for the whole run ----------------------------
mkdir -p "$TMP/www" "$TMP/repos"
head -c 1024 /dev/urandom >"$TMP/www/1k"
head -c 1048576 /dev/urandom >"$TMP/www/1m"
for m in off on; do
	bg_in_mode "$m" redis-server --port "$(port 7380 "$m")" --bind 127.0.0.1 --save "" \
		--appendonly no --dir "$TMP" --unixsocket "$TMP/redis-$m.sock" --unixsocketperm 700 \
		>"$TMP/redis-$m.log"
	nginx_conf "$TMP/nginx-$m.conf" "$TMP/ngx-$m" "server { listen 127.0.0.1:$(port 8090 "$m"); root $TMP/www; keepalive_requests 1000000; }"
	bg_in_mode "$m" nginx -c "$TMP/nginx-$m.conf"
	bg_in_mode "$m" nghttpd --no-tls -d "$TMP/www" "$(port 8190 "$m")" >/dev/null
	bg_in_mode "$m" git daemon --reuseaddr --base-path="$TMP/repos" --export-all \
		--listen=127.0.0.1 --port="$(port 9418 "$m")" >/dev/null 2>&1
	# PostgreSQL: a cluster each, as the postgres user (it refuses root); fsync off:
	# this measures the connection, not the disk
	mkdir -p "$TMP/pg-$m" "$TMP/pgsock-$m"
	chown postgres: "$TMP/pg-$m" "$TMP/pgsock-$m"
	setpriv --reuid postgres --regid postgres --init-groups "$pgbin/initdb" -D "$TMP/pg-$m" \
		-U postgres --auth=trust >"$TMP/initdb-$m.log" 2>&1 ||
		{ echo "Error: initdb failed: $(tail -n 3 "$TMP/initdb-$m.log")" >&2; exit 1; }
	bg_in_mode "$m" setpriv --reuid postgres --regid postgres --init-groups "$pgbin/postgres" \
		-D "$TMP/pg-$m" -p "$(port 5440 "$m")" -k "$TMP/pgsock-$m" -c listen_addresses=127.0.0.1 \
		-c fsync=off -c synchronous_commit=off -c max_connections=50 >"$TMP/pg-$m.log" 2>&1
done
# a repository of 64 incompressible MiB, one commit
git init -q "$TMP/src"
for i in $(seq 64); do head -c 1048576 /dev/urandom >"$TMP/src/blob$i"; done
git -C "$TMP/src" add . && git -C "$TMP/src" -c user.name=bench -c user.email=bench@localhost commit -qm big
git clone -q --bare "$TMP/src" "$TMP/repos/big.git"
for m in off on; do
	for p in 7380 8090 8190 9418 5440; do wait_port "$(port "$p" "$m")"; done
	pgbench -i -q -s 4 -h 127.0.0.1 -p "$(port 5440 "$m")" -U postgres postgres >"$TMP/pgi-$m.log" 2>&1 ||
		{ echo "Error: pgbench -i failed: $(tail -n 3 "$TMP/pgi-$m.log")" >&2; exit 1; }
done

# ---- workloads: each records its metrics for (mode, rep) -----------------
redis_run() { # mode rep
	local m=$1 rep=$2 target pipe name line
	for pipe in 1 16; do
		if [ "$m" = unix ]; then target=(-s "$TMP/redis-off.sock"); else target=(-h 127.0.0.1 -p "$(port 7380 "$m")"); fi
		name=$([ "$pipe" = 1 ] && echo "redis" || echo "redis -P 16")
		# "SET","rps","avg","min","p50","p95","p99","max"
		while IFS=, read -r test rps _ _ p50 _ p99 _; do
			test=${test//\"/}
			[ "$test" = SET ] || [ "$test" = GET ] || continue
			line="$name $test 1 KiB"
			record "$line" "$m" "$rep" rps "${rps//\"/}"
			record "$line" "$m" "$rep" p50_ms "${p50//\"/}"
			record "$line" "$m" "$rep" p99_ms "${p99//\"/}"
		done < <(in_mode "$m" redis-benchmark "${target[@]}" \
			-t set,get -d 1024 -c 50 -n "$REDIS_N" -P "$pipe" --csv 2>/dev/null)
	done
}

pgbench_run() { # mode rep
	local m=$1 rep=$2 host port kind out select
	host=127.0.0.1 port=$(port 5440 "$m")
	[ "$m" = unix ] && host=$TMP/pgsock-off port=5440
	for kind in -S TPC-B; do
		select=()
		[ "$kind" = -S ] && select=(-S)
		out=$(in_mode "$m" pgbench -c 8 -j 2 -T "$SECS" \
			"${select[@]}" -h "$host" -p "$port" -U postgres postgres 2>&1)
		record "pgbench $kind" "$m" "$rep" tps \
			"$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out" | tail -n 1)"
		record "pgbench $kind" "$m" "$rep" latency_ms \
			"$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' <<<"$out")"
	done
}

# wrk's "99%  1.23ms" in ms
wrk_p99() { awk '$1 == "99%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
	printf "%.3f", u == "us" ? v / 1000 : u == "s" ? v * 1000 : v }'; }

wrk_run() { # mode rep
	local m=$1 rep=$2 url out name
	for name in "1 KiB" "1 MiB" "1 KiB, Connection: close"; do
		url="http://127.0.0.1:$(port 8090 "$m")/$([ "$name" = "1 MiB" ] && echo 1m || echo 1k)"
		if [ "$name" = "1 KiB, Connection: close" ]; then
			out=$(in_mode "$m" wrk -t 2 -c 20 -d "${SECS}s" --latency -H "Connection: close" "$url" 2>&1)
		else
			out=$(in_mode "$m" wrk -t 2 -c 50 -d "${SECS}s" --latency "$url" 2>&1)
		fi
		record "wrk nginx $name" "$m" "$rep" rps "$(sed -n 's/^Requests\/sec: *\([0-9.]*\)/\1/p' <<<"$out")"
		record "wrk nginx $name" "$m" "$rep" p99_ms "$(wrk_p99 <<<"$out")"
	done
}

h2load_run() { # mode rep
	local m=$1 rep=$2 out
	out=$(in_mode "$m" h2load -D "$SECS" -c 4 -m 32 -t 2 "http://127.0.0.1:$(port 8190 "$m")/1k" 2>&1)
	record "h2load nghttpd 1 KiB" "$m" "$rep" rps "$(sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p' <<<"$out")"
}

git_run() { # mode rep
	local m=$1 rep=$2 start end
	rm -rf "$TMP/clone"
	start=$(date +%s.%N)
	in_mode "$m" git clone -q "git://127.0.0.1:$(port 9418 "$m")/big.git" "$TMP/clone" ||
		{ echo "Error: git clone failed ($m)" >&2; exit 1; }
	end=$(date +%s.%N)
	record "git clone 64 MiB" "$m" "$rep" seconds "$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }')"
	rm -rf "$TMP/clone"
}

redirected_before=$(counter redirected_bytes)
for rep in $(seq "$REPS"); do
	for m in off on unix; do redis_run "$m" "$rep"; pgbench_run "$m" "$rep"; done
	for m in off on; do wrk_run "$m" "$rep"; h2load_run "$m" "$rep"; git_run "$m" "$rep"; done
done
redirected=$(($(counter redirected_bytes) - redirected_before))
[ "$redirected" -gt 0 ] || { echo "Error: sockbypass redirected nothing: the 'on' runs were not bypassed" >&2; exit 1; }

# ---- the table -------------------------------------------------------------
med() { sort -g | awk '{ v[++n] = $1 } END { if (!n) print "-"; else { m = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2; printf (m >= 100 ? "%.0f" : "%.3g"), m } }'; }
median() { # workload mode metric
	awk -F'\t' -v w="$1" -v m="$2" -v k="$3" '$1 == w && $2 == m && $4 == k && $5 != "" { print $5 }' "$rows" | med
}
ratio() { # workload mode metric: median over rounds of MODE/off
	awk -F'\t' -v w="$1" -v m="$2" -v k="$3" '$1 == w && $4 == k && $5 != "" { v[$2, $3] = $5; r[$3] = 1 }
		END { for (i in r) if ((m, i) in v && ("off", i) in v && v["off", i] > 0) print v[m, i] / v["off", i] }' "$rows" |
		sort -g | awk '{ v[++n] = $1 } END { if (!n) print "–"; else printf "%.2f", (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2 }'
}
metric_label() {
	case $1 in
	rps) echo "requests/s" ;; tps) echo "tps" ;; p50_ms) echo "p50 ms" ;; p99_ms) echo "p99 ms" ;;
	latency_ms) echo "mean latency ms" ;; seconds) echo "seconds (lower is better)" ;;
	esac
}
table() {
	local w k
	echo "### Applications: plain TCP, sockbypass, AF_UNIX ($REPS rounds, ${SECS} s runs, medians; ratios: median of per-round ratios to plain TCP; kernel $(uname -r), $(nproc) CPUs)"
	echo
	echo "| program, workload | metric | plain TCP | sockbypass | AF_UNIX | sockbypass/TCP | AF_UNIX/TCP |"
	echo "|---|---|---:|---:|---:|---:|---:|"
	cut -f1 "$rows" | awk '!s[$0]++' | while read -r w; do
		awk -F'\t' -v w="$w" '$1 == w { print $4 }' "$rows" | awk '!s[$0]++' | while read -r k; do
			printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$w" "$(metric_label "$k")" \
				"$(median "$w" off "$k")" "$(median "$w" on "$k")" "$(median "$w" unix "$k")" \
				"$(ratio "$w" on "$k")" "$(ratio "$w" unix "$k")" | sed 's/| - |/| – |/g'
		done
	done
	echo
	echo "sockbypass redirected $((redirected / 1048576)) MiB in the 'on' runs."
}
mkdir -p "$top/bench/results/latest"
table | tee "$top/bench/results/latest/apps.md"

# one plot: the throughput ratio to plain TCP of each workload
if command -v gnuplot >/dev/null; then
	for w in $(cut -f1 "$rows" | awk '!s[$0]++' | tr ' ' '_'); do
		k=$(awk -F'\t' -v w="${w//_/ }" '$1 == w && ($4 == "rps" || $4 == "tps") { print $4; exit }' "$rows")
		[ -n "$k" ] || continue
		printf '"%s" %s %s\n' "${w//_/ }" "$(ratio "${w//_/ }" on "$k")" "$(ratio "${w//_/ }" unix "$k" | sed 's/–/NaN/')"
	done >"$TMP/plot.dat"
	gnuplot <<PLOT 2>/dev/null
set terminal pngcairo size 1000,500
set output "$top/bench/results/latest/apps.png"
set title "Throughput relative to plain TCP over 127.0.0.1 (1.0 = the same)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8
set xtics rotate by -30 scale 0 font ",9"
set yrange [0:*]
set grid ytics
set key top left
plot "$TMP/plot.dat" using 2:xtic(1) title "sockbypass", "" using 3 title "AF_UNIX", 1 notitle lc rgb "black"
PLOT
fi
