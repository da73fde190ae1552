#!/usr/bin/env bash
# The last part of make test, once the binary is built: the end-to-end
# suite, the packages' race tests and fuzzing, arranged around the suite.
#
# The suite takes most of the run's time but little of its CPU: it waits on
# real time windows, failovers and bursts. So it starts at once, in the
# foreground. Beside it, go vet, the race build of every other package and
# then the fuzzing builds compile at idle priority (SCHED_IDLE: the kernel hands the
# CPU to any other process that wakes, so the suite's latency measurements
# do not wait behind the compiler); once the race build is done, the race
# tests run at normal priority beside the suite, as they always have.
# Fuzzing keeps every core busy, so it waits for the suite to end.
set -uo pipefail
cd "$(dirname "$0")/.."
MAKE=${MAKE:-make}
ended=$(mktemp -u) # exists once the suite has ended
trap 'rm -f "$ended"' EXIT

# idle runs a command at idle CPU priority while the suite runs (nice 19
# where SCHED_IDLE cannot be had), at normal priority once it has ended.
idle() {
	if [ -e "$ended" ]; then
		"$@"
	elif chrt --idle 0 true 2>/dev/null; then
		chrt --idle 0 "$@"
	else
		nice -n 19 "$@"
	fi
}

# unidle gives process $1 and its descendants normal priority back: once the
# suite has ended the builds have nothing to yield to but other people's
# work. (Without the privilege to, they stay idle.)
unidle() {
	chrt --other -a -p 0 "$1" >/dev/null 2>&1
	renice -n 0 -p "$1" >/dev/null 2>&1
	for child in $(cat /proc/"$1"/task/*/children 2>/dev/null); do unidle "$child"; done
}

# The builds' output is dropped: a package that does not compile fails the
# step that runs it, with the compiler's message.
(
	idle "$MAKE" --no-print-directory vet
	vet=$?
	idle "$MAKE" -s unit-build >/dev/null 2>&1
	idle "$MAKE" -s fuzz-build >/dev/null 2>&1 &
	"$MAKE" --no-print-directory unit
	rc=$?
	wait
	[ $vet -ne 0 ] && echo "make test: go vet found problems" >&2
	exit $((rc | vet))
) &
beside=$!

"$MAKE" --no-print-directory e2e
e2e=$?
touch "$ended"
unidle $beside
wait $beside
unit=$?
if [ $e2e -ne 0 ] || [ $unit -ne 0 ]; then
	[ $e2e -ne 0 ] && echo "make test: the end-to-end suite failed" >&2
	[ $unit -ne 0 ] && echo "make test: the packages' tests failed" >&2
	exit 1
fi
exec "$MAKE" --no-print-directory fuzz
