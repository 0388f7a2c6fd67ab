# shellcheck shell=bash
# make install / uninstall into a DESTDIR, and the systemd unit.

installed_files() { (cd "$TMP/root" && find . -type f | sort); }

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
	# the unit's command lines, run directly (on the test's cgroup and pins, not the host's)
	# shellcheck disable=SC2086 # the command line's words
	"$TMP/root"$start --cgroup "$CG" --pin-dir "$PIN" >"$TMP/out" 2>&1 ||
		fail "ExecStart: $(cat "$TMP/out")"
	grep -q "sockbypass loaded" "$TMP/out" || fail "ExecStart said: $(cat "$TMP/out")"
	"$TMP/root/usr/local/sbin/sockbypass" status --pin-dir "$PIN" >/dev/null ||
		fail "installed binary: status"
	# shellcheck disable=SC2086
	"$TMP/root"$stop --pin-dir "$PIN" >"$TMP/out" 2>&1 || fail "ExecStop: $(cat "$TMP/out")"
	grep -q "sockbypass unloaded" "$TMP/out" || fail "ExecStop said: $(cat "$TMP/out")"

	make -s -C "$TOP" uninstall DESTDIR="$TMP/root" PREFIX=/usr/local >"$TMP/out" 2>&1 ||
		fail "make uninstall: $(cat "$TMP/out")"
	assert_eq "$(installed_files)" "" "files left after uninstall"
}
