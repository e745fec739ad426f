# The project's single entry point. Every target first makes sure the Debian
# packages it needs are installed (scripts/install-deps.sh, idempotent).
#
#   make demo      dependencies, build, then the email example on loopback:
#                  5 members in 3 zones, SMTP fronts, processors, a live
#                  table and the dashboard (q quits and runs the audit)
#   make test      dependencies, build, the whole suite: plain, ASan+UBSan, TSan
#   make build     dependencies and the plain build
#   make check     the plain build's suite only (fast loop while developing)
#   make sanitize  ASan+UBSan build and its suite (with 10 s of each fuzz
#                  target)
#   make fuzz      the libFuzzer targets (tests/fuzz/), FUZZ_SECONDS each
#                  (default 600), or only FUZZ_TARGET (FUZZ_SECONDS=0:
#                  until Ctrl-C)
#   make tsan      TSan build and its suite
#   make package   the Debian package (build/packages/quorate_VERSION_amd64.deb):
#                  programs, library, headers, a systemd unit and its
#                  configuration (docs/operations.md, "Installing the package")
#   make bench     benchmarks (Release build), printing numbers
#   make coverage  line coverage of src/ by the unit tests
#   make soak      simulation seeds without end
#   make chaos     the long chaos suite: random fault schedules on real
#                  processes for 30 minutes, then a summary (needs root)
#   make replay-zone-cut        the zone-cut incident replayed on the email
#                  example, audited and reported (needs root)
#   make replay-outbound-flood  the outbound-flood incident replayed
#   make format    clang-format in place;  make lint: clang-tidy
#   make clean     remove every build directory

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
JOBS ?= $(shell nproc)
BUILD_DIR ?= build
ASAN_DIR ?= build-asan
TSAN_DIR ?= build-tsan
COV_DIR ?= build-coverage
BENCH_DIR ?= build-bench
CTEST_FLAGS ?= --output-on-failure --timeout 900 -j $(JOBS)

# configure(dir, extra cmake args): configure once; afterwards the build
# itself re-runs CMake when a CMakeLists.txt changes.
define configure
	@if [ ! -f $(1)/build.ninja ]; then \
	  cmake -S . -B $(1) -G Ninja $(2); \
	fi
endef

.PHONY: all deps build demo check test package sanitize tsan fuzz bench coverage soak chaos replay-zone-cut replay-outbound-flood format lint clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	$(call configure,$(BUILD_DIR),-DCMAKE_BUILD_TYPE=RelWithDebInfo)
	cmake --build $(BUILD_DIR) -j $(JOBS)

demo: build
	@scripts/demo.sh $(BUILD_DIR)

check: build
	ctest --test-dir $(BUILD_DIR) $(CTEST_FLAGS)

ASAN_FLAGS := -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=clang++ -DQUORATE_SANITIZE=address -DQUORATE_BUILD_BENCHMARKS=OFF

# The simulator's own gtests (SimulatorTest, SimulatorCheckersTest) run in
# the plain build only; under ASan each scenario they single out runs on a
# few seeds instead (tests/sim/CMakeLists.txt says why). The lint tests
# (format, layers) read sources, not binaries: the plain build runs them.
sanitize: deps
	$(call configure,$(ASAN_DIR),$(ASAN_FLAGS))
	cmake --build $(ASAN_DIR) -j $(JOBS)
	ctest --test-dir $(ASAN_DIR) $(CTEST_FLAGS) -LE lint -E '^Simulator(Checkers)?Test\.'

tsan: deps
	$(call configure,$(TSAN_DIR),-DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=clang++ -DQUORATE_SANITIZE=thread -DQUORATE_BUILD_BENCHMARKS=OFF)
	cmake --build $(TSAN_DIR) -j $(JOBS)
	ctest --test-dir $(TSAN_DIR) $(CTEST_FLAGS) -LE lint

# The fuzz targets of the ASan build, one after another, each for
# FUZZ_SECONDS (0: until Ctrl-C, for one target named by FUZZ_TARGET). Each
# keeps what it learns in $(ASAN_DIR)/fuzz-corpus/<target>, seeded from
# tests/fuzz/corpus/<target>; a crashing input and the log go to
# $(ASAN_DIR)/fuzz-crashes/<target>/. Stops at the first target that
# crashes, printing the report and the command that replays it.
FUZZ_SECONDS ?= 600
FUZZ_TARGET ?=
FUZZ_TARGETS := fuzz_raft_step fuzz_wal_recovery fuzz_snapshot_restore fuzz_kv_apply
fuzz: deps
	@if [ "$(FUZZ_SECONDS)" = 0 ] && [ -z "$(FUZZ_TARGET)" ]; then \
	  echo "FUZZ_SECONDS=0 runs one target until Ctrl-C: name it, e.g." \
	       "FUZZ_TARGET=fuzz_raft_step"; exit 2; fi
	$(call configure,$(ASAN_DIR),$(ASAN_FLAGS))
	@cmake -S . -B $(ASAN_DIR) -DQUORATE_FUZZ=ON >/dev/null
	cmake --build $(ASAN_DIR) -j $(JOBS) --target $(or $(FUZZ_TARGET),$(FUZZ_TARGETS))
	@for t in $(or $(FUZZ_TARGET),$(FUZZ_TARGETS)); do \
	  tests/fuzz/run-fuzzer.sh fuzz $(ASAN_DIR)/tests/fuzz/$$t $(FUZZ_SECONDS) \
	    tests/fuzz/corpus/$$t $(ASAN_DIR)/fuzz-corpus/$$t $(ASAN_DIR)/fuzz-crashes/$$t; \
	done

