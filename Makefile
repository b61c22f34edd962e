# cspike - build, run and test.  Everything a fresh Debian machine needs is
# installed from here (apt for compilers, pip into .venv for Python tools).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BUILD ?= build/main
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: all run test deps venv build ctest pytest clean

all: build

# System packages: a C compiler, Python headers and venv.
deps:
	@./tools/ensure-deps.sh

$(VENV)/.stamp: pyproject.toml | deps
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -U pip
	$(PIP) install meson-python meson ninja pytest pytest-xdist pytest-timeout uvloop
	touch $@

venv: $(VENV)/.stamp

# Editable install: meson rebuilds changed C sources on import.
build: venv
	$(PIP) install --no-build-isolation -Cbuild-dir=$(BUILD) -e .
	ninja -C $(BUILD)

ctest: build
	meson test -C $(BUILD) --print-errorlogs

pytest: build
	$(PY) -m pytest -q -x

test: ctest pytest

run: build
	$(PY) -m cspike bench --nodes 3 --duration 5

clean:
	rm -rf build $(VENV)
