"""Cancellation: a cancelled command never leaves a half-read connection in
the pool.  Storms cancel half of thousands of tasks at random points
(including mid-way through large responses); afterwards every key still
reads back its own record, every uncancelled task got exactly its results,
the commands of cancelled tasks drain, and the loop logged nothing."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from aiohelpers import CLIENT_KW, await_for, behavior, inflight, no_leaks, sockets_to

pytestmark = pytest.mark.timeout(90)


class LoopErrors:
    """Collects what the loop's exception handler is given ('Task exception
    was never retrieved', callback errors...)."""

    def __init__(self) -> None:
        self.items: list = []

    def install(self) -> None:
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: self.items.append(ctx))

    def check(self) -> None:
        assert not self.items, [c.get("message") for c in self.items][:5]


def _payload(i: int) -> dict:
    """Every 10th record is large (64-192 KiB), so its answer takes several
    reads and a cancellation can land mid-response."""
    bins = {"id": i}
    if i % 10 == 0:
        bins["blob"] = bytes([i % 251]) * (65536 * (1 + i % 3))
    return bins


def _check_record(i: int, n: int | None, rec) -> None:
    assert rec.bins["id"] == i, f"key {i} read another key's record ({rec.bins['id']})"
    if i % 10 == 0:
        assert rec.bins["blob"] == bytes([i % 251]) * (65536 * (1 + i % 3))
    if n is not None:
        assert rec.bins["n"] == n


