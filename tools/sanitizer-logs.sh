#!/bin/sh
# sanitizer-logs.sh DIR - print the sanitizer reports that processes wrote
# to DIR (ASAN_OPTIONS / UBSAN_OPTIONS log_path=DIR/...) and fail if there
# is any.  The ASan Python leg logs to files because pytest-xdist workers
# and the servers the tests start do not show their stderr: a report there
# would otherwise be seen only as "worker crashed", or not at all.  Each
# report is shortened to its error line, the stack frames in cspike's own
# code (interpreter frames dropped) and its summary.
set -eu
dir=$1
n=$(find "$dir" -type f 2>/dev/null | wc -l)
if [ "$n" -eq 0 ]; then
  echo "sanitizer-logs: no reports in $dir"
  exit 0
fi
echo "sanitizer-logs: $n report(s) in $dir:"
for f in $(find "$dir" -type f | sort); do
  echo "==== $f"
  grep -E 'ERROR: |runtime error:|^(READ|WRITE) of|freed by thread|previously allocated by|^    #[0-9]+ .*(src/core|src/python|server/|tests/)|^SUMMARY' "$f" |
    grep -vE 'libsanitizer' | head -40
done
exit 1
