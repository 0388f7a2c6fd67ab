# shellcheck shell=bash
# shellcheck disable=SC2034 # SERVER_PID and the like are read by the t_*.sh files
# Shared set-up for the tests. run.sh sources this inside a private mount and
# network namespace (unshare -m -n) for each test, then calls sb_setup, so a
# test owns its lo, its bpffs and a child cgroup, and nothing it pins can
# outlive it: the bpffs mount dies with the namespace.

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SB="${SOCKBYPASS_BIN:-$TOP/sockbypass}"
TCPCHECK="$TOP/.output/tcpcheck"
TMP=""
CG=""
PIN=""
CG_ROOT=""
ORIG_CG=""
PIDS=()
EXTRA_CGROUPS=() # more cgroup dirs of the test's own (e.g. cgroup v1 memory), removed at cleanup

cgroup2_root() {
	awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts
}

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

skip() {
	echo "SKIP: $*" >&2
	exit 77
}

# not_applicable REASON: the case cannot exist on this kernel (reported as a
# skip with REASON, also under CI, where a plain skip is a failure).
not_applicable() {
	echo "N/A: $*" >&2
	exit 78
}

# Does the loaded bypass walk queues (a kernel without sk_psock.msg_tot_len,
# or SOCKBYPASS_WALK_QUEUE=1 to act as one)? --queue-limit then also stops at
# 256 queued messages.
queue_is_walked() {
	[ -n "${SOCKBYPASS_WALK_QUEUE:-}" ] || ! kernel_counts_queue
}

# Did a walked queue count as full (256 messages behind) during this load?
# Then TCP rightly carried part of the stream (README: Kernels).
walked_queue_fell_back() {
	queue_is_walked && [ "$(counter fallback_backlog)" -gt 0 ]
}

# Does the kernel count a socket's queued redirected bytes (sk_psock.msg_tot_len,
# which also makes FIONREAD see them)?
kernel_counts_queue() {
	bpftool btf dump file /sys/kernel/btf/vmlinux format raw | grep -q "'msg_tot_len'"
}

sb_setup() {
	TMP=$(mktemp -d /tmp/sockbypass-test.XXXXXX)
	mkdir -p "$TMP/bpffs"
	mount -t bpf bpf "$TMP/bpffs" || fail "cannot mount a private bpffs"
	PIN="$TMP/bpffs/sockbypass"
	ip link set lo up
	CG_ROOT=$(cgroup2_root)
	[ -n "$CG_ROOT" ] || skip "no cgroup v2 mount"
	ORIG_CG="$CG_ROOT$(awk -F: '$1 == "0" { print $3 }' /proc/self/cgroup)"
	CG="$CG_ROOT/sockbypass-test-$$"
	mkdir "$CG" || fail "cannot create $CG"
	trap sb_cleanup EXIT
	echo "$BASHPID" >"$CG/cgroup.procs" || fail "cannot join $CG"
}

# Safe to run more than once: every step tolerates "already gone".
sb_cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null
	done
	PIDS=()
	[ -n "$PIN" ] && "$SB" --unload --pin-dir "$PIN" --timeout 1 >/dev/null 2>&1
	if [ -n "$CG" ] && [ -d "$CG" ]; then
		# move everything of ours back, then the cgroup can go
		while read -r pid; do
			echo "$pid" >"$ORIG_CG/cgroup.procs" 2>/dev/null
		done <"$CG/cgroup.procs"
		echo "$BASHPID" >"$ORIG_CG/cgroup.procs" 2>/dev/null
		# child cgroups a test made (instances of t_portmap.sh), deepest first
		local child
		while read -r child; do
			while read -r pid; do
				echo "$pid" >"$ORIG_CG/cgroup.procs" 2>/dev/null
			done <"$child/cgroup.procs"
			rmdir "$child" 2>/dev/null
		done < <(find "$CG" -mindepth 1 -depth -type d 2>/dev/null)
		rmdir "$CG" 2>/dev/null
	fi
	local cg
	for cg in "${EXTRA_CGROUPS[@]}"; do
		[ -d "$cg" ] || continue
		while read -r pid; do
			echo "$pid" >"$(dirname "$cg")/cgroup.procs" 2>/dev/null
		done <"$cg/cgroup.procs"
		rmdir "$cg" 2>/dev/null
	done
	EXTRA_CGROUPS=()
	for ns in "${NETNS[@]}"; do
		ip netns del "$ns" 2>/dev/null
	done
	NETNS=()
	if [ -n "$TMP" ]; then
		umount "$TMP/bpffs" 2>/dev/null
		rm -rf "$TMP"
	fi
	return 0
}

# Start a command in the background and remember its pid for cleanup.
# outside_cgroup is expanded here so that the pid is the command's own.
bg() {
	if [ "$1" = outside_cgroup ]; then
		shift
		set -- "$TOP/test/run-in-cgroup" "$ORIG_CG" "$@"
	fi
	"$@" &
	PIDS+=($!)
}

