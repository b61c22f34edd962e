"""AsyncPool: N event loops on N threads, one Client each.  The API
(start/aclose/async with, run with round robin and pick, map in input
order, errors), 4 loops x 64 tasks on overlapping keys with every
acknowledged write read back (with and without node failures), closing the
pool while its tasks run, uvloop inside the pool, and throughput against a
single loop.  On free-threaded 3.13t the loops run in parallel."""

from __future__ import annotations

import asyncio
import os
import random
import sys
import threading
import time

import pytest

from aiohelpers import CLIENT_KW, FREE_THREADED, HAVE_UVLOOP, behavior, need_uvloop, no_leaks, run
from lww import WriteLog

pytestmark = pytest.mark.timeout(90)


def _factory(seeds, **kw):
    from cspike import Client
    return lambda: Client(seeds, **{**CLIENT_KW, **kw})


# --------------------------------------------------------------------------- API


def test_pool_api(aerospike_seeds, ns, set_name):
    from cspike import AsyncPool, Key

    async def where(client):
        return threading.get_ident(), id(asyncio.get_running_loop()), client

    async def put_get(client, i):
        s = client.create_session()
        k = Key(ns, set_name, i)
        await s.put(k, {"i": i, "t": threading.get_ident()})
        rec = await s.get(k)
        return rec.bins["i"], rec.bins["t"]

    async def boom(client):
        raise KeyError("from a loop")

    async def main():
        pool = AsyncPool(_factory(aerospike_seeds), loop_count=3, use_uvloop=False)
        assert pool.loop_count == 3 and not pool.is_started and not pool.is_closed
        with pytest.raises(RuntimeError):
            await pool.run(where)
        assert await pool.start() is pool
        assert await pool.start() is pool  # idempotent
        assert pool.is_started
        assert "running" in repr(pool)
        clients = pool.clients
        assert len(clients) == 3 and len({id(c) for c in clients}) == 3
        assert all(c.is_connected for c in clients)

        seen = [await pool.run(where) for _ in range(6)]
        threads = [t for t, _l, _c in seen]
        assert len(set(threads[:3])) == 3 and threads[:3] == threads[3:]
        assert threading.get_ident() not in threads
        for t, _loop, c in seen:
            assert c is clients[threads[:3].index(t)]
        picked = {await pool.run(where, pick=1) for _ in range(3)}
        assert len(picked) == 1
        assert (await pool.run(where, pick=4))[0] == next(iter(picked))[0]

        res = await pool.map(put_get, range(30))
        assert [i for i, _t in res] == list(range(30))
        by_loop = {}
        for i, (_v, t) in enumerate(res):
            by_loop.setdefault(i % 3, set()).add(t)
        assert all(len(ts) == 1 for ts in by_loop.values()) and len(set.union(*by_loop.values())) == 3

        with pytest.raises(KeyError, match="from a loop"):
            await pool.run(boom)
        assert (await pool.run(where))[2].is_connected  # the pool still works
        assert await pool.map(put_get, []) == []

        await pool.aclose()
        assert pool.is_closed
        await pool.aclose()  # idempotent
        assert not any(c.is_connected for c in clients)
        with pytest.raises(RuntimeError):
            await pool.run(where)
        with pytest.raises(RuntimeError):
            await pool.start()

        async with AsyncPool(_factory(aerospike_seeds), loop_count=2, use_uvloop=False) as p2:
            assert p2.is_started and len(await p2.map(put_get, range(4))) == 4
        assert p2.is_closed

    with no_leaks("by AsyncPools"):
        run("asyncio", main())


def test_pool_argument_errors(aerospike_seeds):
    from cspike import AsyncPool
    for bad in (0, -1, True, 1.5, "2"):
        with pytest.raises(ValueError):
            AsyncPool(_factory(aerospike_seeds), loop_count=bad)
    with pytest.raises(TypeError):
        AsyncPool("not callable")
    # Default: a loop per CPU with the GIL off, one loop with it on.
    default = (os.cpu_count() or 4) if FREE_THREADED and not sys._is_gil_enabled() else 1
    assert AsyncPool(_factory(aerospike_seeds)).loop_count == default


