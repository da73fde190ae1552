#!/usr/bin/env bash
# Runs wrk against the guarded site of bench-load.sh's configuration (a
# browser's requests from a source without an approval: the whole detection
# path runs on every request; SOURCE=192.0.2.10 profiles an approved
# source instead) and saves a CPU profile of the server under that load,
# then prints its top entries. PROFILE names the file (default cpu.pprof);
# DURATION is how long the profile runs, in seconds; SITE=bare profiles the
# bare site of the same process instead, for comparison, and SITE=both
# loads both sites at once (a wrk each), so that one profile holds both
# and the handler's share (gatekeeper's ServeHTTP less the next handler) is
# read against the same process, heap and kernel as the bare requests.
# Browse it with: go tool pprof -http=: bin/gatekeeper cpu.pprof
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin/gatekeeper}
PROFILE=${PROFILE:-cpu.pprof}
DURATION=${DURATION:-8}
SOURCE=${SOURCE:-198.51.100.20}
source scripts/lib.sh
start_bench_server
[ "$SOURCE" = 192.0.2.10 ] && approve acme 192.0.2.10

port=$guarded
[ "${SITE:-guarded}" = bare ] && port=$bare
browser_wrk "$SOURCE" "$port" "$((DURATION + 2))s" >"$work/wrk" &
wrkpids=$!
if [ "${SITE:-guarded}" = both ]; then
	browser_wrk "$SOURCE" "$bare" "$((DURATION + 2))s" >"$work/wrk-bare" &
	wrkpids="$wrkpids $!"
fi
sleep 1
curl -fs -o "$PROFILE" "http://$admin/debug/pprof/profile?seconds=$DURATION"
wait $wrkpids
echo "$(grep -E "Requests/sec" "$work/wrk") (port $port)"
[ -f "$work/wrk-bare" ] && echo "$(grep -E "Requests/sec" "$work/wrk-bare") (bare, port $bare)"
echo "CPU profile: $PROFILE"
go tool pprof -top -nodecount=25 "$BIN" "$PROFILE" 2>/dev/null | tail -n +5
