"""Conformance replay of the Aerospike CE 8.1.2.0 captures (see
conformance.py for the rules and the pending / difference lists)."""
import time

import pytest

import conformance

SINGLE = {"node_ids": ["A1"], "cluster_name": "asbuild",
          "sindex_populate_ms": conformance.SINDEX_POPULATE_MS}


def _check(r):
    print(f"{r.fname}: {r.compared} cases compared, {len(r.skipped)} not compared")
    for key, why in r.skipped:
        print(f"  {key[1]}: {why}")
    assert not r.mismatches, "\n" + r.report()


@pytest.mark.parametrize("fname,timeline", [
    ("records.json", True),
    ("errors.json", False),
    ("operate.json", False),
    ("batch.json", False),
    ("info-single.json", False),
    ("expressions.json", False),
])
def test_single_node(Server, fname, timeline):
    srv = Server(**SINGLE)
    srv.start()
    try:
        r = conformance.Replay(fname, [srv.nodes[0][1]], [3000])
        r.replay(timeline=timeline)
    finally:
        srv.stop()
    _check(r)


def test_scan_query(Server):
    """scan-query.json was captured on the server the other files had just
    filled: replay them first on the same server (not compared here), then
    the scans against that state."""
    srv = Server(**SINGLE)
    srv.start()
    try:
        port = srv.nodes[0][1]
        for fname, timeline in (("records.json", True), ("errors.json", False),
                                ("operate.json", False), ("batch.json", False),
                                ("expressions.json", False)):
            conformance.Replay(fname, [port], [3000]).replay(timeline=timeline)
        r = conformance.Replay("scan-query.json", [port], [3000])
        r.replay()
    finally:
        srv.stop()
    _check(r)


def test_cluster3(Server):
    srv = Server(nodes=3, node_ids=["B1", "B2", "B3"], cluster_name="asbuild-cluster",
                 rebalance_delay_ms=800, migrate_delay_ms=800)
    srv.start()
    try:
        r = conformance.Replay("info-cluster3.json", [p for _, p in srv.nodes],
                               [3000, 3010, 3020])
        names = [c["name"] for c in r.cases]
        first_stop = next(i for i, n in enumerate(names) if "immediately" in n)
        reformed = next(i for i, n in enumerate(names) if "reformed" in n)
        finished = next(i for i, n in enumerate(names) if "migrations finished" in n)
        for i in range(first_stop):
            r.run_case(i)
        srv.kill(2)  # B3, port 3020 in the capture
        t_kill = time.monotonic()
        for i in range(first_stop, reformed):
            r.run_case(i)
        time.sleep(max(0.0, t_kill + 1.0 - time.monotonic()))
        for i in range(reformed, finished):
            r.run_case(i)
        time.sleep(max(0.0, t_kill + 2.0 - time.monotonic()))
        for i in range(finished, len(r.cases)):
            r.run_case(i)
    finally:
        srv.stop()
    _check(r)