def test_pool_start_failures_clean_up(aerospike_seeds):
    """A factory that raises, or a client that cannot connect: start()
    raises that error, and the pool's threads and loops are gone."""
    import socket
    from cspike import AsyncPool, ConnectionError

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    dead = f"127.0.0.1:{sock.getsockname()[1]}"
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) == 2:
            raise LookupError("factory failed")
        return _factory(aerospike_seeds)()

    async def main():
        pool = AsyncPool(flaky, loop_count=3, use_uvloop=False)
        with pytest.raises(LookupError, match="factory failed"):
            await pool.start()
        assert pool.is_closed
        pool2 = AsyncPool(_factory(dead, connect_timeout=0.3), loop_count=2, use_uvloop=False)
        with pytest.raises(ConnectionError):
            await pool2.start()
        return pool, pool2  # alive: close must not depend on garbage collection

    try:
        with no_leaks("by pools that failed to start"):
            pools = run("asyncio", main())
            del pools
    finally:
        sock.close()


def test_pool_start_failure_closes_its_loops_at_once(aerospike_seeds):
    """A pool whose start() failed has closed every loop it created (not
    only when the pool object is garbage collected)."""
    from cspike import AsyncPool

    def factory():
        raise LookupError("no client")

    async def main():
        pool = AsyncPool(factory, loop_count=2, use_uvloop=False)
        with pytest.raises(LookupError):
            await pool.start()
        loops = [w.loop for w in pool._workers]
        # Closed, or already released (aclose drops them once the threads end).
        assert all(lp is None or lp.is_closed() for lp in loops), \
            "loops of a failed start are left open"

    run("asyncio", main())


@pytest.mark.parametrize("use_uvloop", [False, True])
def test_pool_loop_implementation(aerospike_seeds, use_uvloop, ns, set_name):
    from cspike import AsyncPool, Key
    if use_uvloop:
        need_uvloop()

    async def kind(client):
        s = client.create_session()
        k = Key(ns, set_name, threading.get_ident())
        await s.put(k, {"v": 1})
        assert (await s.get(k)).bins == {"v": 1}
        return type(asyncio.get_running_loop()).__module__

    async def main():
        async with AsyncPool(_factory(aerospike_seeds), loop_count=2, use_uvloop=use_uvloop) as p:
            return await p.map(lambda c, _x: kind(c), range(4))

    with no_leaks("by a pool"):
        mods = run("asyncio", main())
    assert all(m.startswith("uvloop") == use_uvloop for m in mods), mods


def test_pool_default_loop_choice():
    """use_uvloop=None: uvloop when installed and the GIL is on."""
    from cspike import AsyncPool
    from cspike.pool import _gil_disabled
    p = AsyncPool(lambda: None, loop_count=1)
    assert p._use_uvloop == (HAVE_UVLOOP and not _gil_disabled())


# --------------------------------------------------------------------------- 4 loops x 64 tasks


async def _task(client_sessions, keys, writer, log, stop_at, rng, counts):
    from cspike import AerospikeError, Operation as Op, RecordNotFoundError
    s = client_sessions()
    seq = 0
    n = 0
    while time.monotonic() < stop_at:
        kid = rng.randrange(len(keys))
        k = keys[kid]
        r = rng.random()
        try:
            if r < 0.3:
                seq += 1
                with log.write(kid, (writer, seq)):
                    await s.put(k, {"w": writer, "s": seq, "k": kid})
            elif r < 0.45:
                seq += 1
                with log.write(kid, (writer, seq)) as w:
                    rec = await s.operate(k, [Op.put("w", writer), Op.put("s", seq), Op.put("k", kid),
                                              Op.add("n", 1), Op.get()])
                if w.outcome == "ok":
                    assert (rec.bins["w"], rec.bins["s"], rec.bins["k"]) == (writer, seq, kid)
            elif r < 0.53:
                with log.write(kid, None):
                    await s.delete(k)
            else:
                try:
                    rec = await s.get(k)
                except RecordNotFoundError:
                    log.read(kid, None)
                else:
                    assert rec.bins["k"] == kid, "a get returned another key's record"
                    log.read(kid, (rec.bins["w"], rec.bins["s"]))
        except AerospikeError as e:
            log.error(e)
        n += 1
    with counts["lock"]:
        counts["ops"] += n


