#!/usr/bin/env bash
# make bench, virtual ports part: what the cgroup bind and connect hooks cost.
# socket/bind/close and socket/connect-refused/close loops (sockbench -m bind,
# -m refused) from outside the covered cgroup (no hook runs: plain), inside
# it on a port no cgroup maps (the hooks' one array lookup), and in an
# instance cgroup on its mapped port (the bind gets a real port; the connect
# finds no listener of its instance). REPS rounds interleaved, medians of the
# per-round means and the per-round differences to plain. Prints a markdown
# table and writes it to bench/results/latest/portmap.md.
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)

case "${1:-}" in
-h | --help)
	echo "Usage: sudo make bench [QUICK=1]   (this is its virtual ports part: bench/portmap.sh)"
	exit 0 ;;
esac
# shellcheck source=bench/enter.sh
. "$here/enter.sh"
BENCH="$top/.output/sockbench"
REPS=$([ "${QUICK:-0}" = 1 ] && echo 3 || echo 7)
SECS=$([ "${QUICK:-0}" = 1 ] && echo 0.5 || echo 1)
rows="$TMP/rows.tsv" # op mode rep mean_us
: >"$rows"

load
mkdir -p "$CG/instance"
"$SB" portmap add --cgroup "$CG/instance" 9600 --pin-dir "$PIN" >/dev/null || exit 1

# one loop: OP (bind, refused), MODE (plain, unmapped, mapped)
round() {
	local op=$1 mode=$2 rep=$3 port=9601 cg=$ORIG_CG res
	case $mode in
	unmapped) cg=$CG ;;
	mapped) cg=$CG/instance port=9600 ;;
	esac
	res=$("$top/test/run-in-cgroup" "$cg" "$BENCH" -m "$op" -a "127.0.0.1:$port" -t "$SECS" -c 0) ||
		{ echo "sockbench -m $op ($mode) failed" >&2; exit 1; }
	printf '%s\t%s\t%s\t%s\n' "$op" "$mode" "$rep" \
		"$(tr ' ' '\n' <<<"$res" | sed -n 's/^mean_us=//p')" >>"$rows"
}

for rep in $(seq "$REPS"); do
	for op in bind refused; do
		for mode in plain unmapped mapped; do round "$op" "$mode" "$rep"; done
	done
done

med() { sort -g | awk '{ v[++n] = $1 } END { if (!n) print "-"; else printf "%.2f", (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2 }'; }
median() { # op mode
	awk -F'\t' -v o="$1" -v m="$2" '$1 == o && $2 == m { print $4 }' "$rows" | med
}
# the per-round difference MODE - plain, in microseconds
delta() { # op mode
	awk -F'\t' -v o="$1" -v m="$2" '$1 == o { v[$2, $3] = $4; r[$3] = 1 }
		END { for (k in r) if ((m, k) in v && ("plain", k) in v) print v[m, k] - v["plain", k] }' "$rows" | med
}
table() {
	local op
	echo "### Virtual ports: cost per call ($REPS rounds of ${SECS} s, medians, µs; kernel $(uname -r))"
	echo
	echo "| loop | plain (no hook) | covered, unmapped port | Δ unmapped | instance, mapped port | Δ mapped |"
	echo "|---|---:|---:|---:|---:|---:|"
	for op in bind refused; do
		printf '| %s | %s | %s | %s | %s | %s |\n' \
			"$([ "$op" = bind ] && echo "socket, bind, close" || echo "socket, connect (refused), close")" \
			"$(median "$op" plain)" "$(median "$op" unmapped)" "$(delta "$op" unmapped)" \
			"$(median "$op" mapped)" "$(delta "$op" mapped)"
	done
}
mkdir -p "$top/bench/results/latest"
table | tee "$top/bench/results/latest/portmap.md"
