#!/usr/bin/env bash
# Test runner: each test_* function of test/t_*.sh runs in its own private
# mount and network namespace with its own cgroup and bpffs (see lib.sh).
# Prints TAP-like lines and ends with "N passed, N failed, N skipped".
#
#   test/run.sh [PATTERN[,PATTERN]...]  run the tests whose name contains a PATTERN
#   SUITE=s test/run.sh [PATTERN]   the stress suite, test/s_*.sh (make stress)
set -u
here=$(cd "$(dirname "$0")" && pwd)
filter=${1:-}
per_test_timeout=${SB_TEST_TIMEOUT:-300}
suite=${SUITE:-t}

case "$filter" in
-h | --help)
	echo "Usage: [SUITE=s] test/run.sh [PATTERN[,PATTERN]...]  (as root; 'sudo make test' / 'sudo make stress' build first)"
	exit 0 ;;
esac

pass=0 failed=0 skipped=0 n=0
failures=()

# Leftovers of a run that was killed: empty test cgroups only.
for d in /sys/fs/cgroup/unified /sys/fs/cgroup; do
	for cg in "$d"/sockbypass-test-*; do
		[ -d "$cg" ] && rmdir "$cg" 2>/dev/null
	done
done

selected() { # name: does it contain one of the comma-separated patterns?
	local p
	IFS=, read -ra patterns <<<"$filter"
	for p in "${patterns[@]}"; do
		case "$1" in *"$p"*) return 0 ;; esac
	done
	return 1
}

# Inside a matrix guest (test/kernels), SB_GUEST_SKIP names a file of
# "PATTERN | REASON" lines: cases that run on the host only, and why. Read once
# and matched without a subprocess: under the guests' emulation each process
# costs about half a second, and per case that added ~10 minutes per guest.
skip_patterns=() skip_reasons=()
trim() { # text: sets REPLY to it without leading and trailing blanks
	REPLY=${1#"${1%%[![:space:]]*}"}
	REPLY=${REPLY%"${REPLY##*[![:space:]]}"}
}
if [ -n "${SB_GUEST_SKIP:-}" ]; then
	while IFS='|' read -r pattern reason; do
		trim "$pattern" && pattern=$REPLY
		case "$pattern" in '' | '#'*) continue ;; esac
		trim "$reason" && skip_patterns+=("$pattern") skip_reasons+=("$REPLY")
	done <"$SB_GUEST_SKIP"
fi
guest_skip() { # name: is it host-only? Sets REPLY to why.
	local i
	for i in "${!skip_patterns[@]}"; do
		case "$1" in *"${skip_patterns[$i]}"*) REPLY=${skip_reasons[$i]}; return 0 ;; esac
	done
	return 1
}

report() { # status name detail
	n=$((n + 1))
	case "$1" in
	pass) pass=$((pass + 1)); echo "ok $n - $2" ;;
	skip) skipped=$((skipped + 1)); echo "ok $n - $2 # SKIP $3" ;;
	*) failed=$((failed + 1)); failures+=("$2"); echo "not ok $n - $2"
	   [ -n "$3" ] && while IFS= read -r line; do echo "#   $line"; done <<<"$3" ;;
	esac
}

# Every test_ function of the suite's files, "FILE NAME" sorted, from one awk:
# sourcing each file to list its functions took a minute per guest.
mapfile -t cases < <(awk '/^test_[A-Za-z0-9_]+\(\)/ { sub(/\(.*/, ""); print FILENAME, $0 }' \
	"$here/${suite}"_*.sh | LC_ALL=C sort -k1,1 -k2,2)
uid=$(id -u)
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
for c in "${cases[@]}"; do
	file=${c%% *} t=${c#* }
	name=${file##*/} && name=${name%.sh} && name="${name#"${suite}"_}: ${t#test_}"
	if [ -n "$filter" ] && ! selected "$name"; then continue; fi
	if guest_skip "$name"; then
		report skip "$name" "not in the kernel matrix: $REPLY"
		continue
	fi
	if [ "$uid" != 0 ] && ! grep -q "^# no-root: $t\$" "$file"; then
		if [ "${CI:-}" = true ]; then
			report fail "$name" "needs root, and CI must not skip it"
		else
			report skip "$name" "needs root"
		fi
		continue
	fi
	log=$logs/$n
	start=$SECONDS
	if [ "$uid" = 0 ]; then
		timeout -k 10 "$per_test_timeout" unshare -m -n --propagation private \
			bash -c ". '$here/lib.sh'; . '$file'; sb_setup; $t" >"$log" 2>&1
	else
		timeout -k 10 "$per_test_timeout" bash -c ". '$here/lib.sh'; . '$file'; $t" >"$log" 2>&1
	fi
	rc=$?
	secs=$((SECONDS - start))
	case $rc in
	0) report pass "$name (${secs}s)"
	   while IFS= read -r line; do
		case "$line" in 'result: '*) echo "#   $line" ;; esac
	   done <"$log" ;;
	77) if [ "${CI:-}" = true ]; then
		report fail "$name" "skipped under CI: $(tail -n 3 "$log")"
	    else
		report skip "$name" "$(grep '^SKIP' "$log" | tail -n 1)"
	    fi ;;
	78) report skip "$name" "$(grep '^N/A' "$log" | tail -n 1)" ;;
	124 | 137) report fail "$name" "timed out after ${per_test_timeout}s
$(tail -n 20 "$log")" ;;
	*) report fail "$name (${secs}s)" "$(tail -n 20 "$log")" ;;
	esac
	rm -f "$log"
done

echo "1..$n"
if [ "$failed" -gt 0 ]; then
	echo "# failed: ${failures[*]}"
fi
echo "$pass passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
