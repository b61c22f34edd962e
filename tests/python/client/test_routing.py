"""Keys go to their partition's master; retries walk the replica sequence
(or stay on the master with Replica.MASTER); a node removed mid-run does
not stop the workload, and every acknowledged write survives."""

from __future__ import annotations

import random
import threading
import time

import pytest

import capwire as W
from chelpers import behavior, wait_for

pytestmark = pytest.mark.timeout(120)


def _cluster_map(client, ns):
    """{pid: [node per replica column]} from every node's own `replicas`."""
    cols: dict[int, dict[int, str]] = {}
    for name, _h, _p in client.nodes():
        value = client.info("replicas", node=name)
        for col, pids in enumerate(W.replicas_masters(value).get(ns, [])):
            for pid in pids:
                cols.setdefault(pid, {})[col] = name
    return cols


def _check_map(client, ns):
    cols = _cluster_map(client, ns)
    cl = client._cluster
    wrong = [(pid, c.get(0), cl.route(ns, pid, 0)) for pid, c in cols.items()
             if cl.route(ns, pid, 0) != c.get(0)]
    assert len(cols) == 4096, "every partition has a master"
    assert not wrong, f"{len(wrong)} partitions routed away from their master: {wrong[:5]}"
    n_replicas = max(len(c) for c in cols.values())
    if n_replicas > 1:
        for pid in range(0, 4096, 13):
            assert cl.route(ns, pid, 1) == cols[pid].get(1), pid


@pytest.mark.parametrize("which", ["client", "cluster_client"])
def test_partition_map_matches_the_nodes(request, ns, which):
    client = request.getfixturevalue(which)
    wait_for(lambda: _stable(client, ns), timeout=10, what="a stable partition map")
    _check_map(client, ns)


def _stable(client, ns):
    try:
        cols = _cluster_map(client, ns)
        return len(cols) == 4096 and all(
            client._cluster.route(ns, pid, 0) == c.get(0) for pid, c in cols.items())
    except Exception:
        return False


def test_info_commands(cluster_client):
    names = sorted(n for n, _h, _p in cluster_client.nodes())
    assert names
    build = cluster_client.info("build")
    assert build.split(".")[0].isdigit()
    per_node = cluster_client.info_all("node")
    assert sorted(per_node) == names
    assert all(per_node[n] == n for n in names)
    raw = cluster_client.info_raw("node\nbuild\n", node=names[0])
    assert raw == {"node": names[0], "build": cluster_client.info("build", node=names[0])}


@pytest.mark.faults
def test_key_goes_to_its_master(aerospike_cluster, cluster_client, key):
    """fail_next on one node answers that node's next data command with 22:
    only the master of the key may see the command."""
    from cspike import ForbiddenError
    srv = aerospike_cluster
    s = cluster_client.create_session(behavior(max_retries=0))
    names = [n for n, _p in srv.nodes]
    for i in range(12):
        k = key(f"route-{i}")
        master = cluster_client._cluster.route(k.namespace, k.partition_id, 0)
        assert master in names
        others = [n for n in names if n != master]
        srv.fail_next(master, 22)
        with pytest.raises(ForbiddenError):
            s.put(k, {"i": i})
        srv.fail_next(master, 22)
        with pytest.raises(ForbiddenError):
            s.get(k)
        srv.fail_next(others[i % len(others)], 22)
        s.put(k, {"i": i})
        assert s.get(k).bins == {"i": i}
        srv.clear_faults(others[i % len(others)])


@pytest.mark.faults
def test_read_retry_walks_the_replicas(aerospike_server_factory, key):
    """SEQUENCE: a retryable error on the master sends the retry to the
    prole; MASTER: the retry goes to the master again."""
    from cspike import PartitionUnavailableError, SyncClient
    srv = aerospike_server_factory(nodes=3)
    c = SyncClient(srv.seeds, tend_interval=0.1)
    c.connect()
    try:
        k = key("retry")
        c.create_session().put(k, {"a": 1})
        master = c._cluster.route(k.namespace, k.partition_id, 0)
        seq = c.create_session(behavior(max_retries=1, replica="SEQUENCE"))
        mst = c.create_session(behavior(max_retries=1, replica="MASTER"))
        srv.fail_next(master, 11, count=2)
        assert seq.get(k).bins == {"a": 1}  # 2nd try on the prole
        srv.clear_faults(master)
        srv.fail_next(master, 11, count=2)
        with pytest.raises(PartitionUnavailableError):
            mst.get(k)  # both tries on the master
        srv.clear_faults(master)
        # Writes: the retry after a partition-unavailable answer also moves on
        # (the prole proxies or the map catches up) and the write lands once.
        w = c.create_session(behavior(max_retries=2))
        srv.fail_next(master, 11, count=1)
        w.put(k, {"a": 2})
        assert seq.get(k).bins == {"a": 2}
    finally:
        c.close()


