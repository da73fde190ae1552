#!/usr/bin/env bash
# Makes sure the programs the tests start are installed: redis-server and
# redis-cli (Debian's redis-server and redis-tools), prometheus and promtool
# (Debian's prometheus), chromium (the console's browser test), openssl, jq
# and curl (operations.md's mTLS guide, which e2e runs as written). As root
# it installs what is missing with apt-get; otherwise it stops with the
# command to run.
set -euo pipefail
declare -A pkg_of=([redis-server]=redis-server [redis-cli]=redis-tools [prometheus]=prometheus [promtool]=prometheus [chromium]=chromium [openssl]=openssl [jq]=jq [curl]=curl)
missing=() pkgs=()
for bin in redis-server redis-cli prometheus promtool chromium openssl jq curl; do
	if ! command -v "$bin" >/dev/null 2>&1; then
		missing+=("$bin")
		[[ " ${pkgs[*]} " == *" ${pkg_of[$bin]} "* ]] || pkgs+=("${pkg_of[$bin]}")
	fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "installing ${pkgs[*]} (missing: ${missing[*]})"
	apt-get update -qq
	# The packages may start system services on their default ports; the
	# tests never use them: they start their own on free loopback ports.
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
	exit 0
fi
echo "missing: ${missing[*]}. Install them with:" >&2
echo "  sudo apt-get update && sudo apt-get install -y ${pkgs[*]}" >&2
exit 1
