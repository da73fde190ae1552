#!/usr/bin/env bash
# Allocations per request under load: the bare site and the guarded one of
# bench-load.sh's configuration, each under wrk (a browser's requests from
# a source without an approval) for 6 s, with the runtime's malloc count
# and bytes read from the admin endpoint's /debug/vars before and after.
set -euo pipefail
BIN=${BIN:-bin/gatekeeper}
source "$(dirname "$0")/lib.sh"
need_wrk
work=$(mktemp -d); admin=127.0.0.1:$(free_port); bare=$(free_port); guarded=$(free_port)
bench_caddyfile "$work/Caddyfile" "$work/data"
start_gatekeeper "$work/Caddyfile"
trap 'kill $pid 2>/dev/null; rm -rf $work' EXIT
vars() { curl -fs "http://$admin/debug/vars" | python3 -c 'import json,sys; m=json.load(sys.stdin)["memstats"]; print(m["Mallocs"], m["TotalAlloc"], m["NumGC"])'; }
for site in bare guarded; do
  port=${!site}
  browser_wrk 198.51.100.20 $port 2s >/dev/null
  read m0 a0 g0 < <(vars)
  out=$(browser_wrk 198.51.100.20 $port 6s)
  read m1 a1 g1 < <(vars)
  n=$(echo "$out" | awk '/requests in/{print $1}')
  python3 -c "n=$n; print('$site', n, 'requests:', round(($m1-$m0)/n,1), 'mallocs/req', round(($a1-$a0)/n), 'B/req', $g1-$g0, 'GCs')"
done
