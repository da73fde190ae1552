#!/usr/bin/env bash
# Runs wrk against one gatekeeper process serving a site behind the handler
# (block mode, default detection, file store) and saves a CPU profile of
# the server under that load, then prints its top entries. PROFILE names
# the file (default cpu.pprof); DURATION is how long the profile runs.
# Browse it with: go tool pprof -http=: bin/gatekeeper cpu.pprof
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin/gatekeeper}
PROFILE=${PROFILE:-cpu.pprof}
DURATION=${DURATION:-8}
source scripts/lib.sh
need_wrk
work=$(mktemp -d)
pid=""
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
admin=127.0.0.1:$(free_port); guarded=$(free_port)
cat > "$work/Caddyfile" <<CADDY
{
	admin $admin
	default_bind 127.0.0.1
	gatekeeper {
		store file $work/data
	}
}
http://:$guarded {
	gatekeeper {
		tenant {http.request.host.labels.1}
	}
	respond "ok"
}
CADDY
start_gatekeeper "$work/Caddyfile"

# A browser's headers, from a source without an approval: the whole
# detection path runs on every request.
wrk -t1 -c32 -d"$((DURATION + 2))s" -H "Host: acme.localhost" \
	-H "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0" \
	-H "Accept: text/html,*/*;q=0.8" -H "Accept-Language: en" "http://127.0.0.1:$guarded/" >"$work/wrk" &
wrkpid=$!
sleep 1
curl -fs -o "$PROFILE" "http://$admin/debug/pprof/profile?seconds=$DURATION"
wait $wrkpid
grep -E "Requests/sec" "$work/wrk"
echo "CPU profile: $PROFILE"
go tool pprof -top -nodecount=25 "$BIN" "$PROFILE" 2>/dev/null | tail -n +5