load() {
	"$TOP/load.sh" --cgroup "$CG" --pin-dir "$PIN" "$@" >"$TMP/load.out" 2>&1 ||
		fail "load.sh failed: $(cat "$TMP/load.out")"
}

# load_roomy [ARGS...]: load with a fixed queue limit above any stream of the
# test. For tests of pairing, namespaces and the wire, not of the bound: by
# default a reader that neither waits nor has read yet (its thread not yet in
# recv) gets the small bound of a stalled reader, and the start of a fast
# stream may go to TCP (README: Memory).
load_roomy() {
	load --queue-limit 256M "$@"
}

unload() {
	"$TOP/unload.sh" --pin-dir "$PIN" "$@" >"$TMP/unload.out" 2>&1 ||
		fail "unload.sh failed: $(cat "$TMP/unload.out")"
}

# counter NAME: one value from the loader's status output
counter() {
	"$SB" --status --pin-dir "$PIN" | awk -F': ' -v k="$1" '$1 == k { print $2 }'
}

# bidir_bytes PORT: a 5 s iperf3 --bidir run on 127.0.0.1:PORT; sets BIDIR to
# "client-to-server server-to-client" bytes. (Not in $(...): the server must
# be one of this shell's PIDS, for the cleanup.)
bidir_bytes() {
	bg iperf3 -s -1 -p "$1" >/dev/null 2>&1
	for _ in $(seq 50); do
		ss -Hltn "sport = :$1" | grep -q . && break
		sleep 0.1
	done
	iperf3 -c 127.0.0.1 -p "$1" -t 5 --bidir -J >"$TMP/bidir.json" 2>&1 ||
		fail "iperf3 --bidir: $(tail -n 3 "$TMP/bidir.json")"
	BIDIR=$(jq -r '"\(.end.sum_received.bytes) \(.end.sum_received_bidir_reverse.bytes)"' "$TMP/bidir.json")
}

# times_apart "A B": how many times the larger of two counts is the smaller.
times_apart() {
	awk -v s="$1" 'BEGIN { split(s, v, " "); a = v[1]; b = v[2]; if (a < b) { t = a; a = b; b = t }
		printf "%.2f", (b > 0 ? a / b : 1e9) }'
}

# slower_share "PLAIN" "BYPASSED": the bypassed run's slower direction's bytes
# as a share of plain TCP's slower direction's.
slower_share() {
	awk -v p="$1" -v b="$2" 'BEGIN { split(p, x, " "); split(b, y, " ")
		ps = x[1] < x[2] ? x[1] : x[2]; bs = y[1] < y[2] ? y[1] : y[2]
		printf "%.2f", (ps > 0 ? bs / ps : 1e9) }'
}

# bidir_plain_then_bypassed PORT: bidir_bytes on PORT with nothing loaded, then
# load and again on PORT+1. Sets BIDIR_PLAIN and BIDIR_BYPASSED (bytes each way),
# PLAIN_APART and BYPASSED_APART (times_apart of each) and SLOWER_SHARE.
bidir_plain_then_bypassed() {
	bidir_bytes "$1"
	BIDIR_PLAIN=$BIDIR
	load
	bidir_bytes $(($1 + 1))
	BIDIR_BYPASSED=$BIDIR
	PLAIN_APART=$(times_apart "$BIDIR_PLAIN") BYPASSED_APART=$(times_apart "$BIDIR_BYPASSED")
	SLOWER_SHARE=$(slower_share "$BIDIR_PLAIN" "$BIDIR_BYPASSED")
}

# bidir_fair LIMIT: the bypassed directions ended within LIMIT times of each
# other, or no further apart than plain TCP's.
bidir_fair() {
	awk -v by="$BYPASSED_APART" -v tcp="$PLAIN_APART" -v lim="$1" 'BEGIN { exit !(by <= lim || by <= tcp) }'
}

# map_count NAME: entries in a pinned map of the test's load.
map_count() {
	bpftool -j map dump pinned "$PIN/$1" | jq length
}

# checked_streams N PORT SIZE [CLIENT_ARGS...]: N checked streams of SIZE each
# way in the background (servers read 32 KiB at a time); pids in STREAMS.
checked_streams() {
	local n=$1 port=$2 size=$3 i
	shift 3
	STREAMS=()
	for i in $(seq "$n"); do
		server -a 127.0.0.1 -p $((port + i)) -s "$size" -r "$size" -R 32K
		STREAMS+=("$SERVER_PID")
		"$TCPCHECK" -a 127.0.0.1 -p $((port + i)) -s "$size" -r "$size" "$@" >/dev/null &
		STREAMS+=($!)
	done
}

# wait_streams WHAT: every stream of checked_streams ended intact.
wait_streams() {
	local pid
	for pid in "${STREAMS[@]}"; do
		wait "$pid" || fail "a stream broke $1"
	done
}

# Wait until a file exists (a server's "listening" flag), at most 5 s.
wait_file() {
	for _ in $(seq 50); do
		[ -e "$1" ] && return 0
		sleep 0.1
	done
	fail "timed out waiting for $1"
}