def _pool_workload(seeds, ns, set_name, loops, tasks, duration, faults=None):
    from cspike import AsyncPool, Key, RecordNotFoundError, SyncClient
    keys = [Key(ns, set_name, f"k{i}") for i in range(96)]
    log = WriteLog()
    counts = {"ops": 0, "lock": threading.Lock()}
    tmo = dict(total_timeout=1.0, socket_timeout=0.3) if faults else dict(total_timeout=5, socket_timeout=2)
    b = behavior(max_retries=2, retry_delay=0.02, **tmo)

    async def loop_work(client, li):
        sess = client.create_session(b)
        stop_at = time.monotonic() + duration
        rng = random.Random(li)
        await asyncio.gather(*[_task(lambda: sess, keys, li * 1000 + t, log, stop_at,
                                     random.Random(rng.random()), counts) for t in range(tasks)])
        return threading.get_ident()

    async def main():
        async with AsyncPool(_factory(seeds), loop_count=loops) as pool:
            t0 = time.monotonic()
            work = asyncio.ensure_future(pool.map(loop_work, range(loops)))
            if faults:
                for at, fn, args in faults:
                    await asyncio.sleep(max(0, t0 + at - time.monotonic()))
                    fn(*args)
            idents = await asyncio.wait_for(work, duration + 30)
            assert len(set(idents)) == loops
            return time.monotonic() - t0

    elapsed = run("asyncio", main())
    c = SyncClient(seeds, **CLIENT_KW).connect()
    try:
        s = c.create_session(behavior(total_timeout=2, max_retries=5, retry_delay=0.05))
        final = {}
        for kid, k in enumerate(keys):
            try:
                rec = s.get(k)
                final[kid] = (rec.bins["w"], rec.bins["s"])
            except RecordNotFoundError:
                final[kid] = None
    finally:
        c.close()
    log.check(final)
    return log, counts["ops"], elapsed


@pytest.mark.timeout(120)
def test_pool_4_loops_x_64_tasks(aerospike_cluster_seeds, ns, set_name):
    """4 loops x 64 tasks on 96 overlapping keys for 2 s (no faults; runs
    against CSPIKE_TEST_HOSTS too)."""
    with no_leaks("by a 4-loop pool"):
        log, ops, _ = _pool_workload(aerospike_cluster_seeds, ns, set_name, 4, 64, 2.0)
    assert not log.errors, dict(log.errors)
    assert ops > 2000 and log.acked() > 500


@pytest.mark.faults
@pytest.mark.timeout(120)
def test_pool_4_loops_x_64_tasks_while_nodes_fail(aerospike_server_factory, ns, set_name):
    srv = aerospike_server_factory(nodes=3)
    plan = [(0.4, srv.kill, (1,)), (1.2, srv.restart, (1,)), (1.8, srv.migrate, ((0, 2047), 0)),
            (2.3, srv.kill, (2,)), (3.0, srv.restart, (2,))]
    with no_leaks("by a 4-loop pool through node failures"):
        log, ops, _ = _pool_workload(srv.seeds, ns, set_name, 4, 64, 3.5, faults=plan)
    assert ops > 2000 and log.acked() > 500, dict(log.errors)


# --------------------------------------------------------------------------- closing while running


