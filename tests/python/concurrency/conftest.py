"""Fixtures of the concurrency suite (threads, AsyncPool, faults, closing
while running, the GIL check).

Helpers are shared with the asyncio suite (``tests/python/aio``:
``aiohelpers``, ``lww``).  Fault tests start private embedded servers
(``aerospike_server_factory``) and skip against a real cluster
(``CSPIKE_TEST_HOSTS``); the rest run against it too.  Every test uses its
own set (``set_name``, from ``tests/python/conftest.py``), so tests can
run in parallel (pytest-xdist).
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
AIO = os.path.join(os.path.dirname(HERE), "aio")
for p in (HERE, AIO):
    if p not in sys.path:
        sys.path.insert(0, p)


def pytest_configure(config):
    config.addinivalue_line("markers", "faults: uses fault injection of the embedded server")
    config.addinivalue_line("markers", "fake_server: runs against an in-test fake node "
                                       "(works with CSPIKE_TEST_HOSTS too)")

