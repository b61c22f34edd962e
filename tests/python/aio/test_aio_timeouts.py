"""Timeouts on the event loop: a delayed node (fault injection) turns into
cspike.TimeoutError at the configured time (total and socket timeouts,
retries on the loop), the timed-out connection is closed, never reused, so
no later command reads a stale answer; deadlines of many commands fire in
order from one loop timer; reads move to a replica, writes stay in doubt."""

from __future__ import annotations

import asyncio
import time

import pytest

from aiohelpers import CLIENT_KW, await_for, behavior, inflight, master_of, node_index, sockets_to

pytestmark = [pytest.mark.timeout(60), pytest.mark.faults]

TIMEOUT_CODE = 9
SLACK = 0.3  # scheduling slack on a busy 2-core box


@pytest.fixture
def srv(aerospike_server_factory):
    return aerospike_server_factory()


@pytest.fixture
def srv3(aerospike_server_factory):
    return aerospike_server_factory(nodes=3)


async def _timed(aw):
    t0 = time.monotonic()
    try:
        return await aw, time.monotonic() - t0
    except Exception as e:  # noqa: BLE001 - returned for inspection
        return e, time.monotonic() - t0


@pytest.mark.parametrize("total_ms", [50, 250])
def test_total_timeout_at_configured_time(srv, arun, ns, set_name, total_ms):
    from cspike import Client, Key, TimeoutError
    port = srv.nodes[0][1]

    async def main():
        async with Client(srv.seeds, **CLIENT_KW) as c:
            s = c.create_session(behavior(total_timeout=total_ms / 1000, socket_timeout=0,
                                          max_retries=0))
            a, b = Key(ns, set_name, "a"), Key(ns, set_name, "b")
            setup = c.create_session()
            await setup.put(a, {"id": "a"})
            await setup.put(b, {"id": "b"})
            idle = sockets_to(port)
            srv.delay(0, total_ms + 400)
            e, dt = await _timed(s.get(a))
            assert isinstance(e, TimeoutError), e
            assert e.result_code == TIMEOUT_CODE and e.in_doubt is False
            assert total_ms / 1000 <= dt < total_ms / 1000 + SLACK, dt
            # The connection that timed out is closed, not pooled.
            assert sockets_to(port) <= idle - 1, (sockets_to(port), idle)
            srv.delay(0, 0)
            # Its late answer can never reach another command.
            for _ in range(5):
                assert (await s.get(b)).bins == {"id": "b"}
            await asyncio.sleep((total_ms + 450) / 1000)
            for _ in range(5):
                assert (await s.get(b)).bins == {"id": "b"}
                assert (await s.get(a)).bins == {"id": "a"}
            assert inflight(c) == 0

    arun(main())


def test_socket_timeout_with_retries(srv, arun, ns, set_name):
    """socket_timeout 60 ms, 2 retries, one node that answers after 1 s:
    three attempts, TimeoutError after ~180 ms; each attempt's connection is
    closed."""
    from cspike import Client, Key, TimeoutError
    port = srv.nodes[0][1]

    async def main():
        async with Client(srv.seeds, **CLIENT_KW) as c:
            s = c.create_session(behavior(total_timeout=3, socket_timeout=0.06, max_retries=2))
            k = Key(ns, set_name, "k")
            await c.create_session().put(k, {"id": "k"})
            base = sockets_to(port)
            srv.delay(0, 1000)
            e, dt = await _timed(s.get(k))
            assert isinstance(e, TimeoutError), e
            assert 0.18 <= dt < 0.18 + SLACK, dt
            assert sockets_to(port) <= base - 1
            srv.delay(0, 0)
            assert (await s.get(k)).bins == {"id": "k"}

    arun(main())


def test_total_timeout_cuts_retries_short(srv, arun, ns, set_name):
    """total 150 ms with socket timeout 100 ms and 5 retries: the second
    attempt is cut at the total deadline."""
    from cspike import Client, Key, TimeoutError

    async def main():
        async with Client(srv.seeds, **CLIENT_KW) as c:
            s = c.create_session(behavior(total_timeout=0.15, socket_timeout=0.1, max_retries=5))
            k = Key(ns, set_name, "k")
            await c.create_session().put(k, {"id": "k"})
            srv.delay(0, 1000)
            e, dt = await _timed(s.get(k))
            srv.delay(0, 0)
            assert isinstance(e, TimeoutError), e
            assert 0.15 <= dt < 0.15 + SLACK, dt

    arun(main())


