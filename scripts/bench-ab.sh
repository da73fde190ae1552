#!/usr/bin/env bash
# Compares two builds under the load run: bench-load.sh against build A,
# then build B, PAIRS times over (A B A B ...), ROUNDS rounds each, then
# the medians over every round of each build of its ratios to the bare
# site of the same process and round: requests/s, CPU efficiency, and the
# guarded site's server CPU a request over the bare one's. Alternating
# whole runs spreads the machine's drift over both builds; pooling the
# rounds gives the medians more to stand on than one run's.
# Usage: scripts/bench-ab.sh OLD_BINARY NEW_BINARY (PAIRS, ROUNDS,
# DURATION, SERVER_CPUS and WRK_CPUS as for bench-load.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: $0 OLD_BINARY NEW_BINARY" >&2; exit 2; }
PAIRS=${PAIRS:-3}
ROUNDS=${ROUNDS:-5}
rows=$(mktemp)
trap 'rm -f "$rows"' EXIT
for pair in $(seq 1 "$PAIRS"); do
	for build in A B; do
		bin=$1
		[ "$build" = B ] && bin=$2
		# Each printed run row is "round site requests/s cpu user".
		BIN=$bin ROUNDS=$ROUNDS scripts/bench-load.sh | awk -v b="$build" -v p="$pair" \
			'$1 ~ /^[0-9]+$/ && NF == 5 {print b, p "." $1, $2, $3, $4}' >>"$rows"
		echo "pair $pair, build $build ($bin): done" >&2
	done
done
printf '%-6s %-11s %8s %16s %15s %16s\n' build source rounds "requests/s ratio" "CPU efficiency" "CPU over bare"
awk '
	{rps[$1, $2, $3] = $4; cpu[$1, $2, $3] = $5; rounds[$1, $2] = 1}
	function median(a, n,   i, j, t) {
		for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) {t = a[j]; a[j] = a[j-1]; a[j-1] = t}
		return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
	}
	END {
		split("A B", builds, " "); split("unapproved approved", sites, " ")
		for (bi = 1; bi <= 2; bi++) for (si = 1; si <= 2; si++) {
			b = builds[bi]; s = sites[si]; n = 0
			delete r; delete c; delete d
			for (k in rounds) {
				split(k, kk, SUBSEP)
				if (kk[1] != b || !((b, kk[2], s) in rps) || !((b, kk[2], "bare") in rps)) continue
				n++
				r[n] = rps[b, kk[2], s] / rps[b, kk[2], "bare"]
				c[n] = cpu[b, kk[2], "bare"] / cpu[b, kk[2], s]
				d[n] = cpu[b, kk[2], s] - cpu[b, kk[2], "bare"]
			}
			if (n) printf "%-6s %-11s %8d %16.3f %15.3f %13.2f µs\n", b, s, n, median(r, n), median(c, n), median(d, n)
		}
	}' "$rows"
