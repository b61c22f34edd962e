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
# Safety legs (make test-asan / test-tsan / fuzz):
# clang's libFuzzer and TSan runtimes,
for rt in fuzzer tsan asan; do
  [ -n "$(ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.$rt-x86_64.a 2>/dev/null)" ] || need libclang-rt-14-dev
done
# gcc's ASan and UBSan runtimes (the ASan leg preloads libasan.so),
asan_rt=$(cc -print-file-name=libasan.so 2>/dev/null || true)
[ -e "$asan_rt" ] && [ "$asan_rt" != libasan.so ] || need "libgcc-$(cc -dumpversion | cut -d. -f1)-dev"
dpkg -s libubsan1 >/dev/null 2>&1 || need libubsan1
# file:line in clang sanitizer reports, readelf/nm for the checks.
command -v llvm-symbolizer >/dev/null 2>&1 || need llvm
command -v readelf >/dev/null 2>&1 && command -v nm >/dev/null 2>&1 || need binutils
if [ -n "$missing" ]; then
  echo "installing:$missing"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $(printf '%s\n' $missing | sort -u)
fi
