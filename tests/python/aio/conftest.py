"""Fixtures of the asyncio suite.

Targets come from the ``cspike.testing.plugin`` fixtures: the embedded
server (one node / three nodes) by default, or the real cluster named by
``CSPIKE_TEST_HOSTS`` (fault-injection tests then skip: they use
``aerospike_server_factory``).  Tests are plain functions that run their
coroutine on a fresh loop of the ``loop_kind`` under test (default asyncio
loop and uvloop), so no pytest-asyncio is needed.  Each test writes to its
own set (``set_name``), so tests can run in parallel (pytest-xdist).

Environment:
  CSPIKE_TEST_HOSTS      host:port[,...] of a real cluster
  CSPIKE_TEST_NAMESPACE  namespace to use (default "test")
"""

from __future__ import annotations

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from aiohelpers import (CLIENT_KW, HAVE_UVLOOP, LOOP_KINDS,  # noqa: E402
                       UVLOOP_MISSING, need_uvloop, run)

def pytest_configure(config):
    config.addinivalue_line("markers", "faults: uses fault injection of the embedded server")
    config.addinivalue_line("markers", "fake_server: runs against an in-test fake node "
                                       "(works with CSPIKE_TEST_HOSTS too)")


def pytest_report_header(config):
    return f"cspike aio suite: uvloop {'available' if HAVE_UVLOOP else 'skipped: ' + UVLOOP_MISSING}"


@pytest.fixture(params=LOOP_KINDS)
def loop_kind(request) -> str:
    """The event loop implementation under test: 'asyncio' or 'uvloop'."""
    if request.param == "uvloop":
        need_uvloop()
    return request.param


@pytest.fixture
def arun(loop_kind):
    """arun(coro) -> result, on a fresh loop of ``loop_kind``."""
    return lambda coro: run(loop_kind, coro)


@pytest.fixture
def key(ns, set_name):
    """key(x) -> Key in this test's set."""
    from cspike import Key

    def make(value="k"):
        return Key(ns, set_name, value)
    return make


@pytest.fixture(params=["node1", "nodes3"])
def seeds(request) -> str:
    """Seeds of the one-node server, then of the 3-node cluster (both the
    real cluster with CSPIKE_TEST_HOSTS)."""
    name = "aerospike_seeds" if request.param == "node1" else "aerospike_cluster_seeds"
    return request.getfixturevalue(name)


@pytest.fixture
def sync_client(seeds):
    """A SyncClient on the same target, to cross-check async results."""
    from cspike import SyncClient
    c = SyncClient(seeds, **CLIENT_KW)
    c.connect()
    yield c
    c.close()

