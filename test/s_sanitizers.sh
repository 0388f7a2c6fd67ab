# shellcheck shell=bash
# The loader under ASan/UBSan, valgrind, and a fuzzer on its option parsing.

test_error_paths_under_asan_and_ubsan() {
	# a sanitizer finding exits 86 (or aborts): every exact exit code check then fails
	SUITE=t SOCKBYPASS_BIN="$TOP/.output/asan/sockbypass" \
		ASAN_OPTIONS=exitcode=86:detect_leaks=1:verify_asan_link_order=0 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		"$TOP/test/run.sh" errors >"$TMP/asan.out" 2>&1
	local rc=$?
	grep -q "AddressSanitizer\|LeakSanitizer\|runtime error:" "$TMP/asan.out" &&
		fail "sanitizer report: $(grep -A20 -m1 "Sanitizer\|runtime error:" "$TMP/asan.out")"
	assert_eq "$rc" 0 "error-path tests with the sanitizer build: $(tail -n 5 "$TMP/asan.out")"
	grep -qE '^[1-9][0-9]* passed, 0 failed' "$TMP/asan.out" || fail "no test ran: $(tail -n 3 "$TMP/asan.out")"
	echo "result: $(tail -n 1 "$TMP/asan.out") (t_errors.sh with the ASan+UBSan loader)"
}

test_valgrind_load_status_unload() {
	local vg=(valgrind -q --error-exitcode=99 --leak-check=full "--errors-for-leak-kinds=definite,indirect"
		--suppressions="$TOP/test/valgrind.supp")
	command -v valgrind >/dev/null || fail "valgrind missing (apt-get install valgrind)"
	"${vg[@]}" "$SB" --cgroup "$CG" --pin-dir "$PIN" >"$TMP/vg.out" 2>&1 || fail "load: $(cat "$TMP/vg.out")"
	"${vg[@]}" "$SB" --status --json --pin-dir "$PIN" >"$TMP/vg.out" 2>&1 || fail "status: $(cat "$TMP/vg.out")"
	"${vg[@]}" "$SB" --unload --pin-dir "$PIN" >"$TMP/vg.out" 2>&1 || fail "unload: $(cat "$TMP/vg.out")"
	"${vg[@]}" "$SB" --cgroup "$TMP" --pin-dir "$PIN" >"$TMP/vg.out" 2>&1
	assert_eq "$?" 6 "exit code of an error path under valgrind: $(cat "$TMP/vg.out")"
	echo "result: valgrind: load, status, unload and an error path without errors or leaks"
}

test_fuzz_option_parsing() {
	mkdir -p "$TMP/corpus"
	printf -- '--cgroup\0/sys/fs/cgroup\0--pin-dir\0/sys/fs/bpf/x' >"$TMP/corpus/1"
	printf -- '--unload\0--timeout\0003.5' >"$TMP/corpus/2"
	printf -- '--queue-limit\00064M\0--map-size\0004096\0--json' >"$TMP/corpus/3"
	"$TOP/.output/fuzz_options" -max_total_time=60 -timeout=5 -rss_limit_mb=2048 "$TMP/corpus" \
		>"$TMP/fuzz.out" 2>&1 || fail "fuzzer found a crash or hang: $(grep -a -A30 -m1 ERROR "$TMP/fuzz.out")"
	echo "result: fuzzing option parsing for 60 s: $(grep -o 'DONE.*' "$TMP/fuzz.out" | head -c 80), no crash"
}
