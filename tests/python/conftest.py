"""Fixtures shared by every Python suite.  Loading this file puts
``tests/python`` on ``sys.path``, so the suites import ``suite``."""

from __future__ import annotations

import hashlib
import itertools
import os
import re

import pytest

from suite import NAMESPACE, RUN_ID

_counter = itertools.count()


@pytest.fixture(scope="session")
def ns() -> str:
    return NAMESPACE


@pytest.fixture
def set_name(request) -> str:
    """A set name unique to this test, suite, worker and run (<= 63 bytes)."""
    suite = request.node.path.parent.name[:1]
    worker = os.environ.get("PYTEST_XDIST_WORKER", "m")
    base = re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:24]
    h = hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:6]
    return f"c{suite}{RUN_ID}{worker}_{base}_{h}{next(_counter)}"[:63]