@pytest.mark.timeout(120)
def test_cancellation_storm(seeds, arun, key):
    from cspike import Client
    n_keys = 1500
    rng = random.Random(11)
    errors = LoopErrors()

    async def main():
        errors.install()
        async with Client(seeds, **CLIENT_KW) as c:
            s = c.create_session()
            await asyncio.gather(*[s.put(key(i), {**_payload(i), "n": -1}) for i in range(n_keys)])
            final = {}  # i -> n of the last put of an uncancelled task
            attempted = {i: {-1} for i in range(n_keys)}

            async def task(i):
                for n in range(3):
                    attempted[i].add(n)
                    await s.put(key(i), {"n": n})
                    rec = await s.get(key(i))
                    _check_record(i, n, rec)
                    rec = await s.operate(key(i), _ops_read())
                    _check_record(i, n, rec)
                final[i] = 2
                return i

            loop = asyncio.get_running_loop()
            for rnd in range(2):
                tasks = [loop.create_task(task(i)) for i in range(n_keys)]
                victims = rng.sample(range(n_keys), n_keys // 2)
                for v in victims:
                    loop.call_later(rng.random() * 0.05, tasks[v].cancel)
                res = await asyncio.gather(*tasks, return_exceptions=True)
                cancelled = {i for i, r in enumerate(res) if isinstance(r, asyncio.CancelledError)}
                failed = [r for r in res if isinstance(r, BaseException)
                          and not isinstance(r, asyncio.CancelledError)]
                assert not failed, failed[:3]
                assert cancelled <= set(victims)
                assert len(cancelled) > n_keys // 10, "the storm cancelled almost nothing"
                for i, r in enumerate(res):
                    if i not in cancelled:
                        assert r == i
                # Commands of cancelled tasks finish in the background.
                await await_for(lambda: inflight(c) == 0, 20, what="in-flight commands to drain")

                # Every connection in the pool is clean: each key reads its own
                # record, twice over all keys at once.
                for _ in range(2):
                    got = await asyncio.gather(*[s.get(key(i)) for i in range(n_keys)])
                    for i, rec in enumerate(got):
                        _check_record(i, 2 if i not in cancelled else None, rec)
                        assert rec.bins["n"] in attempted[i]
                for i in range(n_keys):
                    if i not in cancelled:
                        assert final[i] == 2
            assert asyncio.all_tasks() == {asyncio.current_task()}
        errors.check()

    with no_leaks("after a cancellation storm"):
        arun(main())


def _ops_read():
    from cspike import Operation
    return [Operation.get()]


@pytest.mark.faults
def test_cancel_while_node_is_slow(aerospike_server_factory, arun, ns, set_name):
    """Cancel 200 gets that wait on a slow node: new commands issued right
    after get the right records at once (never a connection whose answer is
    still on its way: a cancelled command either finishes reading its
    answer or, when its node's connections are all busy, gives its
    connection up closed), and afterwards the pool serves clean answers."""
    from cspike import Client, Key
    srv = aerospike_server_factory()
    port = srv.nodes[0][1]
    errors = LoopErrors()

    async def main():
        errors.install()
        async with Client(srv.seeds, **CLIENT_KW) as c:
            s = c.create_session(behavior(total_timeout=5, socket_timeout=5))
            keys = [Key(ns, set_name, i) for i in range(400)]
            await asyncio.gather(*[s.put(k, _payload(k.value)) for k in keys])
            srv.delay(0, 800)
            tasks = [asyncio.ensure_future(s.get(k)) for k in keys[:200]]
            await asyncio.sleep(0.1)
            for t in tasks:
                t.cancel()
            res = await asyncio.gather(*tasks, return_exceptions=True)
            assert all(isinstance(r, asyncio.CancelledError) for r in res)
            assert inflight(c) == 200  # still reading their answers
            srv.delay(0, 0)
            t0 = time.monotonic()
            got = await asyncio.gather(*[s.get(k) for k in keys[200:]])
            # Had they been given the cancelled commands' connections, they
            # would wait for those answers (0.7 s from now).
            assert time.monotonic() - t0 < 0.35, "new commands waited for the cancelled ones"
            for k, rec in zip(keys[200:], got):
                _check_record(k.value, None, rec)
            await await_for(lambda: inflight(c) == 0, 5, what="the cancelled commands to finish")
            conns = sockets_to(port)
            for _ in range(3):
                got = await asyncio.gather(*[s.get(k) for k in keys])
                for k, rec in zip(keys, got):
                    _check_record(k.value, None, rec)
            # The pool was reused, not rebuilt, and stays within its cap.
            assert sockets_to(port) <= max(conns, CLIENT_KW.get("max_connections_per_node", 100)) + 1
        errors.check()

    arun(main())


@pytest.mark.faults
def test_wait_for_and_timeout_context(aerospike_server_factory, arun, ns, set_name):
    """asyncio.wait_for / asyncio.timeout around a command on a slow node
    raise asyncio's TimeoutError at their own deadline; the abandoned
    command's connection is not reused while its answer is pending."""
    from cspike import Client, Key
    srv = aerospike_server_factory()
    errors = LoopErrors()

    async def main():
        errors.install()
        async with Client(srv.seeds, **CLIENT_KW) as c:
            s = c.create_session(behavior(total_timeout=5, socket_timeout=5))
            a, b = Key(ns, set_name, "a"), Key(ns, set_name, "b")
            await s.put(a, {"id": "a"})
            await s.put(b, {"id": "b"})
            srv.delay(0, 300)
            t0 = time.monotonic()
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(s.get(a), 0.05)
            assert 0.04 < time.monotonic() - t0 < 0.25
            if hasattr(asyncio, "timeout"):
                t0 = time.monotonic()
                with pytest.raises(asyncio.TimeoutError):
                    async with asyncio.timeout(0.05):
                        await s.get(a)
                assert 0.04 < time.monotonic() - t0 < 0.25
            srv.delay(0, 0)
            for _ in range(20):
                assert (await s.get(b)).bins == {"id": "b"}
                assert (await s.get(a)).bins == {"id": "a"}
            await await_for(lambda: inflight(c) == 0, 5)
        errors.check()

    arun(main())


def test_cancelled_writes_are_applied_or_not(seeds, arun, key):
    """Cancelled puts are in doubt for the caller: the record ends with the
    old or the new value, never anything else; uncancelled puts are read
    back exactly."""
    from cspike import Client
    rng = random.Random(5)
    errors = LoopErrors()

    async def main():
        errors.install()
        async with Client(seeds, **CLIENT_KW) as c:
            s = c.create_session()
            n = 1000
            await asyncio.gather(*[s.put(key(i), {"v": "old", "id": i}) for i in range(n)])
            futs = [s.put(key(i), {"v": "new", "id": i}) for i in range(n)]
            # Some cancelled before the loop ever runs, some a little later.
            for i in rng.sample(range(n), n // 4):
                futs[i].cancel()
            later = rng.sample(range(n), n // 4)
            loop = asyncio.get_running_loop()
            for i in later:
                loop.call_later(rng.random() * 0.01, futs[i].cancel)
            res = await asyncio.gather(*futs, return_exceptions=True)
            await await_for(lambda: inflight(c) == 0, 10)
            got = await asyncio.gather(*[s.get(key(i)) for i in range(n)])
            for i, (r, rec) in enumerate(zip(res, got)):
                assert rec.bins["id"] == i
                if isinstance(r, asyncio.CancelledError):
                    assert rec.bins["v"] in ("old", "new")
                else:
                    assert r is None and rec.bins["v"] == "new"
        errors.check()

    arun(main())


def test_cancel_batch_builder(seeds, arun, key):
    """A batch cancelled while its node commands run: the next batches on
    the same connections return exactly their own rows."""
    from cspike import Client
    errors = LoopErrors()

    async def main():
        errors.install()
        async with Client(seeds, **CLIENT_KW) as c:
            s = c.create_session()
            keys = [key(i) for i in range(600)]
            await asyncio.gather(*[s.put(k, _payload(k.value)) for k in keys])
            for rnd in range(10):
                t = asyncio.ensure_future(s.query(keys).execute())
                await asyncio.sleep(0.0005 * rnd)
                t.cancel()
                try:
                    await t
                except asyncio.CancelledError:
                    pass
                part = keys[rnd * 50:(rnd + 1) * 50 + 7]
                rows = await (await s.query(part).execute()).collect()
                assert [r.key.value for r in rows] == [k.value for k in part]
                for k, r in zip(part, rows):
                    _check_record(k.value, None, r.record)
            await await_for(lambda: inflight(c) == 0, 10)
        errors.check()

    arun(main())
