#!/usr/bin/env bash
# Prints what `make run` serves, as the Caddyfile $2 configures it (adapted
# by the gatekeeper binary $1): the site's address, the admin API's, and the
# commands to try. Without jq it says where to look instead of guessing.
set -euo pipefail
bin=$1 config=$2

echo
echo "Gatekeeper is starting with $config."
if ! command -v jq >/dev/null || ! json=$("$bin" adapt --config "$config" --adapter caddyfile 2>/dev/null); then
	echo "  addresses: the site's and the admin API's ('admin' in the global options) are in $config"
else
	# The first server's first address; a bare :port listens on every interface.
	site=$(jq -r '[.apps.http.servers[]?.listen[]?][0] // empty' <<<"$json")
	site=${site#tcp/}
	[[ $site == :* ]] && site=127.0.0.1$site
	# A host such as *.localhost is one tenant per label: show one.
	host=$(jq -r '[.apps.http.servers[]?.routes[]?.match[]?.host[]?][0] // empty' <<<"$json")
	host=${host/#\*./acme.}
	admin=$(jq -r '.admin.listen // "localhost:2019"' <<<"$json")
	if [ -n "$site" ]; then
		echo "  site:      curl ${host:+-H 'Host: $host' }http://$site/"
	fi
	case $admin in
	unix/*) echo "  admin API: curl --unix-socket ${admin#unix/} http://localhost/gatekeeper/status" ;;
	*) echo "  admin API: curl http://${admin#tcp/}/gatekeeper/status" ;;
	esac
fi
echo "  CLI:       $bin approvals list --config $config   (in another terminal)"
echo "  console:   $bin console --config $config          (prints the URL to open in a browser)"
echo "Stop it with Ctrl-C."
echo