def test_write_timeout_is_in_doubt(srv, arun, ns, set_name):
    from cspike import Client, Key, TimeoutError

    async def main():
        async with Client(srv.seeds, **CLIENT_KW) as c:
            s = c.create_session(behavior(total_timeout=0.1, socket_timeout=0.1))
            k = Key(ns, set_name, "w")
            await c.create_session().put(k, {"v": 1})
            srv.delay(0, 400)
            e, dt = await _timed(s.put(k, {"v": 2}))
            assert isinstance(e, TimeoutError), e
            assert e.in_doubt is True
            e, dt = await _timed(s.operate(k, _incr()))
            assert isinstance(e, TimeoutError) and e.in_doubt is True
            srv.delay(0, 0)
            # This server applies before it delays the answer.
            await asyncio.sleep(0.5)
            rec = await s.get(k)
            assert rec.bins["v"] in (2, 3)

    arun(main())


def _incr():
    from cspike import Operation
    return [Operation.add("v", 1)]


def test_timeout_message_is_readable(srv, arun, ns, set_name):
    """The TimeoutError says what timed out, once."""
    from cspike import Client, Key, TimeoutError

    async def main():
        async with Client(srv.seeds, **CLIENT_KW) as c:
            s = c.create_session(behavior(total_timeout=0.1, socket_timeout=0, max_retries=0))
            k = Key(ns, set_name, "k")
            await c.create_session().put(k, {"v": 1})
            srv.delay(0, 300)
            with pytest.raises(TimeoutError) as ei:
                await s.get(k)
            srv.delay(0, 0)
            msg = ei.value.message
            assert msg.count("total timeout of 100 ms") == 1, msg
            assert "timed out" in msg and srv.nodes[0][0] in msg, msg

    arun(main())


def test_deadlines_fire_in_order(srv, arun, ns, set_name):
    """Commands started with deadlines 400, 100, 300, 50, 250, 150 ms fail in
    deadline order, each on time: one loop timer re-armed for the earliest
    deadline of the C heap."""
    from cspike import Client, Key, TimeoutError
    totals = [400, 100, 300, 50, 250, 150]

    async def main():
        async with Client(srv.seeds, **CLIENT_KW) as c:
            sessions = {t: c.create_session(behavior(total_timeout=t / 1000, socket_timeout=0,
                                                     max_retries=0)) for t in totals}
            k = Key(ns, set_name, "k")
            await c.create_session().put(k, {"v": 1})
            srv.delay(0, 600)
            order = []
            t0 = time.monotonic()

            async def one(t):
                try:
                    await sessions[t].get(k)
                except TimeoutError:
                    order.append((t, time.monotonic() - t0))

            await asyncio.gather(*[one(t) for t in totals])
            srv.delay(0, 0)
            assert [t for t, _ in order] == sorted(totals), order
            for t, dt in order:
                assert t / 1000 <= dt + 0.002 and dt < t / 1000 + SLACK, order

    arun(main())


def test_no_timeout_waits_for_slow_answer(srv, arun, ns, set_name):
    from cspike import Client, Key

    async def main():
        async with Client(srv.seeds, **CLIENT_KW) as c:
            s = c.create_session(behavior(total_timeout=0, socket_timeout=0))
            k = Key(ns, set_name, "k")
            await s.put(k, {"v": 1})
            srv.delay(0, 300)
            rec, dt = await _timed(s.get(k))
            srv.delay(0, 0)
            assert rec.bins == {"v": 1} and dt >= 0.3

    arun(main())


