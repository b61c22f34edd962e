"""check-sanitized.py BUILD_DIR - before the ASan Python leg runs the suite,
make sure it would really check something: the ASan runtime is loaded in
this interpreter, PYTHONMALLOC=malloc is in effect (Python objects are
plain, ASan-checked mallocs), and cspike._core and the embedded server come
from the sanitized build directory and are linked with the ASan runtime.
Any miss fails the leg instead of letting it pass unchecked."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys


def fail(msg: str) -> None:
    print(f"check-sanitized: {msg}", file=sys.stderr)
    sys.exit(1)


def needs_asan(path: str) -> bool:
    out = subprocess.run(["readelf", "-d", path], capture_output=True, text=True, check=True).stdout
    return "libasan.so" in out


def main() -> None:
    build = os.path.realpath(sys.argv[1])
    try:
        ctypes.CDLL(None).__asan_init
    except AttributeError:
        fail("the ASan runtime is not loaded (LD_PRELOAD?)")
    if sys.getallocatedblocks() != 0:
        fail("pymalloc is in use: set PYTHONMALLOC=malloc")
    import cspike._core as core
    from cspike.testing import find_binary
    so, server = os.path.realpath(core.__file__), os.path.realpath(find_binary())
    for what, path in (("cspike._core", so), ("cspike-server", server)):
        if not path.startswith(build + os.sep):
            fail(f"{what} is {path}, not from {build}")
        if not needs_asan(path):
            fail(f"{what} ({path}) is not linked with the ASan runtime")
    print(f"check-sanitized: ASan runtime loaded, PYTHONMALLOC=malloc, "
          f"{os.path.relpath(so)} and {os.path.relpath(server)} sanitized")


if __name__ == "__main__":
    main()
