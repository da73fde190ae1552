#!/usr/bin/env bash
# Gatekeeper's cost for the traffic it lets through (issue #11): one process
# of this build serves two `respond "ok"` sites, one bare and one behind the
# gatekeeper handler (block mode, default detection, file store, metrics on,
# 1 000 approvals of other sources loaded). wrk sends a browser's requests,
# in ROUNDS interleaved rounds (the order turning each round), to:
#   bare        the bare site;
#   unapproved  the guarded site, from a source without an approval;
#   approved    the guarded site, from a source whose approval covers it,
#               well within its rate and budget.
# wrk cannot pick its source address, so the sources come in
# X-Forwarded-For from a trusted loopback proxy, for both sites alike.
# Each run lasts DURATION; the server's CPU time comes from /proc. It prints
# every run, then the median over rounds of each round's ratio to the bare
# site: requests/s, CPU efficiency (bare CPU a request / the guarded
# site's), and the same for user CPU alone (the kernel's share of a
# loopback request, half of it, swings from run to run with how the
# server's writes and wrk's wake-ups fall). SERVER_CPUS and WRK_CPUS pin
# the server and wrk to CPUs (taskset lists). All traffic stays on
# loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin/gatekeeper}
DURATION=${DURATION:-6s}
ROUNDS=${ROUNDS:-5}
APPROVALS=${APPROVALS:-1000}
source scripts/lib.sh
start_bench_server

for i in $(seq 0 $((APPROVALS - 1))); do approve "t$((i % 50))" "10.$((i / 250)).$((i % 250)).1"; done
approve acme 192.0.2.10

# cpu prints the server's user and system CPU time so far, in clock ticks.
cpu() { awk '{print $14, $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)

declare -A rps cpureq userreq
run() { # name port source round
	local out ub sb ua sa
	read -r ub sb < <(cpu)
	out=$(browser_wrk "$3" "$2" "$DURATION")
	read -r ua sa < <(cpu)
	if grep -q "Non-2xx" <<<"$out"; then echo "$1: refused requests:" >&2; echo "$out" >&2; exit 1; fi
	local r n
	r=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
	n=$(awk '/requests in/ {print $1}' <<<"$out")
	rps[$1,$4]=$r
	cpureq[$1,$4]=$(awk "BEGIN {print ($ua + $sa - $ub - $sb) / $hz / $n * 1e6}")
	userreq[$1,$4]=$(awk "BEGIN {print ($ua - $ub) / $hz / $n * 1e6}")
}
names=(bare unapproved approved)
declare -A port=([bare]=$bare [unapproved]=$guarded [approved]=$guarded)
declare -A src=([bare]=198.51.100.20 [unapproved]=198.51.100.20 [approved]=192.0.2.10)
run bare "$bare" 198.51.100.20 warm >/dev/null # warm-up, not counted
printf '%-6s %-11s %12s %15s %15s\n' round site requests/s "CPU µs/request" "user µs/request"
for r in $(seq 1 "$ROUNDS"); do
	for k in 0 1 2; do
		name=${names[$(((r + k) % 3))]}
		run "$name" "${port[$name]}" "${src[$name]}" "$r"
		printf '%-6s %-11s %12.0f %15.1f %15.1f\n' "$r" "$name" "${rps[$name,$r]}" "${cpureq[$name,$r]}" "${userreq[$name,$r]}"
	done
done

echo
printf '%-34s %16s %16s %16s\n' "median of $ROUNDS rounds (wrk -t1 -c32 -d$DURATION)" "requests/s ratio" "CPU efficiency" "user CPU only"
for name in unapproved approved; do
	rr=$(for r in $(seq 1 "$ROUNDS"); do awk "BEGIN {print ${rps[$name,$r]} / ${rps[bare,$r]}}"; done | median)
	cr=$(for r in $(seq 1 "$ROUNDS"); do awk "BEGIN {print ${cpureq[bare,$r]} / ${cpureq[$name,$r]}}"; done | median)
	ur=$(for r in $(seq 1 "$ROUNDS"); do awk "BEGIN {print ${userreq[bare,$r]} / ${userreq[$name,$r]}}"; done | median)
	printf '%-34s %16.3f %16.3f %16.3f\n' "gatekeeper, $name source" "$rr" "$cr" "$ur"
done
