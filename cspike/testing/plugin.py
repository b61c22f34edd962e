"""pytest plugin of cspike (entry point ``pytest11: cspike``).

Fixtures:

* ``aerospike_server`` (session): a one-node embedded server (``Server``).
* ``aerospike_cluster`` (session): a three-node embedded cluster.
* ``aerospike_seeds`` (session): seed string of ``aerospike_server``, or
  ``$CSPIKE_TEST_HOSTS`` when set (then no embedded server starts).
* ``aerospike_cluster_seeds`` (session): seed string of the 3-node embedded
  cluster, or ``$CSPIKE_TEST_HOSTS``.
* ``aerospike_server_factory`` (function): ``factory(nodes=1, **kw)`` starts
  a private server for tests that break servers; all are stopped at the end
  of the test.

Fixtures that need fault injection skip with "fault injection needs the
embedded server" when ``$CSPIKE_TEST_HOSTS`` points at a real cluster.
Servers listen on ephemeral ports, so pytest-xdist workers never collide.
"""

from __future__ import annotations

import os
from typing import Callable, Iterator, List

import pytest

from cspike.testing import Server

FAULTS_SKIP = "fault injection needs the embedded server"


def _external_hosts() -> str:
    return os.environ.get("CSPIKE_TEST_HOSTS", "").strip()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "embedded: needs the embedded server (fault injection)")


@pytest.fixture(scope="session")
def aerospike_server() -> Iterator[Server]:
    """One embedded node for the whole session (skips with real hosts)."""
    if _external_hosts():
        pytest.skip(FAULTS_SKIP)
    srv = Server(nodes=1)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def aerospike_cluster() -> Iterator[Server]:
    """A three-node embedded cluster for the session (skips with real hosts)."""
    if _external_hosts():
        pytest.skip(FAULTS_SKIP)
    srv = Server(nodes=3)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def aerospike_seeds(request: pytest.FixtureRequest) -> str:
    """Seeds of the test target: $CSPIKE_TEST_HOSTS or the embedded node."""
    hosts = _external_hosts()
    if hosts:
        return hosts
    return request.getfixturevalue("aerospike_server").seeds


@pytest.fixture(scope="session")
def aerospike_cluster_seeds(request: pytest.FixtureRequest) -> str:
    """Seeds of a cluster: $CSPIKE_TEST_HOSTS or the embedded 3 nodes."""
    hosts = _external_hosts()
    if hosts:
        return hosts
    return request.getfixturevalue("aerospike_cluster").seeds


@pytest.fixture
def aerospike_server_factory() -> Iterator[Callable[..., Server]]:
    """Start private servers (any Server argument); stopped after the test."""
    if _external_hosts():
        pytest.skip(FAULTS_SKIP)
    started: List[Server] = []

    def factory(nodes: int = 1, **kw: object) -> Server:
        srv = Server(nodes=nodes, **kw)
        srv.start()
        started.append(srv)
        return srv

    try:
        yield factory
    finally:
        for srv in started:
            srv.stop()