@pytest.mark.timeout(90)
def test_many_concurrent_timeouts(srv, arun, ns, set_name):
    """500 commands time out together: all within the bound, all their
    connections closed, and the client works normally afterwards."""
    from cspike import Client, Key, MaxErrorRate, TimeoutError
    port = srv.nodes[0][1]

    async def main():
        async with Client(srv.seeds, **CLIENT_KW) as c:
            s = c.create_session(behavior(total_timeout=0.1, socket_timeout=0, max_retries=0))
            keys = [Key(ns, set_name, i) for i in range(500)]
            setup = c.create_session()
            await asyncio.gather(*[setup.put(k, {"id": k.value}) for k in keys])
            srv.delay(0, 500)
            t0 = time.monotonic()
            res = await asyncio.gather(*[s.get(k) for k in keys], return_exceptions=True)
            dt = time.monotonic() - t0
            assert all(isinstance(r, TimeoutError) for r in res), [r for r in res if not isinstance(r, TimeoutError)][:3]
            assert dt < 0.1 + 2 * SLACK, dt
            assert inflight(c) == 0
            srv.delay(0, 0)
            await await_for(lambda: sockets_to(port) <= 1 + 1, 2, what="timed-out sockets closed")
            # 500 errors opened the node's circuit breaker (max_error_rate
            # 100 per tend interval): commands fail fast with MaxErrorRate
            # until the window closes, then the client works normally.

            async def works():
                try:
                    return (await s.get(keys[0])).bins["id"] == 0
                except MaxErrorRate:
                    return False

            end = time.monotonic() + 3
            while not await works():
                assert time.monotonic() < end, "the circuit breaker never closed"
                await asyncio.sleep(0.05)
            got = await asyncio.gather(*[s.get(k) for k in keys])
            assert [r.bins["id"] for r in got] == [k.value for k in keys]

    arun(main())


@pytest.mark.timeout(90)
def test_reads_retry_on_replica_writes_stay(srv3, arun, ns, set_name):
    """One node of three answers 0.8 s late: reads of keys it masters move to
    the replica after the 100 ms socket timeout and succeed; writes to it
    (never moved after a timeout) fail in doubt at their deadline.  (The
    circuit breaker is off: with it, writes would move once it opens.)"""
    from cspike import Client, Key, TimeoutError

    async def main():
        async with Client(srv3.seeds, max_error_rate=0, **CLIENT_KW) as c:
            slow = srv3.nodes[1][0]
            keys = [Key(ns, set_name, i) for i in range(300)]
            s = c.create_session(behavior(total_timeout=1.5, socket_timeout=0.1, max_retries=2))
            await asyncio.gather(*[s.put(k, {"id": k.value}) for k in keys])
            on_slow = [k for k in keys if master_of(c, k) == slow]
            others = [k for k in keys if master_of(c, k) != slow]
            assert on_slow and others
            srv3.delay(node_index(srv3, slow), 800)
            t0 = time.monotonic()
            got = await asyncio.gather(*[s.get(k) for k in keys])
            dt = time.monotonic() - t0
            assert [r.bins["id"] for r in got] == [k.value for k in keys]
            assert dt < 0.1 + 2 * SLACK, dt

            w = c.create_session(behavior(total_timeout=0.3, socket_timeout=0.1, max_retries=2))
            res = await asyncio.gather(*[w.put(k, {"id": k.value, "w": 1}) for k in keys],
                                       return_exceptions=True)
            for k, r in zip(keys, res):
                if k in on_slow:
                    assert isinstance(r, TimeoutError) and r.in_doubt, r
                else:
                    assert r is None, r
            srv3.delay(node_index(srv3, slow), 0)

    arun(main())


def test_close_does_not_block_the_loop(srv, arun, ns, set_name):
    """await client.close() must not freeze the event loop, even when a node
    is slow to answer (the cluster's tend thread may be waiting on it for
    up to its info timeout)."""
    from cspike import Client, Key

    async def main():
        c = await Client(srv.seeds, **CLIENT_KW).connect()  # info timeout 2 s
        s = c.create_session()
        await s.put(Key(ns, set_name, "k"), {"v": 1})
        ticks = []

        async def ticker():
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.01)

        t = asyncio.ensure_future(ticker())
        srv.delay(0, 1500)
        await asyncio.sleep(0.4)  # the tend thread now waits on the slow node
        t0 = time.monotonic()
        await c.close()
        t1 = time.monotonic()
        await asyncio.sleep(0.05)
        t.cancel()
        srv.delay(0, 0)
        # the longest stretch without a tick that overlaps the close() call
        worst = max(b - a for a, b in zip(ticks, ticks[1:]) if b >= t0 and a <= t1)
        assert worst < 0.5, f"the loop was blocked for {worst:.2f} s by close()"

    arun(main())
