# shellcheck shell=bash
# make install / uninstall into a DESTDIR, and the systemd unit.

installed_files() { (cd "$TMP/root" && find . -type f | sort); }

# unit_exec ROOT UNIT KEY SAYS ARGS...: run the installed unit's KEY command line
# (ExecStart, ExecStop) directly with ARGS (the test's cgroup and pins, not
# the host's): it must succeed and say SAYS
unit_exec() {
	local root=$1 unit=$2 key=$3 says=$4 cmd
	shift 4
	cmd=$(sed -n "s/^$key=//p" "$root$unit")
	# shellcheck disable=SC2086 # the command line's words
	"$root"$cmd "$@" >"$TMP/out" 2>&1 || fail "$key: $(cat "$TMP/out")"
	grep -q "$says" "$TMP/out" || fail "$key said: $(cat "$TMP/out")"
}

test_install_unit_and_uninstall() {
	make -s -C "$TOP" install DESTDIR="$TMP/root" PREFIX=/usr/local >"$TMP/out" 2>&1 ||
		fail "make install: $(cat "$TMP/out")"
	assert_eq "$(installed_files | tr '\n' ' ')" "./usr/local/include/sockbypass_splice.h \
./usr/local/lib/libsockbypass-splice.a ./usr/local/lib/libsockbypass-splice.so.0 \
./usr/local/lib/systemd/system/sockbypass.service \
./usr/local/sbin/sockbypass ./usr/local/sbin/sockbypass-load ./usr/local/sbin/sockbypass-proxy \
./usr/local/sbin/sockbypass-trace ./usr/local/sbin/sockbypass-trace-lo ./usr/local/sbin/sockbypass-unload \
./usr/local/share/bash-completion/completions/sockbypass \
./usr/local/share/doc/sockbypass/README.md ./usr/local/share/man/man8/sockbypass.8 " "installed files"
	assert_eq "$(readlink "$TMP/root/usr/local/lib/libsockbypass-splice.so")" libsockbypass-splice.so.0 \
		"the library's development link"
	# a proxy of one's own builds against the installed header and library
	cat >"$TMP/mini.c" <<'EOF'
#include <sockbypass_splice.h>
int main(void) { struct sbs *s = sbs_open(SBS_COPY, NULL); return s ? 0 : 1; }
EOF
	cc -I"$TMP/root/usr/local/include" "$TMP/mini.c" -L"$TMP/root/usr/local/lib" -lsockbypass-splice \
		-lbpf -o "$TMP/mini" >"$TMP/cc.out" 2>&1 || fail "build against the installed library: $(cat "$TMP/cc.out")"
	LD_LIBRARY_PATH="$TMP/root/usr/local/lib" "$TMP/mini" || fail "sbs_open(SBS_COPY) with the installed library"

	local unit=/usr/local/lib/systemd/system/sockbypass.service start stop
	(cd "$TMP" && systemd-analyze verify --man=no --recursive-errors=no --root="$TMP/root" "$unit") \
		>"$TMP/verify.out" 2>&1 || fail "systemd-analyze verify: $(cat "$TMP/verify.out")"
	start=$(sed -n 's/^ExecStart=//p' "$TMP/root$unit")
	stop=$(sed -n 's/^ExecStop=//p' "$TMP/root$unit")
	assert_eq "$start" "/usr/local/sbin/sockbypass load" "ExecStart"
	assert_eq "$stop" "/usr/local/sbin/sockbypass unload" "ExecStop"
	grep -qx "RequiresMountsFor=/sys/fs/bpf" "$TMP/root$unit" || fail "the unit does not require /sys/fs/bpf"
	unit_exec "$TMP/root" "$unit" ExecStart "sockbypass loaded" --cgroup "$CG" --pin-dir "$PIN"
	"$TMP/root/usr/local/sbin/sockbypass" status --pin-dir "$PIN" >/dev/null ||
		fail "installed binary: status"
	unit_exec "$TMP/root" "$unit" ExecStop "sockbypass unloaded" --pin-dir "$PIN"

	make -s -C "$TOP" uninstall DESTDIR="$TMP/root" PREFIX=/usr/local >"$TMP/out" 2>&1 ||
		fail "make uninstall: $(cat "$TMP/out")"
	assert_eq "$(installed_files)" "" "files left after uninstall"
}

