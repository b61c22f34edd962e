#!/bin/sh
# Install the system packages cspike needs to build and test, if missing.
set -eu
missing=""
need() { dpkg -s "$1" >/dev/null 2>&1 || missing="$missing $1"; }
command -v cc >/dev/null 2>&1 || need build-essential
# Python headers and venv for whichever python3 builds the extension.
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' 2>/dev/null; then
  need python3-dev
fi
"$PY" -c 'import ensurepip, venv' 2>/dev/null || need python3-venv
command -v clang >/dev/null 2>&1 || need clang
[ -n "$(ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a 2>/dev/null)" ] || need libclang-rt-14-dev
if [ -n "$missing" ]; then
  echo "installing:$missing"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $missing
fi
