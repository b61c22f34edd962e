# cspike - build, run and test.  Everything a fresh Debian machine needs is
# installed from here: apt for compilers (tools/ensure-deps.sh), a
# free-threaded CPython built from Debian's sources (tools/build-python-ft.sh),
# and pip into .venv / .venv-ft for the Python tools.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BUILD ?= build/main
PIP := $(PY) -m pip --disable-pip-version-check -q
PYTEST_ARGS ?= -q -n 2

# Free-threaded leg (CPython 3.13t, GIL off).
FT_PREFIX ?= /opt/python3.13t
FT_PYTHON ?= $(FT_PREFIX)/bin/python3.13t
FT_VENV ?= .venv-ft
FT_PY := $(FT_VENV)/bin/python
FT_BUILD ?= build/ft
TEST_PKGS := meson-python meson ninja pytest pytest-xdist pytest-timeout

.PHONY: all run test deps venv build ctest pytest test-ft build-ft clean

all: build

# System packages: a C compiler, Python headers and venv, clang for fuzzing.
deps:
	@./tools/ensure-deps.sh

$(VENV)/.stamp: pyproject.toml | deps
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -U pip
	$(PIP) install $(TEST_PKGS) uvloop
	touch $@

venv: $(VENV)/.stamp

# Editable install: meson rebuilds changed C sources on import.
build: venv
	$(PIP) install --no-build-isolation -Cbuild-dir=$(BUILD) -e .
	ninja -C $(BUILD)

# ---- the legs of `make test` ----------------------------------------------
# Every leg runs by default, one after the other; tools/run-legs.sh times
# each, goes on after a failure and prints a summary (build/legs-summary.txt).
# Select legs with LEGS, drop some with SKIP:
#   make test LEGS="ctest pytest"         make test SKIP="fuzz canary-check"
# Each leg is also a target of its own (make test-asan, make fuzz, ...).
#   ctest         C tests (codec, core, server, fuzz regressions), plain build
#   pytest        the Python suite on $(PYTHON)
#   test-ft       the Python suite on free-threaded CPython 3.13t, GIL off
#   test-asan     ASan+UBSan build: C tests (leak check on), Python suite
#   test-tsan     TSan build: the C core's multi-threaded tests
#   fuzz          every libFuzzer target, FUZZ_SECONDS each
#   canary-check  each sanitizer/fuzz leg with its planted bug must FAIL
ALL_LEGS := ctest pytest test-ft test-asan test-tsan fuzz canary-check
LEGS ?= $(ALL_LEGS)
SKIP ?=
$(foreach l,$(LEGS) $(SKIP),$(if $(filter $(l),$(ALL_LEGS)),,$(error unknown leg '$(l)' (legs: $(ALL_LEGS)))))

# CANARY=asan|ubsan|tsan|fuzz builds the matching leg with its planted bug
# (meson -Dcanary, see tests/c/canary.c); only canary-check sets it.
CANARY ?= none
$(if $(filter $(CANARY),none asan ubsan tsan fuzz),,$(error CANARY must be none, asan, ubsan, tsan or fuzz))
ASAN_CANARY := $(if $(filter asan ubsan,$(CANARY)),$(CANARY),none)
TSAN_CANARY := $(if $(filter tsan,$(CANARY)),tsan,none)
FUZZ_CANARY := $(if $(filter fuzz,$(CANARY)),fuzz,none)

MESON := $(VENV)/bin/meson
# A hung test must not hang the run: the thread method ends the stuck
# worker (pytest-xdist replaces it) even when it is blocked in C code.
PYTEST_ARGS += -rsfE --timeout-method=thread
# Every test venv gets uvloop, so the uvloop tests must run, not skip.
export CSPIKE_REQUIRE_UVLOOP := 1

.PHONY: build-asan test-asan test-asan-c test-asan-py \
        build-tsan test-tsan fuzz canary-check

test:
	@MAKE="$(MAKE)" tools/run-legs.sh $(filter-out $(SKIP),$(LEGS))

ctest: build
	$(MESON) test -C $(BUILD) --print-errorlogs

pytest: build
	$(PY) -m pytest $(PYTEST_ARGS)

# ---- free-threaded CPython ------------------------------------------------
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Built once per machine (about 3 minutes); an existing install is reused.
$(FT_PYTHON):
	$(SUDO) ./tools/build-python-ft.sh

# uvloop has no cp313t wheel: pip builds it from its sdist (about a minute,
# once); its extension declares the GIL unused.
$(FT_VENV)/.stamp: pyproject.toml | $(FT_PYTHON)
	$(FT_PYTHON) -m venv $(FT_VENV)
	$(FT_PY) -m pip --disable-pip-version-check -q install -U pip
	$(FT_PY) -m pip --disable-pip-version-check -q install $(TEST_PKGS)
	$(FT_PY) -m pip --disable-pip-version-check -q install uvloop
	touch $@

build-ft: $(FT_VENV)/.stamp
	$(FT_PY) -m pip --disable-pip-version-check -q install --no-build-isolation \
	  -Cbuild-dir=$(FT_BUILD) -e .

# PYTHON_GIL unset: the interpreter keeps the GIL off unless a module asks
# for it, which is what tests/python/test_gil.py checks; on this leg it
# must run (CSPIKE_REQUIRE_FREE_THREADING turns its skip into a failure).
test-ft: build-ft
	env -u PYTHON_GIL CSPIKE_REQUIRE_FREE_THREADING=1 $(FT_PY) -m pytest $(PYTEST_ARGS)