# make deb, then the package on this machine: apt-get install, load and unload
# through the installed unit's command lines (on the test's cgroup and pins),
# a reinstall (an upgrade's maintainer scripts) with the bypass loaded leaves
# it loaded, and a purge leaves none of the package's files or unit state.
test_deb_installs_loads_survives_upgrade_and_purges() {
	local deb unit=/lib/systemd/system/sockbypass.service files before
	dpkg -s sockbypass >/dev/null 2>&1 &&
		skip "a sockbypass package is installed on this machine: not replacing it"
	make -s -C "$TOP" deb >"$TMP/out" 2>&1 || fail "make deb: $(cat "$TMP/out")"
	deb=$(find "$TOP/.output/deb" -maxdepth 1 -name 'sockbypass_*.deb')
	[ -f "$deb" ] || fail "make deb made no package: $(ls "$TOP/.output/deb")"
	dpkg-deb -f "$deb" Depends | grep -q 'libbpf1' || fail "no libbpf1 in Depends: $(dpkg-deb -f "$deb" Depends)"
	# an upgrade neither stops nor restarts the unit (this machine may not run
	# systemd, so the scripts are read too): only removal stops it
	dpkg-deb -e "$deb" "$TMP/control"
	grep -q 'deb-systemd-invoke' "$TMP/control/postinst" 2>/dev/null &&
		fail "postinst (re)starts the unit: $(cat "$TMP/control/postinst")"
	assert_eq "$(grep -c 'deb-systemd-invoke' "$TMP/control/prerm")" 1 "deb-systemd-invoke calls in prerm (ours, on remove)"
	trap 'apt-get purge -y -q sockbypass >/dev/null 2>&1; sb_cleanup' EXIT
	apt-get install -y -q "$deb" >"$TMP/apt.out" 2>&1 || fail "apt-get install: $(tail -n 5 "$TMP/apt.out")"
	files=$(dpkg -L sockbypass)
	for f in /usr/sbin/sockbypass /usr/sbin/sockbypass-load /usr/sbin/sockbypass-proxy "$unit" \
		/usr/share/man/man8/sockbypass.8.gz /usr/share/bash-completion/completions/sockbypass; do
		grep -qx "$f" <<<"$files" || fail "the package has no $f: $files"
	done
	# installing changes nothing: not enabled, not started, nothing loaded
	[ -e /etc/systemd/system/multi-user.target.wants/sockbypass.service ] && fail "the install enabled the unit"
	[ -e /sys/fs/bpf/sockbypass ] && fail "the install loaded the bypass"
	assert_eq "$(sed -n 's/^ExecStart=//p' "$unit")" "/usr/sbin/sockbypass load" "ExecStart"
	unit_exec "" "$unit" ExecStart "sockbypass loaded" --cgroup "$CG" --pin-dir "$PIN"
	before=$(counter redirected_bytes)
	apt-get install -y -q --reinstall "$deb" >"$TMP/apt.out" 2>&1 ||
		fail "apt-get install --reinstall: $(tail -n 5 "$TMP/apt.out")"
	/usr/sbin/sockbypass status --pin-dir "$PIN" | grep -qx "loaded: yes" ||
		fail "the upgrade unloaded the bypass: $(/usr/sbin/sockbypass status --pin-dir "$PIN")"
	server -a 127.0.0.1 -p 7301 -s 1M -r 1M
	"$TCPCHECK" -a 127.0.0.1 -p 7301 -s 1M -r 1M >/dev/null || fail "a stream after the upgrade broke"
	assert_gt "$(counter redirected_bytes)" "$before" "bytes redirected after the upgrade"
	unit_exec "" "$unit" ExecStop "sockbypass unloaded" --pin-dir "$PIN"
	apt-get purge -y -q sockbypass >"$TMP/apt.out" 2>&1 || fail "apt-get purge: $(tail -n 5 "$TMP/apt.out")"
	dpkg -s sockbypass >/dev/null 2>&1 && fail "still installed after purge"
	for f in $files; do
		[ -f "$f" ] && fail "purge left $f"
	done
	compgen -G "/var/lib/systemd/deb-systemd-helper-*/*sockbypass*" >/dev/null &&
		fail "purge left unit state: $(ls /var/lib/systemd/deb-systemd-helper-*/*sockbypass*)"
	compgen -G "/etc/systemd/system/*/sockbypass.service" >/dev/null && fail "purge left a unit link"
	trap sb_cleanup EXIT
	echo "result: $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB): installed, loaded, upgraded loaded, purged clean"
}
