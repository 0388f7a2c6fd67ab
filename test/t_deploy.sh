# shellcheck shell=bash
# deploy/: the DaemonSet's manifest and image definition carry what a node
# agent needs, and its container's entry point, run here as a pod would run
# (on the test's cgroup and pins), keeps the bypass through pod restarts and
# rolling updates, and removes it only when told to.

# no-root: test_manifest_and_image_carry_what_the_agent_needs
test_manifest_and_image_carry_what_the_agent_needs() {
	local version out
	version=$(sed -n 's/^VERSION := //p' "$TOP/Makefile")
	out=$(python3 - "$TOP/deploy/daemonset.yaml" "$version" <<'PY' 2>&1
import sys, yaml
docs = list(yaml.safe_load_all(open(sys.argv[1])))
ds = next(d for d in docs if d["kind"] == "DaemonSet")
pod = ds["spec"]["template"]["spec"]
c, = pod["containers"]
sc = c["securityContext"]
def check(ok, what):
    if not ok:
        sys.exit("manifest: " + what)
check(sorted(sc["capabilities"]["add"]) == ["BPF", "NET_ADMIN", "PERFMON", "SYS_ADMIN"], "capabilities %s" % sc["capabilities"])
check(sc["capabilities"]["drop"] == ["ALL"] and sc.get("privileged") is False, "not privileged, drop ALL")
vols = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"]}
mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
check(vols.get("bpffs") == "/sys/fs/bpf" and mounts.get("bpffs") == "/sys/fs/bpf", "the host's bpffs at /sys/fs/bpf")
check(vols.get("cgroup2") == "/sys/fs/cgroup", "the host's cgroup2 root")
env = {e["name"]: e["value"] for e in c["env"]}
check(env["SOCKBYPASS_CGROUP"] == mounts["cgroup2"], "SOCKBYPASS_CGROUP is where the cgroup2 root is mounted")
check(env["SOCKBYPASS_COMMAND"] == "load", "SOCKBYPASS_COMMAND")
check(c["readinessProbe"]["exec"]["command"] == ["/usr/sbin/sockbypass-entrypoint", "ready"], "readiness from status")
port = c["ports"][0]["containerPort"]
ann = ds["spec"]["template"]["metadata"]["annotations"]
check(str(port) == ann["prometheus.io/port"] and ann["prometheus.io/scrape"] == "true", "scrape annotations")
check(c["livenessProbe"]["httpGet"]["path"] == "/healthz", "liveness")
check("preStop" not in c.get("lifecycle", {}), "no preStop: stopping a pod must not unload")
check(c["image"] == "sockbypass:" + sys.argv[2], "image tag %s is not the Makefile's version" % c["image"])
check(ds["spec"]["updateStrategy"]["type"] == "RollingUpdate", "rolling updates")
print("port", port)
PY
) || fail "$out"
	# the image: what it copies exists, what it builds is a make target, what it installs is a package
	local dockerfile=$TOP/deploy/Dockerfile target pkg
	grep -q '^ENTRYPOINT \["/usr/sbin/sockbypass-entrypoint"\]' "$dockerfile" || fail "no ENTRYPOINT"
	grep -q '^COPY deploy/entrypoint.sh /usr/sbin/sockbypass-entrypoint$' "$dockerfile" || fail "entrypoint not copied"
	# shellcheck disable=SC2013 # words: the make targets, the package names
	for target in $(sed -n 's/^RUN make clean && make //p' "$dockerfile"); do
		make -C "$TOP" -n "$target" >/dev/null 2>&1 || fail "the Dockerfile builds '$target', not a make target"
	done
	# the words between "--no-install-recommends" and "&&", continued lines joined
	# shellcheck disable=SC2013
	for pkg in $(sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$dockerfile" |
		sed -n 's/.*--no-install-recommends \([^&]*\)&&.*/\1/p'); do
		apt-cache show "$pkg" >/dev/null 2>&1 || fail "the Dockerfile installs '$pkg', not a Debian package here"
	done
	echo "result: manifest checked ($out); image packages are Debian's"
}

