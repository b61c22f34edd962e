"""Golden vectors for info and cluster tending.

* info-single.json: each captured info request is what ``client.info`` /
  ``client.info_raw`` sends for the same command, and the captured answer
  comes back as the same value.
* info-cluster3.json: three fake nodes answer the tend with the real 3-node
  cluster's info bundles (peer ports rewritten to the fake nodes' ports).
  The client must find all nodes from one seed, build the partition map the
  real ``replicas`` bitmaps describe (checked for all 4096 partitions of both
  namespaces, master and prole), send keys to their master, keep reading
  through a replica when a master dies, and adopt the map published after
  migrations.
"""

from __future__ import annotations

import re
import time

import pytest

import capwire as W
from fakenode import FakeNode

pytestmark = pytest.mark.timeout(60)

from test_golden import NOT_EXPRESSIBLE  # noqa: E402 - the one list

INFO_NOT_EXPRESSIBLE = {n for f, n in NOT_EXPRESSIBLE if f == "info-single"}


def _info_cases():
    """(position, name): some names occur twice (sindex-list before/after)."""
    return [pytest.param(i, id=f"{i}-{c['name']}") for i, c in enumerate(W.load("info-single"))
            if c["name"] not in INFO_NOT_EXPRESSIBLE]


@pytest.mark.parametrize("index", _info_cases())
def test_info_single(g, index):
    c = W.load("info-single")[index]
    req = W.request_bytes(c)
    (resp,) = W.response_bytes(c)
    g.node.info_exact[req] = resp
    text = req[8:].decode()
    expected = W.info_pairs(resp[8:].decode())
    if text.count("\n") == 1 and text.endswith("\n"):
        cmd = text[:-1]
        assert g.client.info(cmd) == expected[cmd]
    else:
        assert g.client.info_raw(text) == expected
    assert req in g.node.info_requests, "the request is byte-identical to the capture"


def test_info_not_expressible_cases_exist():
    names = {c["name"] for c in W.load("info-single")}
    assert set(INFO_NOT_EXPRESSIBLE) <= names


# --------------------------------------------------------------------------- 3 nodes

def _bundle(case_name: str) -> dict[str, str]:
    c = W.case("info-cluster3", case_name)
    return W.info_pairs(c["response"][0]["text"])


def _rewrite_peers(info: dict[str, str], ports: dict[int, int]) -> dict[str, str]:
    """Point the captured peer addresses (ports 3000/3010/3020, ':3000'
    omitted) at the fake nodes."""
    # The bundles do not include `build`; the cluster ran the same 8.1.2.0.
    out = {"build": W.info_pairs(W.case("info-single", "info build")["response"][0]["text"])["build"]}
    out.update(info)
    v = info["peers-clear-std"]
    v = re.sub(r"\[127\.0\.0\.1\]", "[127.0.0.1:3000]", v)
    v = re.sub(r"127\.0\.0\.1:(30[012]0)", lambda m: f"127.0.0.1:{ports[int(m.group(1))]}", v)
    out["peers-clear-std"] = v
    return out


INITIAL = {3000: "3-node: info bundle from node on port 3000",
           3010: "3-node: info bundle from node on port 3010",
           3020: "3-node: info bundle from node on port 3020"}
REFORMED = {3000: "after stopping node 3020 (cluster reformed, 2.0 s after SIGTERM): "
                  "info bundle from node on port 3000",
            3010: "after stopping node 3020 (cluster reformed, 2.0 s after SIGTERM): "
                  "info bundle from node on port 3010"}
MIGRATED = {3000: "after stopping node 3020 (migrations finished): info bundle from node on port 3000",
            3010: "after stopping node 3020 (migrations finished): info bundle from node on port 3010"}


def _expected_routes(bundles: dict[int, dict[str, str]]) -> dict:
    """{(ns, pid, column): node name} from the captured replicas bitmaps."""
    routes = {}
    for info in bundles.values():
        for ns, cols in W.replicas_masters(info["replicas"]).items():
            for col, pids in enumerate(cols):
                for pid in pids:
                    routes[(ns, pid, col)] = info["node"]
    return routes


