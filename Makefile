# Gatekeeper's commands. `make run` and `make test` work on a fresh machine.
SHELL := /bin/bash
GO    ?= go
BIN   := $(CURDIR)/bin/gatekeeper
PKGS  := ./...

.PHONY: build run test check deps vet fmt-check rules frames unit e2e fuzz fuzz-caddy unit-build fuzz-build bench profile clean

build:
	$(GO) build -o $(BIN) ./cmd/gatekeeper

# The banner prints the addresses the Caddyfile configures (CONFIG=F runs
# another Caddyfile).
CONFIG ?= Caddyfile
run: build
	@scripts/run-banner.sh ./bin/gatekeeper $(CONFIG)
	$(BIN) run --config $(CONFIG) --adapter caddyfile

# Everything the project checks: what the tests need, vet, gofmt, the
# alert rules, then the unit and integration tests (real Redis, real Caddy)
# with the race detector, the end-to-end suite against the built binary,
# then short fuzz runs: the request view against what frameworks serve,
# approval decoding, and the Redis ledger script against the Go ledger.
# The Caddyfile's and the admin API's fuzz targets run their seed corpora
# with the unit tests; make fuzz-caddy fuzzes them (an instrumented build
# of all of Caddy: minutes of a cold machine's two cores).
#
# The end-to-end suite is the longest step (about 7½ minutes) but mostly
# waits on real time windows, so scripts/test.sh starts it as soon as the
# binary is built and runs the rest beside it: go vet, the race and fuzzing builds
# compile at idle CPU priority, the race tests run beside it as they always
# have, and fuzzing, which takes every core, waits for it to end. The
# README gives the time from a clean clone with an empty Go build cache.
test: deps fmt-check rules build
	@MAKE="$(MAKE)" scripts/test.sh

# The quick loop for everyday work (under two minutes on two cores): vet,
# gofmt and every package's own tests, without the race detector, the
# end-to-end suite, the browser or fuzzing. make test runs everything.
check: vet fmt-check
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /e2e$$)

deps:
	@scripts/ensure-deps.sh

vet:
	$(GO) vet $(PKGS)

# The Prometheus alert rules and their unit tests.
rules:
	promtool check rules deploy/prometheus/alerts.yml
	cd deploy/prometheus && promtool test rules alerts_test.yml

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# A report of the stack a benign decision uses: the deepest chain of the
# module's frames from the handler's ServeHTTP (scripts/frames). It is not a
# gate: the wrk load run is what says whether stack growth costs anything
# (docs/performance.md). make bench prints it.
frames:
	$(GO) run ./scripts/frames

# The packages' own tests with the race detector, and the allocation
# counts without it. make vet has already run every analyser go test's
# vet step would (-vet=off), on the same packages and test files.
UNIT_PKGS = $$($(GO) list ./... | grep -v /e2e$$)
unit:
	$(GO) test -race -vet=off -count=1 -timeout 15m $(UNIT_PKGS)
	$(GO) test -vet=off -count=1 -run 'Allocations' ./caddymodule/

# The end-to-end suite against bin/gatekeeper. Without the race detector:
# the code under test runs in gatekeeper processes, not in the test binary,
# which holds only the harness and its load generators (a race build of
# them costs a minute of compiling and slows the clients whose latency
# the impact tests measure).
e2e: build
	GATEKEEPER_BIN=$(BIN) $(GO) test -vet=off -count=1 -timeout 15m ./e2e/

# What unit and fuzz compile, without running anything: make test runs
# these at idle priority beside the end-to-end suite, and the steps then
# find their packages in the build cache and only link. go list -export
# compiles what go test -race would, without linking; a fuzzing build
# instruments every package, so only go test -c -fuzz makes it (the
# fuzzed packages share their instrumented dependencies).
unit-build:
	$(GO) list -race -test -deps -export -f '{{.Export}}' $(UNIT_PKGS) >/dev/null
	$(GO) list -test -deps -export -f '{{.Export}}' ./caddymodule/ >/dev/null
FUZZ_PKGS := ./policy/ ./approvals/ ./store/
fuzz-build:
	@d=$$(mktemp -d) && trap 'rm -rf "$$d"' EXIT && \
	for p in $(FUZZ_PKGS); do $(GO) test -vet=off -c -o "$$d/" -fuzz . $$p || exit 1; done

# Budgets are counts of runs (about 8 s each on two cores), not durations:
# Go 1.26's fuzzing coordinator can report "context deadline exceeded" as
# a failure when a duration runs out while a worker is busy (golang/go#75804,
# fixed in Go 1.27), with no failing input. A count has no deadline to race.
fuzz:
	$(GO) test -vet=off -run '^$$' -fuzz FuzzRequestView -fuzztime 50000x -fuzzminimizetime 2s ./policy/
	$(GO) test -vet=off -run '^$$' -fuzz FuzzDecodeApproval -fuzztime 120000x -fuzzminimizetime 2s ./approvals/
	$(GO) test -vet=off -run '^$$' -fuzz FuzzLedgerMatchesRedis -fuzztime 3000x -fuzzminimizetime 2s ./store/

# The Caddyfile and the admin API's routes, query parameters and bodies.
fuzz-caddy:
	$(GO) test -vet=off -run '^$$' -fuzz FuzzCaddyfile -fuzztime 8000x -fuzzminimizetime 2s ./caddymodule/
	$(GO) test -vet=off -run '^$$' -fuzz FuzzAdminAPI -fuzztime 200x -fuzzminimizetime 2s ./caddymodule/

# Go benchmarks; the stack report (make frames); the ban flood (50 000
# sources) and the source flood (2 100 000 sources: tracker memory and RSS)
# against the built binary; then the wrk comparison of a guarded site with a
# bare Caddy site of the same build, in interleaved rounds
# (scripts/bench-load.sh: ROUNDS, DURATION, SERVER_CPUS and WRK_CPUS to pin
# them).
bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./approvals/ ./caddymodule/ ./detect/
	$(GO) run ./scripts/frames
	GATEKEEPER_BIN=$(BIN) $(GO) test -run '^$$' -bench 'BanFlood|SourceFlood' -benchtime 1x -timeout 15m ./e2e/
	BIN=$(BIN) scripts/bench-load.sh

# A CPU profile of the server under a wrk load (scripts/profile.sh).
profile: build
	BIN=$(BIN) scripts/profile.sh

clean:
	rm -rf bin data
