#!/usr/bin/env bash
# run-legs.sh LEG... - run the legs of `make test` one after the other
# (each is a make target), time each, keep going after a failure so one run
# shows every broken leg, print a summary table and fail if any leg failed.
#   MAKE         the make to call (the Makefile passes its own)
#   LEG_TIMEOUT  seconds one leg may take before it is killed (default 1500)
set -uo pipefail
MAKE=${MAKE:-make}
LEG_TIMEOUT=${LEG_TIMEOUT:-1500}
if [ $# -eq 0 ]; then
  echo "run-legs: no legs selected (LEGS/SKIP left nothing to run)" >&2
  exit 2
fi
mkdir -p build
summary=build/legs-summary.txt
: >"$summary"
t_all=$(date +%s)
passed=0 failed=0
for leg in "$@"; do
  echo
  echo "==================== leg $leg ===================="
  t0=$(date +%s)
  timeout -k 30 "$LEG_TIMEOUT" "$MAKE" --no-print-directory "$leg"
  rc=$?
  t=$(( $(date +%s) - t0 ))
  if [ $rc -eq 0 ]; then
    status=ok; passed=$((passed + 1))
  else
    status="FAILED (exit $rc$([ $rc -eq 124 ] && echo ", killed after ${LEG_TIMEOUT} s"))"
    failed=$((failed + 1))
  fi
  printf '%-14s %6d s  %s\n' "$leg" "$t" "$status" | tee -a "$summary"
done
echo
echo "==================== summary ===================="
cat "$summary"
printf '%-14s %6d s\n' total "$(( $(date +%s) - t_all ))"
echo "legs: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
