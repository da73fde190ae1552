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
source scripts/lib.sh
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
# per_round prints, for each round of build $1, the value of column $3 for
# site $2: r its requests/s ratio to bare, c its CPU efficiency (bare CPU
# a request / its own), d its CPU a request over bare's, in µs.
per_round() {
	awk -v b="$1" -v s="$2" -v k="$3" '
		$1 == b {rps[$2, $3] = $4; cpu[$2, $3] = $5; rounds[$2] = 1}
		END {
			for (r in rounds) {
				if (!((r, s) in rps) || !((r, "bare") in rps)) continue
				if (k == "r") print rps[r, s] / rps[r, "bare"]
				else if (k == "c") print cpu[r, "bare"] / cpu[r, s]
				else print cpu[r, s] - cpu[r, "bare"]
			}
		}' "$rows"
}
printf '%-6s %-11s %8s %16s %15s %16s\n' build source rounds "requests/s ratio" "CPU efficiency" "CPU over bare"
for build in A B; do
	for site in unapproved approved; do
		printf '%-6s %-11s %8d %16.3f %15.3f %13.2f µs\n' "$build" "$site" "$(per_round "$build" "$site" r | wc -l)" \
			"$(per_round "$build" "$site" r | median)" "$(per_round "$build" "$site" c | median)" "$(per_round "$build" "$site" d | median)"
	done
done
