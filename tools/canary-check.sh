#!/usr/bin/env bash
# canary-check.sh - prove that each safety leg really catches bugs: build
# the leg with its planted bug (make <leg> CANARY=..., meson -Dcanary=...)
# and assert that the leg FAILS, for the planted bug's reason, showing the
# lines that prove it.  Also show that a plain build does NOT notice the C
# canaries, so each is caught by its sanitizer alone.  Logs: build/canary/.
#
#   canary  leg run with it          what must stop it
#   asan    test-asan-c, test-asan-py  AddressSanitizer (C test, extension,
#                                      Python object with PYTHONMALLOC=malloc)
#   ubsan   test-asan-c              UndefinedBehaviorSanitizer
#   tsan    test-tsan                ThreadSanitizer
#   fuzz    fuzz                     libFuzzer finding a magic input, ASan
set -uo pipefail
cd "$(dirname "$0")/.."
MAKE=${MAKE:-make}
MESON=${MESON:-.venv/bin/meson}
LOGS=build/canary
mkdir -p "$LOGS"
failures=0
results=()

# expect_fail NAME 'PATTERN1' 'PATTERN2' ... -- COMMAND...
expect_fail() {
  local name=$1; shift
  local pats=()
  while [ "$1" != "--" ]; do pats+=("$1"); shift; done
  shift
  local log=$LOGS/$name.log t0=$SECONDS rc=0
  echo
  echo "---- canary $name: $* (must FAIL)"
  "$@" >"$log" 2>&1 || rc=$?
  local took=$((SECONDS - t0))
  if [ "$rc" -eq 0 ]; then
    echo "CANARY NOT CAUGHT: '$*' passed with the planted bug ($log):"
    tail -25 "$log" | sed 's/^/    /'
    failures=$((failures + 1)); results+=("$name: NOT CAUGHT"); return
  fi
  local p missing=0
  for p in "${pats[@]}"; do
    if ! grep -qE -- "$p" "$log"; then
      echo "canary $name: the leg failed (exit $rc) but no line matches /$p/ ($log):"
      missing=1
    fi
  done
  if [ "$missing" = 1 ]; then
    tail -40 "$log" | sed 's/^/    /'
    failures=$((failures + 1)); results+=("$name: failed for another reason"); return
  fi
  echo "canary $name: the leg FAILED as it must (exit $rc, ${took} s); proof:"
  for p in "${pats[@]}"; do grep -m2 -E -- "$p" "$log" | cut -c1-200 | sed 's/^/    /'; done
  results+=("$name: caught (${took} s)")
}

# The C canaries are real bugs that a plain build runs without noticing.
plain_passes() {
  local canary=$1 test=$2 dir=build/canary-plain log=$LOGS/plain-$1.log
  {
    tools/meson-dir.sh "$MESON" "$dir" -Dcanary="$canary" &&
      ninja -C "$dir" tests/c/test_core &&
      "$dir/tests/c/test_core" "$test"
  } >"$log" 2>&1
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "canary $canary: the plain (unsanitized) build fails it too ($log), so it proves nothing:"
    tail -20 "$log" | sed 's/^/    /'
    failures=$((failures + 1)); results+=("$canary plain: FAILED"); return
  fi
  echo "canary $canary: a plain build runs $test and passes: $(grep -m1 "^ok .* - $test" "$log")"
}

N="--no-print-directory"
expect_fail asan-c \
  'ERROR: AddressSanitizer: heap-buffer-overflow' 'canary\.c:[0-9]+' \
  'not ok [0-9]+ - canary_asan_heap_overflow' \
  'ERROR: LeakSanitizer: detected memory leaks' 'not ok [0-9]+ - canary_asan_leak' \
  -- "$MAKE" $N test-asan-c CANARY=asan
expect_fail asan-py \
  'ERROR: AddressSanitizer: heap-buffer-overflow' 'ERROR: AddressSanitizer: heap-use-after-free' \
  'canary_py\.c:[0-9]+' 'in object_use_after_free' \
  -- "$MAKE" $N test-asan-py CANARY=asan
expect_fail ubsan \
  'canary\.c:[0-9]+:[0-9]+: runtime error: signed integer overflow' \
  'not ok [0-9]+ - canary_ubsan_signed_overflow' \
  -- "$MAKE" $N test-asan-c CANARY=ubsan
expect_fail tsan \
  'WARNING: ThreadSanitizer: data race' 'canary_racer .*canary\.c:[0-9]+' \
  'not ok [0-9]+ - canary_tsan_data_race' \
  -- "$MAKE" $N test-tsan CANARY=tsan
expect_fail fuzz \
  'ERROR: AddressSanitizer: heap-buffer-overflow' 'in LLVMFuzzerTestOneInput .*tests/fuzz/canary\.c' \
  'fuzz_msg +exit [1-9]' 'fuzz_msgpack +exit [1-9]' 'fuzz_info +exit [1-9]' \
  -- "$MAKE" $N fuzz CANARY=fuzz FUZZ_SECONDS="${CANARY_FUZZ_SECONDS:-120}"
# Each crash libFuzzer saved is the magic input, found by fuzzing.
for a in fuzz-out/*/artifacts/crash-*; do
  [ -e "$a" ] || continue
  if [ "$(head -c 8 "$a")" = SPKCANRY ]; then
    echo "    $(echo "$a" | cut -d/ -f2): found input $(head -c 16 "$a" | od -An -c | tr -s ' ' | head -c 60)"
  else
    echo "canary fuzz: $a is not the planted input: a real finding?"; failures=$((failures + 1))
  fi
done

echo
plain_passes asan canary_asan_heap_overflow
plain_passes asan canary_asan_leak
plain_passes ubsan canary_ubsan_signed_overflow
plain_passes tsan canary_tsan_data_race

echo
echo "==== canary check ===="
printf '  %s\n' "${results[@]}"
if [ "$failures" -ne 0 ]; then
  echo "canary-check: $failures problem(s): a leg does not catch its canary"
  exit 1
fi
echo "canary-check: every leg fails on its canary"
