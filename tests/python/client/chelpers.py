"""Helpers shared by the client integration tests (not fixtures)."""

from __future__ import annotations

import pytest

from suite import NAMESPACE, REAL_CLUSTER, RUN_ID, behavior, wait_for  # noqa: F401 (re-exported)


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


def assert_default_expiry(rec, default_ttl: int) -> None:
    """The record carries the namespace default expiry."""
    if default_ttl == 0:
        assert rec.ttl == -1 and rec.void_time is None
    else:
        assert default_ttl - 5 <= rec.ttl <= default_ttl, (rec.ttl, default_ttl)
