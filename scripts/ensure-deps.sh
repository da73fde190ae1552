#!/usr/bin/env bash
# Makes sure the programs the tests start are installed: redis-server and
# redis-cli. As root it installs what is missing with apt-get; otherwise it
# stops with the command to run.
set -euo pipefail
missing=()
for bin in redis-server redis-cli; do
	command -v "$bin" >/dev/null 2>&1 || missing+=("$bin")
done
[ ${#missing[@]} -eq 0 ] && exit 0
pkgs="redis-server redis-tools"
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "installing $pkgs (missing: ${missing[*]})"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkgs >/dev/null
	# The package may start a system server on 6379; the tests never use it.
	exit 0
fi
echo "missing: ${missing[*]}. Install them with:" >&2
echo "  sudo apt-get update && sudo apt-get install -y $pkgs" >&2
exit 1
