"""Closing a client while threads are mid-command gives those threads clear
errors (ClientClosedError), promptly, without a crash or a hang, and leaves
nothing open.  Scenarios where a client bug could hang or crash the
interpreter run in a child process with a time limit."""

from __future__ import annotations

import os
import random
import threading
import time

import pytest

from aiohelpers import CLIENT_KW, behavior, no_leaks, run_isolated

N_THREADS = 32


def _close_under_threads(seeds, keys, delay=None, **client_kw):
    """32 threads loop over put/get until ClientClosedError; the client is
    closed 0.3 s in.  Returns (per-thread (exception class, seconds after
    close), other errors' class names, exception of a call after close)."""
    from cspike import AerospikeError, ClientClosedError, SyncClient
    outcome = {}
    other = []
    started = threading.Barrier(N_THREADS + 1)

    def work(i, s):
        rng = random.Random(i)
        started.wait(10)
        while True:
            k = keys[rng.randrange(len(keys))]
            try:
                if rng.random() < 0.5:
                    s.put(k, {"i": i})
                else:
                    s.get(k)
            except ClientClosedError:
                outcome[i] = ("ClientClosedError", time.monotonic())
                return
            except AerospikeError as e:
                other.append(type(e).__name__)
            except BaseException as e:  # noqa: BLE001 - reported by the caller
                outcome[i] = (f"{type(e).__name__}: {e}", time.monotonic())
                return

    c = SyncClient(seeds, **{**CLIENT_KW, **client_kw}).connect()
    s = c.create_session(behavior(total_timeout=10, socket_timeout=10))
    for k in keys:
        s.put(k, {"i": -1})
    if delay:
        delay(1500)
    threads = [threading.Thread(target=work, args=(i, s), daemon=True) for i in range(N_THREADS)]
    for t in threads:
        t.start()
    started.wait(10)
    time.sleep(0.3)
    t0 = time.monotonic()
    c.close()
    close_s = time.monotonic() - t0
    for t in threads:
        t.join(max(0.0, t0 + 10 - time.monotonic()))
    alive = sum(t.is_alive() for t in threads)
    if delay:
        delay(0)
    try:
        s.get(keys[0])
        after = "no error"
    except ClientClosedError:
        after = "ClientClosedError"
    except BaseException as e:  # noqa: BLE001
        after = repr(e)
    return {i: (what, when - t0) for i, (what, when) in outcome.items()}, other, after, alive, close_s


def _check(outcome, other, after, alive, close_s, close_bound=2.0):
    assert alive == 0, f"{alive} thread(s) still blocked 10 s after close()"
    assert close_s < close_bound, f"close() took {close_s:.2f} s"
    assert len(outcome) == N_THREADS
    for i, (what, dt) in outcome.items():
        assert what == "ClientClosedError", (i, what)
        assert dt < 1.0, f"thread {i} took {dt:.2f} s to notice the close"
    assert after == "ClientClosedError", after


@pytest.mark.timeout(60)
def test_close_while_32_threads_are_mid_command(aerospike_seeds, ns, set_name):
    from cspike import Key
    keys = [Key(ns, set_name, i) for i in range(64)]
    with no_leaks("after closing under 32 threads"):
        _check(*_close_under_threads(aerospike_seeds, keys))


@pytest.mark.faults
@pytest.mark.timeout(90)
def test_close_while_32_threads_wait_on_a_slow_node(aerospike_server_factory):
    """The same with every thread blocked on a node answering 1.5 s late (in
    a child process: a hang must fail this test, not the run).  The tend
    thread's info timeout (connect_timeout 3 s) is longer than the delay, so
    close() may wait for its info answer, but the threads fail at once."""
    aerospike_server_factory  # noqa: B018 - skips on a real cluster
    rc, out = run_isolated("""
        from cspike.testing import Server
        from cspike import Key
        import test_conc_close as T
        srv = Server(); seeds = srv.start()
        try:
            keys = [Key("test", "close_slow", i) for i in range(64)]
            res = T._close_under_threads(seeds, keys, delay=lambda ms: srv.delay(0, ms),
                                         connect_timeout=3.0)
            print("RESULT", res[2], res[3], round(res[4], 2),
                  sorted(set(w for w, _ in res[0].values())))
            T._check(*res, close_bound=3.5)
            print("OK")
        finally:
            srv.stop()
    """, timeout=25, path=(os.path.dirname(os.path.abspath(__file__)),))
    assert rc == 0 and "OK" in out, out[-4000:]


@pytest.mark.faults
@pytest.mark.timeout(90)
def test_tend_survives_a_node_slower_than_its_info_timeout(aerospike_server_factory):
    """A node answering later than the tend thread's info timeout
    (connect_timeout): tending gives up on that round and tries again; once
    the node is fast again the client works, close() returns promptly, the
    process neither hangs nor crashes (in a child process)."""
    aerospike_server_factory  # noqa: B018 - skips on a real cluster
    rc, out = run_isolated("""
        import time
        from cspike import Behavior, Key, SyncClient
        from cspike.testing import Server
        srv = Server(); seeds = srv.start()
        import atexit; atexit.register(srv.stop)
        c = SyncClient(seeds, tend_interval=0.1, connect_timeout=0.3).connect()
        s = c.create_session(Behavior.DEFAULT.derive_with_changes("t", total_timeout=3))
        k = Key("test", "tend_slow", 1)
        s.put(k, {"v": 1})
        srv.delay(0, 1000)          # info answers 1 s late: > 0.3 s info timeout
        time.sleep(2.5)
        srv.delay(0, 0)
        time.sleep(1.0)             # the tend thread recovers
        n = c._cluster.tend_count
        time.sleep(0.5)
        assert c._cluster.tend_count >= n + 2, "tending stopped after the slow answers"
        assert s.get(k).bins == {"v": 1}
        t0 = time.monotonic()
        c.close()
        dt = time.monotonic() - t0
        assert dt < 1.0, f"close() took {dt:.2f} s"
        srv.stop()
        print("OK")
    """, timeout=20)
    assert rc == 0 and "OK" in out, f"exit status {rc}\n{out[-4000:]}"

