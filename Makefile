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

ctest: build
	meson test -C $(BUILD) --print-errorlogs

pytest: build
	$(PY) -m pytest $(PYTEST_ARGS)

# ---- free-threaded CPython ------------------------------------------------
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(FT_PYTHON):
	$(SUDO) ./tools/build-python-ft.sh

$(FT_VENV)/.stamp: pyproject.toml | $(FT_PYTHON)
	$(FT_PYTHON) -m venv $(FT_VENV)
	$(FT_PY) -m pip --disable-pip-version-check -q install -U pip
	$(FT_PY) -m pip --disable-pip-version-check -q install $(TEST_PKGS)
	touch $@

build-ft: $(FT_VENV)/.stamp
	$(FT_PY) -m pip --disable-pip-version-check -q install --no-build-isolation \
	  -Cbuild-dir=$(FT_BUILD) -e .

# PYTHON_GIL unset: the interpreter keeps the GIL off unless a module asks
# for it, which is what the GIL test checks.
test-ft: build-ft
	env -u PYTHON_GIL $(FT_PY) -m pytest $(PYTEST_ARGS)

test: ctest pytest test-ft

run: build
	$(PY) -m cspike bench --nodes 3 --duration 5

clean:
	rm -rf build $(VENV) $(FT_VENV)