def test_pool_aclose_while_tasks_run(aerospike_seeds, ns, set_name):
    """aclose() while 4 x 64 tasks run commands: each task ends with
    ClientClosedError (seen by the caller of run/map), promptly; the loops
    and threads stop; nothing leaks."""
    from cspike import AerospikeError, AsyncPool, ClientClosedError, Key
    keys = [Key(ns, set_name, i) for i in range(64)]

    async def loop_work(client, li):
        s = client.create_session()

        async def task(t):
            rng = random.Random(li * 100 + t)
            while True:
                k = keys[rng.randrange(len(keys))]
                try:
                    if rng.random() < 0.5:
                        await s.put(k, {"v": t})
                    else:
                        try:
                            await s.get(k)
                        except AerospikeError as e:
                            if e.result_code != 2:
                                raise
                except ClientClosedError:
                    return "closed"

        return await asyncio.gather(*[task(t) for t in range(64)])

    async def main():
        pool = AsyncPool(_factory(aerospike_seeds), loop_count=4)
        await pool.start()
        work = asyncio.ensure_future(pool.map(loop_work, range(4)))
        await asyncio.sleep(0.3)
        assert not work.done(), work
        t0 = time.monotonic()
        await pool.aclose()
        res = await asyncio.wait_for(work, 5)
        assert time.monotonic() - t0 < 2.0
        assert all(r == ["closed"] * 64 for r in res)
        assert not any(w.thread.is_alive() for w in pool._workers)

    with no_leaks("after closing a running pool"):
        run("asyncio", main())


# --------------------------------------------------------------------------- throughput


def _ops_per_s_single(seeds, keys, tasks, duration):
    from cspike import Client

    async def main():
        async with Client(seeds, **CLIENT_KW) as c:
            s = c.create_session()
            n = 0
            stop = time.monotonic() + duration

            async def task(i):
                nonlocal n
                k = keys[i % len(keys)]
                while time.monotonic() < stop:
                    await s.put(k, {"v": i})
                    await s.get(k)
                    n += 2

            t0 = time.monotonic()
            await asyncio.gather(*[task(i) for i in range(tasks)])
            return n / (time.monotonic() - t0)

    return run("asyncio", main())


def _ops_per_s_pool(seeds, keys, loops, tasks, duration):
    from cspike import AsyncPool

    async def loop_work(client, li):
        s = client.create_session()
        n = 0
        stop = time.monotonic() + duration

        async def task(i):
            nonlocal n
            k = keys[(li * tasks + i) % len(keys)]
            while time.monotonic() < stop:
                await s.put(k, {"v": i})
                await s.get(k)
                n += 2

        await asyncio.gather(*[task(i) for i in range(tasks)])
        return n

    async def main():
        async with AsyncPool(_factory(seeds), loop_count=loops) as pool:
            t0 = time.monotonic()
            ns = await pool.map(loop_work, range(loops))
            return sum(ns) / (time.monotonic() - t0)

    return run("asyncio", main())


@pytest.mark.timeout(60)
def test_pool_not_slower_than_one_loop(aerospike_seeds, ns, set_name):
    """The same 64 tasks on one loop, then spread over a 2-loop pool: on
    regular CPython the pool must not be slower (within noise); on
    free-threaded CPython it should be faster (checked loosely: the server
    shares this machine's cores)."""
    from cspike import Key
    keys = [Key(ns, set_name, i) for i in range(256)]
    single = max(_ops_per_s_single(aerospike_seeds, keys, 64, 1.0) for _ in range(2))
    pool = max(_ops_per_s_pool(aerospike_seeds, keys, 2, 32, 1.0) for _ in range(2))
    ratio = pool / single
    print(f"single loop {single:.0f} ops/s, 2-loop pool {pool:.0f} ops/s, ratio {ratio:.2f}")
    if FREE_THREADED and not __import__("sys")._is_gil_enabled():
        assert ratio >= 0.9, f"pool {pool:.0f} ops/s vs one loop {single:.0f} ops/s"
    else:
        assert ratio >= 0.75, f"pool {pool:.0f} ops/s vs one loop {single:.0f} ops/s"