# The pod's mounts, as the manifest makes them, inside this test's own mount
# and network namespace (test/run.sh's unshare): a bpffs at /sys/fs/bpf (the
# test's, standing for the host's) and the test's cgroup at the cgroup2
# mount path, on a /run of its own. The entry point then runs with the
# manifest's environment; only the binaries' directory is the tree's.
pod_mounts() {
	mount --bind "$TMP/bpffs" /sys/fs/bpf || fail "bind the test's bpffs on /sys/fs/bpf"
	mount -t tmpfs sockbypass-pod /run || fail "a /run of the pod's own"
	mkdir -p /run/sockbypass/cgroup2
	mount --bind "$CG" /run/sockbypass/cgroup2 || fail "bind the test's cgroup"
}

# pod ARGS...: the container's entry point as the pod runs it, in the background
pod() {
	SOCKBYPASS_BINDIR=$TOP SOCKBYPASS_CGROUP=/run/sockbypass/cgroup2 \
		SOCKBYPASS_METRICS=127.0.0.1:9478 bg "$TOP/deploy/entrypoint.sh" "$@"
	POD=$!
}

ready() {
	SOCKBYPASS_BINDIR=$TOP "$TOP/deploy/entrypoint.sh" ready
}

metrics() {
	for _ in $(seq 50); do
		curl -sf http://127.0.0.1:9478/metrics && return 0
		sleep 0.1
	done
	fail "no metrics on 127.0.0.1:9478"
}

test_pod_restarts_keep_the_bypass_and_only_unload_removes_it() {
	local stream before
	make -s -C "$TOP" sockbypass-metrics >"$TMP/out" 2>&1 || fail "make sockbypass-metrics: $(cat "$TMP/out")"
	pod_mounts
	pod load
	metrics | grep -qx "sockbypass_loaded 1" || fail "the pod's metrics: $(metrics)"
	[ -e "$PIN/sb_sockops_link" ] || fail "the pod did not pin in the bpffs at /sys/fs/bpf"
	# status names the cgroup by its path under the first cgroup2 mount: the test's
	"$SB" status --pin-dir "$PIN" | grep -qx "cgroup: $CG" ||
		fail "the pod did not attach to the mounted cgroup: $("$SB" status --pin-dir "$PIN" | grep cgroup)"
	ready || fail "not ready once loaded"
	# a stream of ~5 s that runs across the restart and the rolling update
	server -a 127.0.0.1 -p 7401 -s 0 -r 8M
	"$TCPCHECK" -a 127.0.0.1 -p 7401 -s 8M -r 0 -w 64K -g 40000 >/dev/null &
	stream=$!
	sleep 1
	before=$(counter redirected_bytes)
	kill -TERM "$POD"
	wait "$POD" || fail "the pod did not stop cleanly on SIGTERM"
	"$SB" status --pin-dir "$PIN" | grep -qx "loaded: yes" || fail "stopping the pod unloaded the bypass"
	# the rolling update's new pod: already loaded, nothing reset
	pod load
	metrics | grep -qx "sockbypass_loaded 1" || fail "the new pod's metrics"
	ready || fail "the new pod is not ready"
	wait "$stream" || fail "the stream broke across the pod restart"
	assert_gt "$(counter redirected_bytes)" "$before" "redirected bytes after the restart (the same load)"
	kill -TERM "$POD"
	wait "$POD"
	# SOCKBYPASS_COMMAND=unload: the bypass goes, and the pod reports ready for it
	SOCKBYPASS_COMMAND=unload pod load
	for _ in $(seq 50); do [ -e "$PIN" ] || break; sleep 0.1; done
	[ -e "$PIN" ] && fail "the unload pod left $PIN"
	SOCKBYPASS_COMMAND=unload ready || fail "the unload pod is not ready once unloaded"
	ready && fail "a load pod reads as ready with nothing loaded"
	kill -TERM "$POD"
	wait "$POD" || fail "the unload pod did not stop cleanly"
	# nothing of the pod stays in its cgroup (its sleep was a child of it)
	local pid left=()
	sleep 0.2
	while read -r pid; do
		[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = sleep ] && left+=("$pid")
	done <"$CG/cgroup.procs"
	[ ${#left[@]} -eq 0 ] || fail "the stopped pod left its sleep behind: ${left[*]}"
	echo "result: the bypass stayed through a pod stop and a new pod (stream intact), and went only on unload"
}
