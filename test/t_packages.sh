# shellcheck shell=bash
# load.sh's package step, against a stand-in apt-get and systemctl: each make
# target installs only what it uses, a retry after 'apt-get update' is as quiet
# as the first try, and no service a package brings is left started or enabled.

# fake_tools: $TMP/bin holds the commands load.sh uses, a logging apt-get and
# systemctl, and nothing of what the package sets look for.
fake_tools() {
	local c
	mkdir -p "$TMP/bin"
	for c in bash dirname id env mktemp sort comm tr tail sed rm chmod awk cat printf; do
		ln -sf "$(command -v "$c")" "$TMP/bin/$c"
	done
	# apt-get: the first install fails (stale lists), update, then it works;
	# it chatters on stderr as dpkg's helpers do, and enables redis' unit
	cat >"$TMP/bin/apt-get" <<'FAKE'
#!/bin/bash
echo "apt-get $*" >>"$FAKE_LOG"
echo "deb-systemd-helper was not called from dpkg" >&2
case "$1" in
update) : >"$FAKE_DIR/updated" ;;
install)
	[ -e "$FAKE_DIR/updated" ] || { echo "E: Unable to locate package" >&2; exit 100; }
	echo "policy-rc.d answers $(/usr/sbin/policy-rc.d redis-server.service start >/dev/null 2>&1; echo $?)" >>"$FAKE_LOG"
	case " $* " in *" redis-server "*) echo "redis-server.service enabled" >>"$FAKE_DIR/units" ;; esac ;;
esac
exit 0
FAKE
	cat >"$TMP/bin/systemctl" <<'FAKE'
#!/bin/bash
echo "systemctl $*" >>"$FAKE_LOG"
case "$1" in
list-unit-files) cat "$FAKE_DIR/units" ;;
esac
exit 0
FAKE
	chmod +x "$TMP/bin/apt-get" "$TMP/bin/systemctl"
	echo "ssh.service enabled" >"$TMP/units"
}

# deps ARGS...: run load.sh --deps-only ARGS with the stand-ins; output in $TMP/deps.out
deps() {
	rm -f "$TMP/updated" "$TMP/fake.log"
	echo "ssh.service enabled" >"$TMP/units"
	env PATH="$TMP/bin" FAKE_LOG="$TMP/fake.log" FAKE_DIR="$TMP" \
		"$TOP/load.sh" --deps-only "$@" >"$TMP/deps.out" 2>&1 ||
		fail "load.sh --deps-only $*: $(cat "$TMP/deps.out")"
}

installed() { # what the last deps call installed
	grep '^apt-get install' "$TMP/fake.log" | tail -n 1
}

test_each_target_installs_what_it_uses() {
	fake_tools
	deps --test-deps
	local got
	got=$(installed)
	for p in clang bpftool iperf3 tcpdump shellcheck jq nftables python3 curl debhelper dpkg-dev; do
		grep -qw -- "$p" <<<"$got" || fail "make test's deps miss $p: $got"
	done
	for p in redis-server redis-tools nginx-light valgrind sockperf; do
		grep -qw -- "$p" <<<"$got" && fail "make test's deps install $p: $got"
	done
	deps --test-deps --stress-deps
	got=$(installed)
	for p in redis-server redis-tools nginx-light valgrind; do
		grep -qw -- "$p" <<<"$got" || fail "make stress's deps miss $p: $got"
	done
	deps --bench-deps
	grep -qw sockperf <<<"$(installed)" || fail "make bench's deps miss sockperf: $(installed)"
	deps --deb-deps
	grep -qw debhelper <<<"$(installed)" || fail "make deb's deps miss debhelper: $(installed)"
	echo "result: make test installs no server package; stress and bench add theirs"
}

test_retry_after_update_is_quiet() {
	fake_tools
	deps --test-deps
	grep -q '^apt-get update' "$TMP/fake.log" || fail "the stand-in apt-get did not make load.sh retry"
	[ "$(grep -c '^apt-get install' "$TMP/fake.log")" = 2 ] || fail "expected two installs: $(cat "$TMP/fake.log")"
	grep -q "deb-systemd-helper\|Unable to locate" "$TMP/deps.out" &&
		fail "apt's chatter reached the terminal: $(cat "$TMP/deps.out")"
	assert_eq "$(grep -vc '^Installing:' "$TMP/deps.out")" 0 "lines besides 'Installing:'"
}

test_services_neither_started_nor_enabled() {
	fake_tools
	deps --test-deps --stress-deps
	grep -q "policy-rc.d answers 101" "$TMP/fake.log" ||
		fail "services could start during the install: $(grep policy "$TMP/fake.log")"
	grep -q "^systemctl disable.* redis-server.service" "$TMP/fake.log" ||
		fail "redis' unit was left enabled: $(grep systemctl "$TMP/fake.log")"
	grep -q "^systemctl disable.*ssh" "$TMP/fake.log" && fail "disabled a unit that was enabled before"
	grep -q "Disabled what the packages enabled.*redis-server.service" "$TMP/deps.out" ||
		fail "load.sh did not say what it disabled: $(cat "$TMP/deps.out")"
}

# A failed install shows what apt said, then the one-line error.
test_failed_install_shows_apt() {
	fake_tools
	# shellcheck disable=SC2016 # $2 is the stand-in's own argument
	printf '#!/bin/bash\necho "E: Unable to locate package $2" >&2\nexit 100\n' >"$TMP/bin/apt-get"
	local out rc
	out=$(env PATH="$TMP/bin" FAKE_LOG="$TMP/fake.log" FAKE_DIR="$TMP" "$TOP/load.sh" --deps-only 2>&1)
	rc=$?
	assert_eq "$rc" 10 "exit code of a failed install"
	grep -q "apt: E: Unable to locate" <<<"$out" || fail "apt's reason not shown: $out"
	grep -q "^Error: missing packages:.*apt-get install" <<<"$out" || fail "no error line: $out"
}
