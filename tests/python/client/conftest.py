"""Fixtures of the client integration tests.

Targets come from the ``cspike.testing.plugin`` fixtures: the embedded
server (one node / three nodes) by default, or the real cluster named by
``CSPIKE_TEST_HOSTS`` (then fault-injection tests skip).  Nothing here
assumes node names or ports.  Every test writes to its own set
(``set_name``), so tests can run in parallel (pytest-xdist) and against a
shared real cluster.

Environment:
  CSPIKE_TEST_HOSTS      host:port[,...] of a real cluster
  CSPIKE_TEST_NAMESPACE  namespace to use (default "test")
"""

from __future__ import annotations

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(os.path.dirname(HERE), "golden")
for p in (HERE, GOLDEN):
    if p not in sys.path:
        sys.path.insert(0, p)

from chelpers import REAL_CLUSTER  # noqa: E402

def pytest_collection_modifyitems(config, items):
    # Fault-injection tests cannot run against a real cluster: say so once,
    # clearly, instead of failing.
    if REAL_CLUSTER:
        skip = pytest.mark.skip(reason="fault injection needs the embedded server")
        for item in items:
            if "faults" in item.keywords and "fake_server" not in item.keywords:
                item.add_marker(skip)


def pytest_configure(config):
    config.addinivalue_line("markers", "fake_server: runs against an in-test fake node "
                                       "(works with CSPIKE_TEST_HOSTS too)")



def _client(seeds: str):
    from cspike import SyncClient
    c = SyncClient(seeds, tend_interval=0.25, connect_timeout=2.0)
    c.connect()
    return c


@pytest.fixture(scope="session")
def client(aerospike_seeds):
    """A SyncClient on one node (or CSPIKE_TEST_HOSTS)."""
    c = _client(aerospike_seeds)
    yield c
    c.close()


@pytest.fixture(scope="session")
def cluster_client(aerospike_cluster_seeds):
    """A SyncClient on the 3-node cluster (or CSPIKE_TEST_HOSTS)."""
    c = _client(aerospike_cluster_seeds)
    yield c
    c.close()


@pytest.fixture(params=["node1", "nodes3"])
def any_client(request):
    """The single-node client, then the 3-node one: core behaviour is
    checked on both."""
    name = "client" if request.param == "node1" else "cluster_client"
    return request.getfixturevalue(name)


@pytest.fixture
def session(any_client):
    return any_client.create_session()


@pytest.fixture
def key(ns, set_name):
    """key("x") -> Key in this test's set."""
    from cspike import Key

    def make(value="k"):
        return Key(ns, set_name, value)
    return make


@pytest.fixture
def default_ttl(any_client, ns) -> int:
    """The namespace's default-ttl (0 = records never expire by default)."""
    from cspike._info import parse_kv
    return int(parse_kv(any_client.info(f"namespace/{ns}")).get("default-ttl", "0"))