# ---- ASan + UBSan -----------------------------------------------------------
# One gcc build (build/asan) with -fsanitize=address,undefined, installed
# editable into .venv-asan.  The C tests run with leak detection on; the
# Python suite runs on the stock interpreter with the ASan runtime preloaded
# and PYTHONMALLOC=malloc (so Python objects are ASan-checked mallocs too),
# leak detection off (CPython itself does not free everything at exit).
ASAN_VENV ?= .venv-asan
ASAN_PY := $(ASAN_VENV)/bin/python
ASAN_BUILD ?= build/asan
ASAN_SETUP := -Db_sanitize=address,undefined -Dbuildtype=debugoptimized \
              -Dc_args=-fno-omit-frame-pointer
ASAN_RT = $(shell $${CC:-cc} -print-file-name=libasan.so)
UBSAN_ENV := UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:print_summary=1
ASAN_C_ENV := ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0:detect_stack_use_after_return=1:strict_init_order=1:print_summary=1 \
              LSAN_OPTIONS=print_suppressions=0 $(UBSAN_ENV)
ASAN_LOGS := $(CURDIR)/build/asan-logs
ASAN_PY_ENV = LD_PRELOAD=$(ASAN_RT) PYTHONMALLOC=malloc \
              ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:allocator_may_return_null=1:print_summary=1:log_path=$(ASAN_LOGS)/asan \
              UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:print_summary=1:log_path=$(ASAN_LOGS)/ubsan
# With CANARY=asan (canary-check) the leg runs the planted Python bugs
# (tests/canary, loading _spk_canary from the ASan build) instead of the suite.
ASAN_PYTEST_FILES = $(if $(filter asan,$(CANARY)),tests/canary,)
ASAN_PY_ENV += $(if $(filter asan,$(CANARY)),CSPIKE_CANARY_DIR=$(CURDIR)/$(ASAN_BUILD)/tests/c,)

$(ASAN_VENV)/.stamp: pyproject.toml | deps
	$(PYTHON) -m venv $(ASAN_VENV)
	$(ASAN_PY) -m pip --disable-pip-version-check -q install -U pip
	$(ASAN_PY) -m pip --disable-pip-version-check -q install $(TEST_PKGS) uvloop
	touch $@

build-asan: $(ASAN_VENV)/.stamp
	$(ASAN_PY) -m pip --disable-pip-version-check -q install --no-build-isolation \
	  -Cbuild-dir=$(ASAN_BUILD) $(addprefix -Csetup-args=,$(ASAN_SETUP)) -e .
	tools/meson-dir.sh $(ASAN_VENV)/bin/meson $(ASAN_BUILD) -Dcanary=$(ASAN_CANARY)
	ninja -C $(ASAN_BUILD)

test-asan: test-asan-c test-asan-py

test-asan-c: build-asan
	$(ASAN_C_ENV) $(ASAN_VENV)/bin/meson test -C $(ASAN_BUILD) --no-rebuild \
	  --print-errorlogs --timeout-multiplier 3

test-asan-py: build-asan
	@test -f "$(ASAN_RT)" || { echo "no ASan runtime ($(ASAN_RT)): make deps" >&2; exit 1; }
	rm -rf $(ASAN_LOGS) && mkdir -p $(ASAN_LOGS)
	$(ASAN_PY_ENV) $(ASAN_PY) tools/check-sanitized.py $(ASAN_BUILD)
	rc=0; $(ASAN_PY_ENV) $(ASAN_PY) -m pytest $(PYTEST_ARGS) $(ASAN_PYTEST_FILES) || rc=$$?; \
	  tools/sanitizer-logs.sh $(ASAN_LOGS) || rc=1; exit $$rc

# ---- TSan -------------------------------------------------------------------
# A clang build (build/tsan) of the C core's own multi-threaded tests only
# (test_core: pool checkout/return, hazard pointers, tend thread vs commands,
# close while commands run, batch); the server it starts is built there too.
TSAN_BUILD ?= build/tsan
TSAN_SETUP := -Db_sanitize=thread -Dbuildtype=debugoptimized \
              -Dc_args=-fno-omit-frame-pointer
TSAN_ENV := TSAN_OPTIONS=halt_on_error=0:second_deadlock_stack=1:print_summary=1

build-tsan: venv
	CC=clang tools/meson-dir.sh $(MESON) $(TSAN_BUILD) $(TSAN_SETUP) -Dcanary=$(TSAN_CANARY)
	ninja -C $(TSAN_BUILD) tests/c/test_core server/cspike-server

test-tsan: build-tsan
	$(TSAN_ENV) $(MESON) test -C $(TSAN_BUILD) --no-rebuild --print-errorlogs \
	  --timeout-multiplier 3 core

# ---- fuzzing ----------------------------------------------------------------
FUZZ_SECONDS ?= 60

fuzz: venv
	MESON=$(MESON) FUZZ_SECONDS=$(FUZZ_SECONDS) CANARY=$(FUZZ_CANARY) tools/fuzz.sh

# ---- canaries ---------------------------------------------------------------
# Builds each leg above with its planted bug and asserts that the leg FAILS,
# showing the line that proves why; then the next normal run of a leg
# switches its canary off again.
canary-check: venv
	MAKE="$(MAKE)" tools/canary-check.sh

# Every available mode plus the pure-C baseline against a 3-node embedded
# server, 4 s each after 1 s of warm-up: about a minute.
run: build
	$(PY) -m cspike bench --nodes 3 --duration 4 --warmup 1

clean:
	rm -rf build $(VENV) $(FT_VENV) $(ASAN_VENV) fuzz-out