def _wait(pred, timeout=10.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def cluster3():
    nodes = {p: FakeNode({}) for p in INITIAL}
    ports = {p: n.port for p, n in nodes.items()}
    for p, n in nodes.items():
        n.info = _rewrite_peers(_bundle(INITIAL[p]), ports)
    try:
        yield nodes, ports
    finally:
        for n in nodes.values():
            n.stop()


def _check_routes(client, bundles, namespaces=("test", "bar")):
    expected = _expected_routes(bundles)
    cl = client._cluster
    wrong = []
    for ns in namespaces:
        for pid in range(4096):
            want = expected.get((ns, pid, 0))
            got = cl.route(ns, pid, 0)
            if got != want:
                wrong.append((ns, pid, want, got))
    assert not wrong, f"{len(wrong)} partitions routed wrongly, e.g. {wrong[:5]}"
    # Sequence order: replica index 1 is the prole column.
    for pid in range(0, 4096, 7):
        want = expected.get(("test", pid, 1))
        assert cl.route("test", pid, 1) == want, pid


def test_cluster3_tend_routing_and_node_loss(cluster3):
    from cspike import Behavior, Key, SyncClient
    nodes, ports = cluster3
    b1, b2, b3 = nodes[3000], nodes[3010], nodes[3020]
    client = SyncClient(b1.seed, tend_interval=0.05, connect_timeout=1.0)
    client.connect()
    try:
        # (a) one seed -> all three nodes, and the real cluster's map.
        assert sorted(n for n, _h, _p in client.nodes()) == ["B1", "B2", "B3"]
        assert {(h, p) for _n, h, p in client.nodes()} == {("127.0.0.1", v) for v in ports.values()}
        _check_routes(client, {p: n.info for p, n in nodes.items()})

        sessions = {
            sk: client.create_session(Behavior.DEFAULT.derive_with_changes(
                f"golden-cluster3-{sk}", total_timeout=1.0, socket_timeout=1.0,
                max_retries=1, send_key=sk))
            for sk in (False, True)}
        s = sessions[False]

        # (b) keys go to their master (B2 for cl-3 and cl-1), byte-identical requests.
        for case_name in ("put to non-owner node", "get from master node",
                          "put to replica node", "get from replica node"):
            c = W.case("info-cluster3", case_name)
            assert c["key"]["master_port"] == 3010
            k = Key("test", c["key"]["set"], c["key"]["key"])
            req = W.Msg.from_request(W.request_bytes(c))
            b2.push(W.response_bytes(c)[0])
            if req.info2 & W.INFO2_WRITE:
                sk = sessions[req.field(W.FIELD_KEY) is not None]
                assert sk.put(k, {o.name.decode(): W.request_value(o) for o in req.ops}) is None
            else:
                resp = W.single_response(c)
                rec = s.get(k)
                assert rec.bins == {o.name.decode(): W.py_value(o.particle, o.value)
                                    for o in resp.ops}
                assert rec.generation == resp.generation
            assert b2.requests[-1] == W.request_bytes(c), case_name
        assert b1.requests == [] and b3.requests == []

        # (c) B3 dies; the survivors answer as the real ones did 2 s later
        #     (peers still list B3, partition-generation unchanged).  A read
        #     of a key B3 mastered moves on to its replica, B1.
        c = W.case("info-cluster3", "get key of the stopped master from its new master")
        k = Key("test", c["key"]["set"], c["key"]["key"])
        assert client._cluster.route("test", k.partition_id, 0) == "B3"
        assert client._cluster.route("test", k.partition_id, 1) == "B1"
        b3.stop()
        for p in REFORMED:
            nodes[p].info = _rewrite_peers(_bundle(REFORMED[p]), ports)
        b1.push(W.response_bytes(c)[0])
        resp = W.single_response(c)
        rec = s.get(k)
        assert rec.bins == {o.name.decode(): W.py_value(o.particle, o.value) for o in resp.ops}
        assert b1.requests[-1] == W.request_bytes(c)

        # (d) migrations finished: new generations, B3 gone from peers.
        for p in MIGRATED:
            nodes[p].info = _rewrite_peers(_bundle(MIGRATED[p]), ports)
        _wait(lambda: sorted(n for n, _h, _p in client.nodes()) == ["B1", "B2"],
              what="B3 removed from the client's node list")
        _wait(lambda: client._cluster.route("test", k.partition_id, 0) == "B1",
              what="partition 287 moved to B1")
        _check_routes(client, {p: nodes[p].info for p in MIGRATED})
        b1.push(W.response_bytes(c)[0])
        rec = s.get(k)
        assert b1.requests[-1] == W.request_bytes(c)
        assert rec.generation == W.single_response(c).generation
    finally:
        client.close()
