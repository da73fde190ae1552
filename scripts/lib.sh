# Shared by bench-load.sh and profile.sh: wrk, free ports, and a gatekeeper
# process in the background. Source it after setting BIN.

# need_wrk installs wrk when missing and running as root, else says how.
need_wrk() {
	command -v wrk >/dev/null && return
	if [ "$(id -u)" -eq 0 ]; then apt-get update -qq && apt-get install -y -qq wrk >/dev/null
	else echo "wrk is missing: sudo apt-get install -y wrk" >&2; exit 1; fi
}

# free_port prints a loopback port that was free a moment ago.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_gatekeeper runs $BIN with the Caddyfile $1 in the background, its
# output in $1.log and its pid in $pid, and waits until the admin API at
# $admin answers.
start_gatekeeper() {
	"$BIN" run --config "$1" --adapter caddyfile >"$1.log" 2>&1 &
	pid=$!
	for _ in $(seq 100); do curl -fs "http://$admin/gatekeeper/status" >/dev/null && return; sleep 0.1; done
	echo "gatekeeper did not start:" >&2; cat "$1.log" >&2; exit 1
}
