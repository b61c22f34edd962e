"""Resources and loops: no leaked descriptors, threads or tasks; closing a
client with commands in flight (same loop, other thread); a loop closed
with commands in flight; one client used from several loops, one after the
other and at the same time."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import warnings

import pytest

from aiohelpers import (CLIENT_KW, behavior, driver_of, fd_diff, fd_table, inflight, new_loop,
                        no_leaks, run, settle_fds, sockets_to)

pytestmark = pytest.mark.timeout(60)


def _ports(srv):
    return {p for _n, p in srv.nodes}


# --------------------------------------------------------------------------- leaks


def test_no_leaked_fds_threads_or_tasks(seeds, arun, key):
    """Connect, run 2,000 commands, close: every descriptor (sockets, the
    driver's epoll fd, the loop's own) and thread is gone afterwards, and no
    task is left on the loop."""
    from cspike import Client

    async def main():
        c = await Client(seeds, **CLIENT_KW).connect()
        s = c.create_session()
        await asyncio.gather(*[s.put(key(i), {"v": i}) for i in range(1000)])
        got = await asyncio.gather(*[s.get(key(i)) for i in range(1000)])
        assert [r.bins["v"] for r in got] == list(range(1000))
        assert asyncio.all_tasks() == {asyncio.current_task()}
        assert inflight(c) == 0
        await c.close()
        assert asyncio.all_tasks() == {asyncio.current_task()}

    with no_leaks("by a client on one loop"):
        arun(main())
    with no_leaks("by three clients used one after the other"):
        for _ in range(3):
            arun(main())


def test_close_releases_every_fd_while_objects_are_alive(seeds, key):
    """close() itself releases the client's descriptors: an application that
    keeps its Client/Session objects around (a module-level client, a
    session cached in a request handler) must not keep sockets or epoll
    fds open after closing."""
    from cspike import Client

    async def main():
        gc.collect()
        before = fd_table()
        c = await Client(seeds, **CLIENT_KW).connect()
        s = c.create_session()
        await asyncio.gather(*[s.put(key(i), {"v": i}) for i in range(50)])
        await c.close()
        end = time.monotonic() + 0.5
        while fd_diff(before, fd_table()) and time.monotonic() < end:
            await asyncio.sleep(0.02)
        extra = fd_diff(before, fd_table())
        assert not extra, f"open after close() with the client and session alive: {extra}"
        return c, s  # alive until here

    run("asyncio", main())


# --------------------------------------------------------------------------- close with ops in flight


@pytest.mark.faults
def test_close_fails_inflight_ops_promptly(aerospike_server_factory, arun, ns, set_name):
    """close() while 200 commands wait on a slow node: each fails with
    ClientClosedError at once (not when the node answers) and nothing
    leaks."""
    from cspike import ClientClosedError, Client, Key
    srv = aerospike_server_factory()

    async def main():
        # A long tend interval keeps the tend thread out of this test (close()
        # waiting for its info exchange is test_close_does_not_block_the_loop).
        # One connection per command (a cap above 200), so every write is sent.
        c = await Client(srv.seeds, **{**CLIENT_KW, "tend_interval": 5.0,
                                       "max_connections_per_node": 256}).connect()
        s = c.create_session(behavior(total_timeout=10, socket_timeout=10))
        keys = [Key(ns, set_name, i) for i in range(200)]
        await asyncio.gather(*[s.put(k, {"v": 1}) for k in keys])
        srv.delay(0, 3000)
        tasks = [asyncio.ensure_future(s.get(k)) for k in keys[:100]]
        tasks += [asyncio.ensure_future(s.put(k, {"v": 2})) for k in keys[100:]]
        await asyncio.sleep(0.1)
        assert inflight(c) == 200
        t0 = time.monotonic()
        await c.close()
        res = await asyncio.gather(*tasks, return_exceptions=True)
        elapsed = time.monotonic() - t0
        assert elapsed < 1.0, f"in-flight commands took {elapsed:.2f} s to fail"
        for r in res:
            assert isinstance(r, ClientClosedError), r
        # Writes were sent: they may have been applied.
        assert all(r.in_doubt for r in res[100:])
        assert not any(r.in_doubt for r in res[:100])
        srv.delay(0, 0)

    with no_leaks("after closing with commands in flight"):
        arun(main())


@pytest.mark.faults
def test_close_fails_queued_ops_not_in_doubt(aerospike_server_factory, arun, ns, set_name):
    """With more commands than connections (cap 8), close() fails the sent
    ones and the queued ones; queued writes were never sent, so they are
    not in doubt, while every sent write is."""
    from cspike import ClientClosedError, Client, Key
    srv = aerospike_server_factory()

    async def main():
        c = await Client(srv.seeds, **{**CLIENT_KW, "tend_interval": 5.0,
                                       "max_connections_per_node": 8}).connect()
        s = c.create_session(behavior(total_timeout=10, socket_timeout=10))
        keys = [Key(ns, set_name, i) for i in range(40)]
        srv.delay(0, 3000)
        tasks = [asyncio.ensure_future(s.put(k, {"v": 2})) for k in keys]
        await asyncio.sleep(0.1)
        t0 = time.monotonic()
        await c.close()
        res = await asyncio.gather(*tasks, return_exceptions=True)
        assert time.monotonic() - t0 < 1.0
        assert all(isinstance(r, ClientClosedError) for r in res), res
        assert sum(r.in_doubt for r in res) == 8  # exactly the sent ones
        srv.delay(0, 0)

    with no_leaks("after closing with queued commands"):
        arun(main())


@pytest.mark.faults
def test_close_from_another_thread(aerospike_server_factory, loop_kind, ns, set_name):
    """A client closed from another thread (not the loop's): the commands in
    flight on the loop fail with ClientClosedError, on the loop's thread."""
    from cspike import ClientClosedError, Client, Key
    srv = aerospike_server_factory()
    c = Client(srv.seeds, **{**CLIENT_KW, "tend_interval": 5.0}).connect_blocking()
    keys = [Key(ns, set_name, i) for i in range(100)]
    started = threading.Event()
    out = {}

    async def work():
        s = c.create_session(behavior(total_timeout=10, socket_timeout=10))
        await asyncio.gather(*[s.put(k, {"v": 1}) for k in keys])
        srv.delay(0, 3000)
        tasks = [asyncio.ensure_future(s.get(k)) for k in keys]
        await asyncio.sleep(0.05)
        out["inflight"] = inflight(c)
        started.set()
        t0 = time.monotonic()
        out["res"] = await asyncio.gather(*tasks, return_exceptions=True)
        out["elapsed"] = time.monotonic() - t0
        out["thread"] = threading.get_ident()

    def thread_main():
        loop = new_loop(loop_kind)
        try:
            loop.run_until_complete(work())
        except BaseException as e:  # noqa: BLE001 - reported below
            out["error"] = e
            started.set()
        finally:
            loop.close()

    with no_leaks("after a close from another thread"):
        t = threading.Thread(target=thread_main)
        t.start()
        assert started.wait(10)
        c.close_blocking()
        t.join(10)
        assert not t.is_alive(), "the loop thread did not finish after close"
        srv.delay(0, 0)
        assert "error" not in out, out.get("error")
        assert out["inflight"] == 100
        assert out["elapsed"] < 1.5, out["elapsed"]
        assert all(isinstance(r, ClientClosedError) for r in out["res"]), out["res"][:3]
        c = None  # drop it before the leak check


# --------------------------------------------------------------------------- a loop closed under the client


@pytest.mark.faults
def test_loop_closed_with_ops_in_flight(aerospike_server_factory, loop_kind, ns, set_name):
    """A loop closed while 50 commands wait on a slow node: nothing crashes
    when the answers arrive later; once the client is used from another loop
    (or closed) each pending future holds ClientClosedError and the old
    loop's sockets are closed; after close() no descriptor is left."""
    from cspike import ClientClosedError, Client, Key
    srv = aerospike_server_factory()
    ports = _ports(srv)
    keys = [Key(ns, set_name, i) for i in range(50)]
    gc.collect()
    before = fd_table()
    c = Client(srv.seeds, **CLIENT_KW).connect_blocking()
    s = c.create_session(behavior(total_timeout=10, socket_timeout=10))

    loop = new_loop(loop_kind)

    async def fill():
        await asyncio.gather(*[s.put(k, {"v": k.value}) for k in keys])

    async def start():
        return [s.get(k) for k in keys]

    loop.run_until_complete(fill())
    srv.delay(0, 300)

    futs = loop.run_until_complete(start())
    loop.run_until_complete(asyncio.sleep(0.05))
    assert not any(f.done() for f in futs)
    assert sockets_to(ports) >= 50
    loop.close()
    time.sleep(0.4)  # the answers arrive on sockets nobody watches now
    srv.delay(0, 0)

    async def again():
        got = await asyncio.gather(*[s.get(k) for k in keys])
        assert [r.bins["v"] for r in got] == [k.value for k in keys]
        assert len(c._drivers) == 1, "the closed loop's driver is still registered"

    new = new_loop(loop_kind)
    try:
        new.run_until_complete(again())
    finally:
        new.close()
    for f in futs:
        assert f.done(), "a future of the closed loop is still pending"
        assert isinstance(f.exception(), ClientClosedError), f.exception()
    # Only the second loop's idle connections remain (and tend's).
    assert sockets_to(ports) <= 50 + len(ports)
    c.close_blocking()
    s = c = futs = f = None  # drop them before the leak check
    extra = settle_fds(before)
    assert not extra, f"descriptors left after close: {extra}"


@pytest.mark.faults
def test_asyncio_run_exit_with_ops_pending(aerospike_server_factory, loop_kind, ns, set_name):
    """asyncio.run() returning while tasks still await commands cancels them
    cleanly (no 'Task was destroyed but it is pending', no 'exception was
    never retrieved'); the client keeps working on the next loop."""
    from cspike import Client, Key
    srv = aerospike_server_factory()
    c = Client(srv.seeds, **CLIENT_KW).connect_blocking()
    keys = [Key(ns, set_name, i) for i in range(40)]
    cancelled = []

    async def first():
        s = c.create_session(behavior(total_timeout=10, socket_timeout=10))
        await asyncio.gather(*[s.put(k, {"v": 1}) for k in keys])
        srv.delay(0, 300)

        async def one(k):
            try:
                return await s.get(k)
            except asyncio.CancelledError:
                cancelled.append(k)
                raise

        for k in keys:
            asyncio.ensure_future(one(k))
        await asyncio.sleep(0.05)

    async def second():
        s = c.create_session()
        got = await asyncio.gather(*[s.get(k) for k in keys])
        assert all(r.bins == {"v": 1} for r in got)

    import logging
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("asyncio").addHandler(handler)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            run(loop_kind, first())
            srv.delay(0, 0)
            run(loop_kind, second())
            gc.collect()
    finally:
        logging.getLogger("asyncio").removeHandler(handler)
        c.close_blocking()
    assert len(cancelled) == len(keys)
    assert not records, [r.getMessage() for r in records]


# --------------------------------------------------------------------------- several loops


def test_client_used_from_successive_loops(seeds, loop_kind, key):
    """Connected on one loop, used on later ones: each loop gets its own
    driver, and drivers of closed loops are dropped."""
    from cspike import Client

    async def connect():
        return await Client(seeds, **CLIENT_KW).connect()

    c = run(loop_kind, connect())
    s = c.create_session()
    try:
        for i in range(4):
            async def use(i=i):
                await asyncio.gather(*[s.put(key(j), {"v": i}) for j in range(100)])
                got = await asyncio.gather(*[s.get(key(j)) for j in range(100)])
                assert all(r.bins == {"v": i} for r in got)
                return driver_of(c)
            d = run(loop_kind, use())
            assert d is not None and d.inflight == 0
            assert len(c._drivers) <= 1
    finally:
        c.close_blocking()


@pytest.mark.timeout(90)
@pytest.mark.parametrize("nthreads", [2, 4])
def test_one_client_and_session_on_loops_in_parallel_threads(seeds, loop_kind, key, nthreads):
    """One client and one session shared by several threads, each running
    its own loop at the same time (the free-threaded case: truly parallel):
    every result belongs to its own key, every write is read back."""
    from cspike import Client
    c = Client(seeds, **CLIENT_KW).connect_blocking()
    s = c.create_session()
    errors = []
    barrier = threading.Barrier(nthreads)

    async def work(t):
        drivers = set()
        for rnd in range(15):
            ks = [key(f"{t}-{j}") for j in range(40)]
            await asyncio.gather(*[s.put(k, {"t": t, "r": rnd, "k": k.value}) for k in ks])
            got = await asyncio.gather(*[s.get(k) for k in ks])
            for k, r in zip(ks, got):
                assert r.bins == {"t": t, "r": rnd, "k": k.value}
            # a shared key every thread writes; reads see some thread's write
            await s.put(key("shared"), {"t": t, "r": rnd, "k": "shared"})
            r = await s.get(key("shared"))
            assert r.bins["k"] == "shared" and 0 <= r.bins["t"] < nthreads
            drivers.add(id(driver_of(c)))
        assert len(drivers) == 1

    def thread_main(t):
        try:
            loop = new_loop(loop_kind)
            barrier.wait(10)
            try:
                loop.run_until_complete(work(t))
            finally:
                loop.close()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=thread_main, args=(t,)) for t in range(nthreads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert not any(t.is_alive() for t in threads), "a loop thread hangs"
        assert not errors, errors[0]
    finally:
        c.close_blocking()
