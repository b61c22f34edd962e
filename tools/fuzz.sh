#!/usr/bin/env bash
# fuzz.sh - the fuzz leg of `make test`: build every libFuzzer target of the
# project (tests/fuzz/fuzz_*.c, server/fuzz_*.c), replay its seed corpus and
# saved regressions, then fuzz each for FUZZ_SECONDS (FUZZ_JOBS targets at a
# time).  A crash, leak, timeout or OOM fails the leg; its input is saved to
# tests/fuzz/regressions/<target>/ (commit it with the fix: meson test re-runs
# it in every build) and printed in the log as base64, so a CI run's finding
# can be recreated from the log alone.
#
#   MESON         meson to use (default: meson)
#   FUZZ_BUILD    build directory (default build/fuzz, clang)
#   FUZZ_SECONDS  seconds per target (default 60)
#   FUZZ_JOBS     targets fuzzed at once (default: nproc)
#   FUZZ_TARGETS  only these targets (default: all that are built)
#   CANARY        none, or fuzz: build with the planted crash (canary.c) and
#                 do not save what is found (make canary-check)
set -euo pipefail
cd "$(dirname "$0")/.."
MESON=${MESON:-meson}
BUILD=${FUZZ_BUILD:-build/fuzz}
SECONDS_PER=${FUZZ_SECONDS:-60}
JOBS=${FUZZ_JOBS:-$(nproc)}
CANARY=${CANARY:-none}
OUT=fuzz-out
[ "$CANARY" = none ] || [ "$CANARY" = fuzz ] || { echo "fuzz.sh: CANARY=$CANARY?" >&2; exit 2; }
command -v clang >/dev/null || { echo "fuzz.sh: clang is missing (make deps)" >&2; exit 1; }

CC=clang tools/meson-dir.sh "$MESON" "$BUILD" -Dfuzz=true -Dtests=false -Dcanary="$CANARY"

# Every fuzz_* executable the build defines, as "name path".
mapfile -t defined < <("$MESON" introspect "$BUILD" --targets | python3 -c '
import json, os, sys
for t in json.load(sys.stdin):
    if t["type"] == "executable" and t["name"].startswith("fuzz_"):
        print(t["name"], os.path.relpath(t["filename"][0]))')
declare -A exe=()
for d in "${defined[@]}"; do exe[${d%% *}]=${d#* }; done
# A fuzz target source the build does not build is a mistake, not a skip.
for src in tests/fuzz/fuzz_*.c server/fuzz_*.c; do
  [ -e "$src" ] || continue
  n=$(basename "$src" .c)
  [ -n "${exe[$n]:-}" ] || { echo "fuzz.sh: $src has no meson target named $n" >&2; exit 1; }
done
if [ -n "${FUZZ_TARGETS:-}" ]; then targets=($FUZZ_TARGETS); else
  mapfile -t targets < <(printf '%s\n' "${!exe[@]}" | sort); fi
[ "${#targets[@]}" -gt 0 ] || { echo "fuzz.sh: no fuzz targets" >&2; exit 1; }
paths=()
for t in "${targets[@]}"; do
  [ -n "${exe[$t]:-}" ] || { echo "fuzz.sh: unknown target $t" >&2; exit 1; }
  paths+=("${exe[$t]#"$BUILD"/}")
done
ninja -C "$BUILD" "${paths[@]}"

if [ "$CANARY" = fuzz ]; then
  # Only targets linked with the canary can be checked for it.
  with=()
  for t in "${targets[@]}"; do
    if nm "${exe[$t]}" | grep -c ' spk_fuzz_target_one_input$' >/dev/null; then with+=("$t")
    else echo "canary: $t has no canary (its meson.build does not link tests/fuzz/canary.c)"; fi
  done
  targets=("${with[@]}")
  [ "${#targets[@]}" -gt 0 ] || { echo "fuzz.sh: no target carries the canary" >&2; exit 1; }
fi

# 1. Replay the seed corpus and the saved regressions (-runs=0: no fuzzing).
mkdir -p "$OUT"
for t in "${targets[@]}"; do
  corpus=tests/fuzz/corpus/$t reg=tests/fuzz/regressions/$t
  [ -n "$(ls -A "$corpus" 2>/dev/null)" ] || { echo "fuzz.sh: no seed corpus in $corpus" >&2; exit 1; }
  mkdir -p "$reg"
  echo "replay $t: $(find "$corpus" "$reg" -type f ! -name '.*' | wc -l) inputs"
  if ! "${exe[$t]}" -runs=0 "$corpus" "$reg" >"$OUT/replay.$t.log" 2>&1; then
    cat "$OUT/replay.$t.log"; echo "fuzz.sh: $t fails on its corpus or regressions" >&2; exit 1
  fi
  rm -f "$OUT/replay.$t.log"
done

# 2. Fuzz.
run_one() {
  local t=$1 w=$OUT/$1
  rm -rf "$w"; mkdir -p "$w/corpus" "$w/artifacts"
  local t0=$SECONDS rc=0
  "${exe[$t]}" "$w/corpus" "tests/fuzz/corpus/$t" "tests/fuzz/regressions/$t" \
    -max_total_time="$SECONDS_PER" -timeout=25 -rss_limit_mb=3072 \
    -print_final_stats=1 -artifact_prefix="$w/artifacts/" >"$w/log" 2>&1 || rc=$?
  echo "$rc $((SECONDS - t0))" >"$w/status"
}
mkdir -p "$OUT"
echo "fuzzing ${targets[*]}: ${SECONDS_PER} s each, $JOBS at a time"
for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
  run_one "$t" &
done
wait

failed=0
for t in "${targets[@]}"; do
  w=$OUT/$t
  read -r rc took <"$w/status"
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$w/log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$w/log" | tail -1)
  new=$(find "$w/corpus" -type f | wc -l)
  printf '%-14s exit %-3s %4s s  %10s execs  %-22s %5s new inputs\n' "$t" "$rc" "$took" "${execs:-?}" "${cov:-?}" "$new"
  arts=$(find "$w/artifacts" -type f | sort)
  if [ "$rc" -eq 0 ] && [ -z "$arts" ]; then
    [ "${execs:-0}" -gt 0 ] || { echo "  $t ran no inputs"; failed=1; }
    continue
  fi
  failed=1
  echo "---- $t: libFuzzer found a problem ----"
  grep -E '^==[0-9]+==ERROR|SUMMARY:|runtime error|^ *#[0-9]+ 0x' "$w/log" | head -30 || true
  [ -n "$arts" ] || { tail -30 "$w/log"; continue; }
  for a in $arts; do
    echo "  input $(basename "$a") ($(stat -c %s "$a") bytes), base64:"
    base64 -w 100 "$a" | head -20 | sed 's/^/    /'
    if [ "$CANARY" = none ]; then
      mkdir -p "tests/fuzz/regressions/$t"
      cp "$a" "tests/fuzz/regressions/$t/"
      echo "  saved as tests/fuzz/regressions/$t/$(basename "$a")"
    fi
  done
done
[ "$failed" -eq 0 ] && echo "fuzz: ${#targets[@]} passed, 0 failed" || echo "fuzz: some targets failed (logs in $OUT/<target>/log)"
exit "$failed"
