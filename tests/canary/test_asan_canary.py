"""Planted bugs for the ASan Python leg (``make canary-check`` only).

Not collected by the normal suite (``testpaths`` is tests/python): the
canary check runs the ASan leg with ``CANARY=asan``, which builds the
``_spk_canary`` extension (tests/c/canary_py.c) into the ASan build
directory and adds this file to the leg's pytest run.  Each test must be
killed by AddressSanitizer; if one returns, the leg is not really checking
extension code and the canary check fails.
"""

from __future__ import annotations

import glob
import importlib.machinery
import importlib.util
import os

import pytest


def _load():
    d = os.environ.get("CSPIKE_CANARY_DIR")
    if not d:
        pytest.fail("CSPIKE_CANARY_DIR is not set: run through `make canary-check`")
    found = glob.glob(os.path.join(d, "_spk_canary*.so"))
    if len(found) != 1:
        pytest.fail(f"expected one _spk_canary module in {d}, found {found}")
    loader = importlib.machinery.ExtensionFileLoader("_spk_canary", found[0])
    spec = importlib.util.spec_from_file_location("_spk_canary", found[0], loader=loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def test_canary_heap_overflow_in_extension():
    _load().heap_overflow()
    pytest.fail("ASan did not stop a heap-buffer-overflow in an extension")


def test_canary_python_object_use_after_free():
    _load().object_use_after_free()
    pytest.fail("ASan did not stop a use after free of a Python object "
                "(is PYTHONMALLOC=malloc set?)")