@pytest.mark.faults
def test_migrated_partition_is_followed(aerospike_server_factory, key):
    """After partitions move, the old master answers 11; the client retries
    elsewhere and its map catches up with the new owner."""
    from cspike import SyncClient
    srv = aerospike_server_factory(nodes=3)
    c = SyncClient(srv.seeds, tend_interval=0.05)
    c.connect()
    try:
        s = c.create_session(behavior(max_retries=3))
        k = key("moved")
        s.put(k, {"a": 1})
        old = c._cluster.route(k.namespace, k.partition_id, 0)
        new = next(n for n, _p in srv.nodes if n != old)
        srv.migrate(k.partition_id, new)
        assert s.get(k).bins == {"a": 1}
        wait_for(lambda: c._cluster.route(k.namespace, k.partition_id, 0) == new,
                 timeout=5, what="the map to follow the migration")
        s.put(k, {"a": 2})
        assert s.get(k).bins == {"a": 2}
    finally:
        c.close()


@pytest.mark.faults
@pytest.mark.timeout(180)
def test_node_removed_mid_run(aerospike_server_factory, ns, set_name):
    """4 threads run mixed reads/writes on a 3-node cluster (RF 2); a node is
    killed mid-run.  Ops keep working: errors only in a short window after
    the kill, none once the client has dropped the node, and every
    acknowledged write reads back afterwards.  The node then returns."""
    from cspike import AerospikeError, Key, SyncClient
    srv = aerospike_server_factory(nodes=3)
    c = SyncClient(srv.seeds, tend_interval=0.05)
    c.connect()
    victim = srv.nodes[1][0]
    stop = threading.Event()
    killed_at = [None]
    acked: dict = {}
    errors: list = []
    lock = threading.Lock()
    s = c.create_session(behavior(total_timeout=2.0, socket_timeout=0.5, max_retries=3,
                                  retry_delay=0.02))

    def worker(t):
        rnd = random.Random(t)
        i = 0
        while not stop.is_set():
            k = Key(ns, set_name, f"{t}-{rnd.randrange(300)}")
            try:
                if rnd.random() < 0.5:
                    s.put(k, {"v": i, "t": t})
                    with lock:
                        acked[k.value] = i
                else:
                    try:
                        s.get(k)
                    except AerospikeError as e:
                        if e.result_code != 2:
                            raise
            except AerospikeError as e:
                with lock:
                    errors.append((time.monotonic(), e))
            i += 1

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    try:
        time.sleep(1.0)
        killed_at[0] = time.monotonic()
        srv.kill(victim)
        wait_for(lambda: victim not in [n for n, _h, _p in c.nodes()], timeout=10,
                 what="the client to drop the killed node")
        dropped_at = time.monotonic()
        time.sleep(2.0)
    finally:
        stop.set()
        for th in threads:
            th.join(30)
    print(f"\nnode removal: {len(acked)} keys acked, {len(errors)} errors "
          f"({sorted({type(e).__name__ for _t, e in errors})}), "
          f"node dropped {dropped_at - killed_at[0]:.2f} s after the kill")
    try:
        assert not any(th.is_alive() for th in threads), "a worker hung"
        # Distinguish a server crash from a client failure.
        assert srv.running, ("the embedded server process died during the kill "
                             f"(exit status {srv._proc.poll() if srv._proc else '?'})")
        late = [e for t, e in errors if t > dropped_at + 0.5]
        assert not late, f"{len(late)} errors after the node was dropped: {late[:3]}"
        early = [e for t, e in errors if t < killed_at[0]]
        assert not early, f"errors before the kill: {early[:3]}"
        # Every acknowledged write is there (the last acked value per key;
        # an in-doubt write may have landed later, so accept >=).
        rd = c.create_session(behavior(max_retries=3))
        for kv, v in acked.items():
            rec = rd.get(Key(ns, set_name, kv))
            assert rec.bins["v"] >= v, kv
        # The node comes back and the client uses it again.
        srv.restart(victim)
        wait_for(lambda: victim in [n for n, _h, _p in c.nodes()], timeout=15,
                 what="the client to re-add the restarted node")
        for kv, v in list(acked.items())[:200]:
            assert rd.get(Key(ns, set_name, kv)).bins["v"] >= v
    finally:
        c.close()
