"""Concurrency that cannot lose a write: 32 threads share one SyncClient and
one session, mixing get/put/delete/operate/touch on overlapping keys, while
the embedded cluster kills and restarts nodes and moves partitions.  Every
acknowledged write is read back (last writer wins, checked with per-thread
sequence numbers), no thread deadlocks (the test ends within a bound), the
process does not crash.  Closing the client while threads are mid-command
gives those threads ClientClosedError.  Runs on regular CPython and on
free-threaded 3.13t (PYTHON_GIL unset or 0)."""

from __future__ import annotations

import random
import sys
import threading
import time
import traceback

import pytest

from aiohelpers import CLIENT_KW, behavior, no_leaks
from lww import WriteLog

N_THREADS = 32


def _stacks() -> str:
    out = []
    for tid, frame in sys._current_frames().items():
        out.append(f"--- thread {tid}\n" + "".join(traceback.format_stack(frame)))
    return "\n".join(out)


def _join_all(threads, deadline, what):
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    alive = [t.name for t in threads if t.is_alive()]
    assert not alive, f"{what}: {len(alive)} thread(s) still running (deadlock?)\n{_stacks()}"


def _worker(s, keys, writer, log, stop_at, rng, counts, failures):
    from cspike import AerospikeError, Operation as Op, RecordNotFoundError
    seq = 0
    n = 0
    try:
        while time.monotonic() < stop_at:
            kid = rng.randrange(len(keys))
            k = keys[kid]
            r = rng.random()
            try:
                if r < 0.30:
                    seq += 1
                    with log.write(kid, (writer, seq)):
                        s.put(k, {"w": writer, "s": seq, "k": kid})
                elif r < 0.45:
                    seq += 1
                    with log.write(kid, (writer, seq)) as w:
                        rec = s.operate(k, [Op.put("w", writer), Op.put("s", seq), Op.put("k", kid),
                                            Op.add("n", 1), Op.get()])
                    if w.outcome == "ok":
                        assert (rec.bins["w"], rec.bins["s"], rec.bins["k"]) == (writer, seq, kid), \
                            f"operate read back {rec.bins}, not its own write"
                elif r < 0.49:
                    # a batch write of 3 distinct keys: each row is its own write
                    kids = rng.sample(range(len(keys)), 3)
                    ws, b = [], s.batch()
                    for kk in kids:
                        seq += 1
                        ws.append(log.begin(kk, (writer, seq)))
                        b = b.upsert(keys[kk]).put({"w": writer, "s": seq, "k": kk})
                    try:
                        rows = b.execute()
                    except AerospikeError as e:
                        for w in ws:
                            log.end(w, e)
                    else:
                        assert [row.key.value for row in rows] == [keys[kk].value for kk in kids]
                        for w, row in zip(ws, rows):
                            log.end(w, None if row.is_ok else row.exception)
                elif r < 0.53:
                    kids = rng.sample(range(len(keys)), 4)
                    rows = s.query([keys[kk] for kk in kids]).respond_all_keys().execute().collect()
                    for kk, row in zip(kids, rows):
                        if row.is_ok:
                            assert row.record.bins["k"] == kk
                            log.read(kk, (row.record.bins["w"], row.record.bins["s"]))
                        elif row.result_code == 2:
                            log.read(kk, None)
                        else:
                            log.error(row.exception)
                elif r < 0.57:
                    with log.write(kid, None):
                        s.delete(k)
                elif r < 0.62:
                    try:
                        s.touch(k)
                    except RecordNotFoundError:
                        pass
                else:
                    try:
                        rec = s.get(k)
                    except RecordNotFoundError:
                        log.read(kid, None)
                    else:
                        assert rec.bins["k"] == kid, "a get returned another key's record"
                        log.read(kid, (rec.bins["w"], rec.bins["s"]))
            except AerospikeError as e:
                log.error(e)
            n += 1
    except BaseException as e:  # noqa: BLE001 - reported by the test
        failures.append((writer, e, traceback.format_exc()))
    finally:
        with counts["lock"]:
            counts["ops"] += n


def _final_state(s, keys):
    from cspike import AerospikeError, RecordNotFoundError
    final = {}
    for kid, k in enumerate(keys):
        end = time.monotonic() + 10
        while True:
            try:
                rec = s.get(k)
                final[kid] = (rec.bins["w"], rec.bins["s"])
                break
            except RecordNotFoundError:
                final[kid] = None
                break
            except AerospikeError:
                assert time.monotonic() < end, f"key {kid} unreadable after the run"
                time.sleep(0.05)
    return final


def _run_threads(seeds, ns, set_name, duration, faults=None, n_keys=64):
    # Short timeouts while nodes fail (commands give up and move on); long
    # ones otherwise, so a loaded machine does not turn into errors.
    tmo = dict(total_timeout=1.0, socket_timeout=0.3) if faults else dict(total_timeout=5, socket_timeout=2)
    from cspike import Key, SyncClient
    keys = [Key(ns, set_name, f"k{i}") for i in range(n_keys)]
    log = WriteLog()
    counts = {"ops": 0, "lock": threading.Lock()}
    failures = []
    c = SyncClient(seeds, **CLIENT_KW).connect()
    try:
        s = c.create_session(behavior(max_retries=2, retry_delay=0.02, **tmo))
        t0 = time.monotonic()
        stop_at = t0 + duration
        rng = random.Random(42)
        threads = [threading.Thread(target=_worker, name=f"w{i}",
                                    args=(s, keys, i, log, stop_at, random.Random(rng.random()),
                                          counts, failures))
                   for i in range(N_THREADS)]
        for t in threads:
            t.start()
        if faults:
            for at, fn, args in faults:
                time.sleep(max(0.0, t0 + at - time.monotonic()))
                fn(*args)
        _join_all(threads, stop_at + 20, "after the workload")
        assert not failures, failures[0][2]
        final = _final_state(s, keys)
    finally:
        c.close()
    log.check(final)
    return log, counts["ops"]


@pytest.mark.timeout(120)
def test_32_threads_share_client_and_session(aerospike_cluster_seeds, ns, set_name):
    """No faults (runs against CSPIKE_TEST_HOSTS too): 32 threads, 64 keys."""
    log, ops = _run_threads(aerospike_cluster_seeds, ns, set_name, duration=2.0)
    assert ops > 2000
    assert log.acked() > 500
    assert not log.errors, dict(log.errors)


@pytest.mark.faults
@pytest.mark.timeout(120)
def test_32_threads_while_nodes_die_and_partitions_move(aerospike_server_factory, ns, set_name):
    srv = aerospike_server_factory(nodes=3)
    plan = [(0.5, srv.kill, (1,)), (1.3, srv.restart, (1,)), (2.0, srv.migrate, ((0, 2047), 0)),
            (2.5, srv.kill, (2,)), (3.2, srv.restart, (2,)), (3.6, srv.migrate, ("all", 1))]
    with no_leaks("by 32 threads through node failures"):
        log, ops = _run_threads(srv.seeds, ns, set_name, duration=4.0, faults=plan)
    assert ops > 2000
    assert log.acked() > 500, dict(log.errors)
