"""Helpers shared by the Python suites (client, aio, concurrency): the
target namespace, a run id, unique behaviors and bounded waits.  The
``ns`` and ``set_name`` fixtures built on them are in ``conftest.py``."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
import uuid
from typing import Any, Callable

#: A real cluster given by CSPIKE_TEST_HOSTS (fault injection then skips).
REAL_CLUSTER = bool(os.environ.get("CSPIKE_TEST_HOSTS", "").strip())
NAMESPACE = os.environ.get("CSPIKE_TEST_NAMESPACE", "test")
#: Tells this run's sets and behaviors from other runs on a shared cluster.
RUN_ID = uuid.uuid4().hex[:6]

_behaviors = itertools.count()


def behavior(prefix: str = "t", **changes: Any):
    """A Behavior derived from DEFAULT with these settings (unique name)."""
    from cspike import Behavior
    name = f"{prefix}-{RUN_ID}-{os.getpid()}-{next(_behaviors)}"
    return Behavior.DEFAULT.derive_with_changes(name, **changes)


def _expired(end: float, timeout: float, what: str) -> bool:
    if time.monotonic() >= end:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")
    return False


def wait_for(pred: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02,
             what: str = "condition") -> Any:
    """Poll ``pred`` until it is truthy (returned) or ``timeout`` passes."""
    end = time.monotonic() + timeout
    while not (v := pred()) and not _expired(end, timeout, what):
        time.sleep(interval)
    return v


async def await_for(pred: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02,
                    what: str = "condition") -> Any:
    """``wait_for`` that sleeps on the running event loop."""
    end = time.monotonic() + timeout
    while not (v := pred()) and not _expired(end, timeout, what):
        await asyncio.sleep(interval)
    return v
