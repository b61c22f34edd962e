"""Fixtures of the golden-vector tests: a fake node that answers the tend
with the real single node's info values (info-single.json) and data commands
with captured bytes, and a cspike client connected to it."""

from __future__ import annotations

import itertools
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import capwire  # noqa: E402
from fakenode import FakeNode, default_info  # noqa: E402

_names = itertools.count()


def captured_single_node_info() -> dict[str, str]:
    """{command: value} of every single-command case of info-single.json."""
    info = default_info("A1")
    for c in capwire.load("info-single"):
        req = c["request"][0].get("text") if c.get("request") else None
        rsp = [m.get("text") for m in c.get("response") or []]
        if not req or not req.endswith("\n") or req.count("\n") != 1 or len(rsp) != 1:
            continue
        pairs = capwire.info_pairs(rsp[0])
        cmd = req[:-1]
        if cmd in pairs:
            info[cmd] = pairs[cmd]  # the captured value wins (later cases too)
    return info


class Golden:
    """A cspike client wired to one fake node, plus per-policy sessions."""

    def __init__(self, node: FakeNode, client) -> None:
        self.node = node
        self.client = client
        self._sessions: dict = {}

    def session(self, **changes):
        """A SyncSession whose policy gives transaction_ttl 1000 (as in the
        captures), no retries, and the given Settings changes."""
        key = tuple(sorted(changes.items()))
        s = self._sessions.get(key)
        if s is None:
            from cspike import Behavior
            base = dict(total_timeout=1.0, socket_timeout=1.0, max_retries=0,
                        send_key=False)
            base.update(changes)
            b = Behavior.DEFAULT.derive_with_changes(f"golden-{next(_names)}", **base)
            s = self._sessions[key] = self.client.create_session(b)
        return s


@pytest.fixture(scope="module")
def golden():
    from cspike import SyncClient
    node = FakeNode(captured_single_node_info())
    client = SyncClient(node.seed, tend_interval=1.0, connect_timeout=2.0)
    client.connect()
    try:
        yield Golden(node, client)
    finally:
        client.close()
        node.stop()


@pytest.fixture
def g(golden):
    golden.node.reset()
    yield golden
    golden.node.reset()