# The Debian package, from the plain build (cmake/QuoratePackage.cmake).
package: build
	cd $(BUILD_DIR) && cpack

# The whole suite: the plain build first (fastest feedback), then both
# sanitizer builds. Each part ends with CTest's summary.
test: check sanitize tsan

bench: deps
	$(call configure,$(BENCH_DIR),-DCMAKE_BUILD_TYPE=Release -DQUORATE_BUILD_TESTS=ON)
	cmake --build $(BENCH_DIR) -j $(JOBS) --target run_benchmarks
	scripts/run-benchmarks.sh $(BENCH_DIR)

# Simulation seeds without end, from a seed taken from the clock; prints
# progress (seeds per hour) every 1,000 seeds and every failure with the
# command that replays it. Stop it with Ctrl-C.
soak: build
	$(BUILD_DIR)/tests/sim/quorate-sim --seed=$$(date +%s)000 --runs=0

# Random chaos schedules (src/chaos/schedule.h) on 5 quorate-node
# processes in 3 zones, one run after another for CHAOS_DURATION, each run
# CHAOS_RUN_LENGTH long; prints each report and a summary at the end, and
# exits 1 if any run found a violation. Reports, timelines and member logs
# go under CHAOS_OUT (default: a new directory under /tmp). Needs root.
CHAOS_DURATION ?= 30m
CHAOS_RUN_LENGTH ?= 60s
CHAOS_OUT ?=
chaos: build
	$(BUILD_DIR)/src/quorate-chaos --random --seed=$$(date +%s) \
	  --duration=$(CHAOS_DURATION) --run_length=$(CHAOS_RUN_LENGTH) \
	  --node_binary=$(BUILD_DIR)/src/quorate-node $(if $(CHAOS_OUT),--out=$(CHAOS_OUT))

# The incident replays (docs/operations.md, "Incident replays"): the email
# example under quorate-chaos, each run audited and reported (replay.txt
# and replay.html in its directory), then medians over the runs. Settings
# go in the environment or on the command line, e.g.
#   make replay-zone-cut CUT=60s VARIANTS=a DBS=postgres RUNS=5
# zone-cut (needs root): CUT (5m), VARIANTS ("a b"), RATE (50), DBS
# ("postgres sqlite"), RUNS (1), OUT. outbound-flood: BURST (20000), STALL
# (2m), OUTBOX_LIMIT (256), SEND_TIMEOUT (10s), DBS, RUNS, OUT.
REPLAY_SETTINGS := RUNS DBS OUT CUT VARIANTS RATE WARMUP AFTER BURST STALL \
  OUTBOX_LIMIT SEND_TIMEOUT
REPLAY_ENV = $(foreach v,$(REPLAY_SETTINGS),$(if $($(v)),$(v)='$($(v))'))
replay-zone-cut: build
	env $(REPLAY_ENV) examples/email/replay/replay.sh zone-cut $(BUILD_DIR)

replay-outbound-flood: build
	env $(REPLAY_ENV) examples/email/replay/replay.sh outbound-flood $(BUILD_DIR)

# Line coverage of src/ by the unit tests (gcov + gcovr).
coverage: deps
	$(call configure,$(COV_DIR),-DCMAKE_BUILD_TYPE=Debug -DQUORATE_BUILD_BENCHMARKS=OFF -DCMAKE_CXX_FLAGS=--coverage -DCMAKE_EXE_LINKER_FLAGS=--coverage)
	cmake --build $(COV_DIR) -j $(JOBS)
	find $(COV_DIR) -name '*.gcda' -delete
	ctest --test-dir $(COV_DIR) $(CTEST_FLAGS) -L unit
	gcovr --root . --filter 'src/' --exclude-directories '.*CompilerId.*' \
	  --object-directory $(COV_DIR) --txt $(COV_DIR)/coverage.txt
	@cat $(COV_DIR)/coverage.txt
	@echo "consensus core (src/raft/):"
	@gcovr --root . --filter 'src/raft/' --exclude-directories '.*CompilerId.*' \
	  --object-directory $(COV_DIR) --print-summary --txt /dev/null

format: deps
	scripts/format.sh

lint: build
	scripts/lint.sh $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR) $(TSAN_DIR) $(BENCH_DIR) $(COV_DIR)
