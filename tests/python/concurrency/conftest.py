"""Fixtures of the concurrency suite (threads, AsyncPool, faults, closing
while running, the GIL check).

Helpers are shared with the asyncio suite (``tests/python/aio``:
``aiohelpers``, ``lww``).  Fault tests start private embedded servers
(``aerospike_server_factory``) and skip against a real cluster
(``CSPIKE_TEST_HOSTS``); the rest run against it too.  Every test uses its
own set, so tests can run in parallel (pytest-xdist).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
AIO = os.path.join(os.path.dirname(HERE), "aio")
for p in (HERE, AIO):
    if p not in sys.path:
        sys.path.insert(0, p)

from aiohelpers import NAMESPACE, RUN_ID  # noqa: E402

_counter = itertools.count()


def pytest_configure(config):
    config.addinivalue_line("markers", "faults: uses fault injection of the embedded server")
    config.addinivalue_line("markers", "fake_server: runs against an in-test fake node "
                                       "(works with CSPIKE_TEST_HOSTS too)")


@pytest.fixture(scope="session")
def ns() -> str:
    return NAMESPACE


@pytest.fixture
def set_name(request) -> str:
    """A set name unique to this test, worker and run (<= 63 bytes)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "m")
    base = re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:24]
    h = hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:6]
    return f"cc{RUN_ID}{worker}_{base}_{h}{next(_counter)}"[:63]
