#!/bin/sh
# meson-dir.sh MESON DIR [-Dopt=value ...] - set up a meson build directory,
# or, when it exists, set the given options on it (meson regenerates it on
# the next build, and ninja rebuilds only what the change touched).  The
# compiler comes from $CC at setup time.  Used by the safety legs (ASan,
# TSan, fuzz) so that `make canary-check` can switch -Dcanary on and the
# next normal run switches it off again.
set -eu
MESON=$1 DIR=$2
shift 2
if [ -f "$DIR/build.ninja" ] && [ -f "$DIR/meson-private/coredata.dat" ]; then
  # Change only what differs, so an unchanged directory is not regenerated.
  want=""
  for a in "$@"; do
    case "$a" in
      -D*=*)
        k=${a#-D}; v=${k#*=}; k=${k%%=*}
        cur=$("$MESON" introspect "$DIR" --buildoptions 2>/dev/null |
          python3 -c 'import json,sys
k=sys.argv[1]
for o in json.load(sys.stdin):
    if o["name"] == k:
        v = o["value"]
        print(",".join(v) if isinstance(v, list) else str(v).lower() if isinstance(v, bool) else v)' "$k")
        [ "$cur" = "$v" ] || want="$want $a"
        ;;
      *) want="$want $a" ;;
    esac
  done
  if [ -n "$want" ]; then
    echo "meson configure $DIR$want"
    # shellcheck disable=SC2086
    "$MESON" configure "$DIR" $want
  fi
else
  rm -rf "$DIR"
  echo "meson setup $DIR $* (CC=${CC:-cc})"
  "$MESON" setup "$DIR" "$@"
fi
