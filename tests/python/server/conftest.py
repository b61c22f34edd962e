"""Fixtures for the embedded server's own tests.

The server binary comes from $CSPIKE_SERVER_BIN, else the copy installed with
cspike, else a development build under build/*/server/.  cspike.testing is
imported normally; when the package cannot be imported (the C extension is
not built), the module file is loaded on its own, since it needs nothing
from the extension.
"""
import glob
import importlib.util
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, HERE)


def _load_testing():
    try:
        import cspike.testing as t  # noqa: F401

        return t
    except Exception:
        path = os.path.join(ROOT, "cspike", "testing", "__init__.py")
        spec = importlib.util.spec_from_file_location("_cspike_testing", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod


testing = _load_testing()


def _binary():
    env = os.environ.get("CSPIKE_SERVER_BIN")
    if env:
        return env
    try:
        return testing.find_binary()
    except Exception:
        pass
    builds = sorted(
        glob.glob(os.path.join(ROOT, "build", "*", "server", "cspike-server")),
        key=os.path.getmtime,
        reverse=True,
    )
    if builds:
        return builds[0]
    pytest.skip("cspike-server binary not found (build it or set CSPIKE_SERVER_BIN)")


@pytest.fixture(scope="session")
def server_bin():
    return _binary()


@pytest.fixture(scope="session")
def Server(server_bin):
    """cspike.testing.Server bound to the binary under test."""

    def make(**kw):
        kw.setdefault("binary", server_bin)
        return testing.Server(**kw)

    return make
