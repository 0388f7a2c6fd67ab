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
# "PATTERN | REASON" lines: cases that run on the host only, and why.
guest_skip() { # name
	local pattern reason
	[ -n "${SB_GUEST_SKIP:-}" ] || return 1
	while IFS='|' read -r pattern reason; do
		pattern=$(echo "$pattern" | xargs)
		case "$pattern" in '' | '#'*) continue ;; esac
		case "$1" in *"$pattern"*) echo "${reason# }"; return 0 ;; esac
	done <"$SB_GUEST_SKIP"
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

for file in "$here/${suite}"_*.sh; do
	for t in $(bash -c ". '$file'; declare -F" | awk '$3 ~ /^test_/ { print $3 }'); do
		name="$(basename "$file" .sh | sed "s/^${suite}_//"): ${t#test_}"
		if [ -n "$filter" ] && ! selected "$name"; then continue; fi
		if reason=$(guest_skip "$name"); then
			report skip "$name" "not in the kernel matrix: $reason"
			continue
		fi
		if [ "$(id -u)" != 0 ] && ! grep -q "^# no-root: $t\$" "$file"; then
			if [ "${CI:-}" = true ]; then
				report fail "$name" "needs root, and CI must not skip it"
			else
				report skip "$name" "needs root"
			fi
			continue
		fi
		log=$(mktemp)
		start=$(date +%s)
		if [ "$(id -u)" = 0 ]; then
			timeout -k 10 "$per_test_timeout" unshare -m -n --propagation private \
				bash -c ". '$here/lib.sh'; . '$file'; sb_setup; $t" >"$log" 2>&1
		else
			timeout -k 10 "$per_test_timeout" bash -c ". '$here/lib.sh'; . '$file'; $t" >"$log" 2>&1
		fi
		rc=$?
		secs=$(($(date +%s) - start))
		case $rc in
		0) report pass "$name (${secs}s)"
		   grep '^result: ' "$log" | sed 's/^/#   /' ;;
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
done

echo "1..$n"
if [ "$failed" -gt 0 ]; then
	echo "# failed: ${failures[*]}"
fi
echo "$pass passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