# tcpcheck server in the background, listening when this returns.
# With IN_NS set, it runs inside that network namespace.
server() {
	local ready="$TMP/ready.$RANDOM"
	bg ${IN_NS:+ip netns exec "$IN_NS"} "$TCPCHECK" -l -f "$ready" "$@"
	SERVER_PID=$!
	wait_file "$ready"
}

# nginx_conf FILE DIR SERVER_BLOCK: a foreground nginx configuration, its pid,
# logs and temp files under DIR, one worker, serving SERVER_BLOCK
nginx_conf() {
	mkdir -p "$2"
	cat >"$1" <<CONF
daemon off;
user root;
worker_processes 1;
pid $2/nginx.pid;
error_log $2/nginx.err;
events {}
http {
	access_log off;
	client_body_temp_path $2/body;
	proxy_temp_path $2/proxy;
	fastcgi_temp_path $2/fastcgi;
	uwsgi_temp_path $2/uwsgi;
	scgi_temp_path $2/scgi;
	$3
}
CONF
}

# outside_cgroup CMD...: run CMD from the cgroup the test started in. In the
# background use "bg outside_cgroup ...": bg runs it so that its pid is CMD's.
outside_cgroup() {
	"$TOP/test/run-in-cgroup" "$ORIG_CG" "$@"
}

# capture_start IFACE [FILTER]: tcpdump into $TMP/cap.pcap, ready when it returns.
# With CAP_NS set, it captures inside that network namespace.
capture_start() {
	local iface=$1
	shift
	${CAP_NS:+ip netns exec "$CAP_NS"} tcpdump -i "$iface" -nn -U --immediate-mode -w "$TMP/cap.pcap" "$@" \
		2>"$TMP/tcpdump.err" &
	CAP_PID=$!
	PIDS+=("$CAP_PID")
	for _ in $(seq 50); do
		grep -q "listening on" "$TMP/tcpdump.err" && return 0
		sleep 0.1
	done
	fail "tcpdump did not start: $(cat "$TMP/tcpdump.err")"
}

# capture_stop: prints "<payload packets> <payload bytes>" of the capture.
capture_stop() {
	sleep 0.2
	kill -INT "$CAP_PID" 2>/dev/null
	wait "$CAP_PID" 2>/dev/null
	tcpdump -r "$TMP/cap.pcap" -nn -q 2>/dev/null |
		awk '{ n = $NF + 0; if (n > 0) { p++; b += n } } END { print p + 0, b + 0 }'
}

# new_netns NAME: a network namespace of the test's own, removed at cleanup.
NETNS=()
new_netns() {
	ip netns add "$1" || fail "ip netns add $1"
	NETNS+=("$1")
	ip -n "$1" link set lo up
}

# Join a memory-limited cgroup of the test's own: cgroup v2 where the memory
# controller is on for our cgroup's parent, else the v1 memory hierarchy.
# With "sockets" as a second argument the v1 limit is on socket memory only
# (memory.kmem.tcp.limit_in_bytes: v1 charges sockets only where it is set).
join_memory_limit() {
	local limit=$1 what=${2:-} dir
	if grep -qw memory "$CG_ROOT/cgroup.subtree_control" 2>/dev/null; then
		echo "$limit" >"$CG/memory.max" || fail "memory.max"
		return
	fi
	dir=$(awk '$3 == "cgroup" && $4 ~ /(^|,)memory(,|$)/ { print $2; exit }' /proc/mounts)
	[ -n "$dir" ] || fail "no memory controller in cgroup v2 nor v1"
	dir="$dir/sockbypass-test-$$-mem"
	mkdir "$dir" || fail "mkdir $dir"
	EXTRA_CGROUPS+=("$dir")
	if [ "$what" = sockets ]; then
		echo "$limit" >"$dir/memory.kmem.tcp.limit_in_bytes" || fail "memory.kmem.tcp.limit_in_bytes"
	else
		echo "$limit" >"$dir/memory.limit_in_bytes" || fail "memory limit"
	fi
	echo "$BASHPID" >"$dir/cgroup.procs" || fail "join $dir"
}

# readable_copy FILE...: copies of FILEs (from the checkout) in a directory a
# nobody user can enter, printed; the checkout may sit in a 0700 home.
readable_copy() {
	local dir="$TMP/as-nobody"
	chmod 0711 "$TMP"
	mkdir -p "$dir"
	chmod 0755 "$dir"
	(cd "$TOP" && cp -p "$@" "$dir/")
	echo "$dir"
}

NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)

# stall_field NAME LINE: one NAME=value of a test/stall result line
stall_field() {
	sed -n "s/.*\b$1=\([0-9.]*\).*/\1/p" <<<"$2"
}

assert_eq() {
	[ "$1" = "$2" ] || fail "$3: got '$1', expected '$2'"
}

assert_gt() {
	[ "$1" -gt "$2" ] || fail "$3: got $1, expected more than $2"
}
