#!/usr/bin/env bash
# A wrk load run against one gatekeeper process serving two sites from the
# same build: a bare Caddy site and the same site behind the gatekeeper
# handler, once from a source without an approval and once from an approved
# source (wrk cannot pick its source address, so the approval covers
# 127.0.0.1). Prints requests/s for each and the ratio to bare Caddy. All
# traffic stays on loopback; each run lasts DURATION.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin/gatekeeper}
DURATION=${DURATION:-10s}
source scripts/lib.sh
need_wrk
work=$(mktemp -d)
pid=""
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
admin=127.0.0.1:$(free_port); bare=$(free_port); guarded=$(free_port)
cat > "$work/Caddyfile" <<CADDY
{
	admin $admin
	default_bind 127.0.0.1
	gatekeeper {
		store file $work/data
	}
}
http://:$bare {
	respond "ok"
}
http://:$guarded {
	gatekeeper {
		tenant {http.request.host.labels.1}
	}
	respond "ok"
}
CADDY
start_gatekeeper "$work/Caddyfile"

run() { wrk -t2 -c32 -d"$DURATION" -H "Host: $2" "http://127.0.0.1:$1/" | awk '/Requests\/sec/ {print $2}'; }
b=$(run "$bare" acme.localhost)
u=$(run "$guarded" acme.localhost)
from=$(date -u -d '-1 min' +%FT%TZ); until=$(date -u -d '+1 hour' +%FT%TZ)
"$BIN" approvals add --address "$admin" --tenant acme --source 127.0.0.1 --from "$from" --until "$until" \
	--rps 1000000 --burst 1000000 --max-requests 1000000000 --requested-by bench --approved-by bench --ref BENCH >/dev/null
a=$(run "$guarded" acme.localhost)
printf '%-34s %12s %8s\n' "site (wrk -t2 -c32 -d$DURATION)" "requests/s" "ratio"
printf '%-34s %12.0f %8s\n' "bare Caddy" "$b" "1.00"
printf '%-34s %12.0f %8.2f\n' "gatekeeper, unapproved source" "$u" "$(awk "BEGIN {print $u / $b}")"
printf '%-34s %12.0f %8.2f\n' "gatekeeper, approved source" "$a" "$(awk "BEGIN {print $a / $b}")"
