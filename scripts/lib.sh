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
	${SERVER_CPUS:+taskset -c $SERVER_CPUS} "$BIN" run --config "$1" --adapter caddyfile >"$1.log" 2>&1 &
	pid=$!
	for _ in $(seq 100); do curl -fs "http://$admin/gatekeeper/status" >/dev/null && return; sleep 0.1; done
	echo "gatekeeper did not start:" >&2; cat "$1.log" >&2; exit 1
}

# bench_caddyfile writes to $1 the configuration bench-load.sh and
# profile.sh measure: one process serving a bare `respond "ok"` site on
# port $bare and the same behind the gatekeeper handler (block mode,
# default detection, file store in $2) on port $guarded, with metrics on
# and a trusted loopback proxy whose X-Forwarded-For gives each request
# its source.
bench_caddyfile() {
	cat > "$1" <<CADDY
{
	admin $admin
	default_bind 127.0.0.1
	metrics
	servers {
		trusted_proxies static 127.0.0.1/32
		trusted_proxies_strict
		client_ip_headers X-Forwarded-For
	}
	gatekeeper {
		store file $2
	}
}
http://:$bare {
	respond "ok"
}
http://:$guarded {
	gatekeeper {
		tenant {http.request.host.labels.1}
		mode block
	}
	respond "ok"
}
CADDY
}

# browser_wrk runs wrk with a browser's headers from source $1 against
# port $2 for $3 (wrk's -d), with one thread and 32 connections.
browser_wrk() {
	${WRK_CPUS:+taskset -c $WRK_CPUS} wrk -t1 -c32 -d"$3" -H "Host: acme.localhost" -H "X-Forwarded-For: $1" \
		-H "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0" \
		-H "Accept: text/html,*/*;q=0.8" -H "Accept-Language: en" "http://127.0.0.1:$2/"
}

# approve registers, through the admin API at $admin, an approval for
# tenant $1 and source $2 from a minute ago to an hour from now, with
# bounds no benchmark reaches.
approve() {
	local from until
	from=$(date -u -d '-1 min' +%FT%TZ); until=$(date -u -d '+1 hour' +%FT%TZ)
	curl -fsS -o /dev/null -X POST "http://$admin/gatekeeper/approvals" -H 'Content-Type: application/json' -d @- <<JSON
{"tenant":"$1","sources":["$2"],"not_before":"$from","not_after":"$until","max_rps":1000000,"burst":1000000,
 "max_requests":1000000000,"requested_by":"bench","approved_by":"bench","approval_ref":"BENCH"}
JSON
}

# start_bench_server starts, in the background, a gatekeeper serving
# bench_caddyfile's two sites from a temporary directory ($work, removed
# on exit with the process), with wrk at hand; it sets admin, bare,
# guarded and pid.
start_bench_server() {
	need_wrk
	work=$(mktemp -d)
	pid=""
	trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
	admin=127.0.0.1:$(free_port); bare=$(free_port); guarded=$(free_port)
	bench_caddyfile "$work/Caddyfile" "$work/data"
	start_gatekeeper "$work/Caddyfile"
}

# median prints the median of the numbers on its input, one a line.
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
