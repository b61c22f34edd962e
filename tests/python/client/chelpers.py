"""Helpers shared by the client integration tests (not fixtures)."""

from __future__ import annotations

import itertools
import os
import time
import uuid

import pytest

REAL_CLUSTER = bool(os.environ.get("CSPIKE_TEST_HOSTS", "").strip())
NAMESPACE = os.environ.get("CSPIKE_TEST_NAMESPACE", "test")
RUN_ID = uuid.uuid4().hex[:6]

_behaviors = itertools.count()


def behavior(**changes):
    """A Behavior derived from DEFAULT with these settings (unique name)."""
    from cspike import Behavior
    return Behavior.DEFAULT.derive_with_changes(f"t-{RUN_ID}-{os.getpid()}-{next(_behaviors)}", **changes)


def ttl_or_skip(call):
    """Run a TTL-writing call; a namespace without nsup-period (a real
    cluster configured so) refuses TTLs with FORBIDDEN (22): skip then."""
    from cspike import ForbiddenError
    try:
        return call()
    except ForbiddenError:
        pytest.skip("the namespace refuses record TTLs (nsup-period 0)")


def edition(client) -> str:
    try:
        return client.info("edition")
    except Exception:  # pragma: no cover
        return ""


def wait_for(pred, timeout=10.0, interval=0.02, what="condition"):
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def assert_default_expiry(rec, default_ttl: int) -> None:
    """The record carries the namespace default expiry."""
    if default_ttl == 0:
        assert rec.ttl == -1 and rec.void_time is None
    else:
        assert default_ttl - 5 <= rec.ttl <= default_ttl, (rec.ttl, default_ttl)
