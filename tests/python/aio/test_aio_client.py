"""The asyncio Client and Session: lifecycle, the fast path and the builders,
with results and exceptions identical to the sync client's; 10,000
concurrent commands through asyncio.gather with every acknowledged write
read back.  Each test runs on the default asyncio loop and on uvloop, on one
node and on the 3-node cluster (or the real cluster of CSPIKE_TEST_HOSTS)."""

from __future__ import annotations

import asyncio
import random
import socket

import pytest

from aiohelpers import CLIENT_KW

pytestmark = pytest.mark.timeout(60)


# --------------------------------------------------------------------------- lifecycle


def test_lifecycle(seeds, arun, key):
    from cspike import Client, ClientClosedError, ConnectionError

    async def main():
        c = Client(seeds, **CLIENT_KW)
        assert c.is_connected is False
        with pytest.raises(ConnectionError):
            c.create_session()
        assert await c.connect() is c
        assert c.is_connected is True
        assert await c.connect() is c  # idempotent
        s = c.create_session()
        await s.put(key(), {"a": 1})
        assert (await s.get(key())).bins == {"a": 1}
        await c.close()
        assert c.is_connected is False
        await c.close()  # idempotent
        with pytest.raises(ClientClosedError):
            await s.get(key())
        # A session made after close fails on use (as SyncClient's does).
        try:
            s2 = c.create_session()
        except ClientClosedError:
            pass
        else:
            with pytest.raises(ClientClosedError):
                await s2.put(key(), {"a": 2})

        async with Client(seeds, **CLIENT_KW) as c2:
            assert c2.is_connected
            assert (await c2.create_session().get(key())).bins == {"a": 1}
        assert not c2.is_connected

        # The blocking twins work inside a loop too (seeding blocks it briefly).
        c3 = Client(seeds, **CLIENT_KW).connect_blocking()
        assert (await c3.create_session().get(key())).bins == {"a": 1}
        s3 = c3.create_session()
        c3.close_blocking()
        with pytest.raises(ClientClosedError):
            await s3.get(key())

    arun(main())


def test_connect_after_close_raises(aerospike_seeds, arun):
    """connect() on a closed client raises ClientClosedError, as
    SyncClient.connect() does; it must not return silently with a client
    that is not connected and whose commands all fail."""
    from cspike import Client, ClientClosedError

    async def main():
        c = await Client(aerospike_seeds, **CLIENT_KW).connect()
        await c.close()
        with pytest.raises(ClientClosedError):
            await c.connect()
        assert not c.is_connected

    arun(main())


def test_connect_refused_is_connection_error(arun):
    from cspike import Client, ConnectionError

    # A port that is bound but not listening refuses connections.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]

    async def main():
        c = Client(f"127.0.0.1:{port}", connect_timeout=0.5)
        with pytest.raises(ConnectionError) as ei:
            await c.connect()
        assert ei.value.result_code is not None and ei.value.result_code < 0
        assert not c.is_connected
        with pytest.raises(ConnectionError):
            c.create_session()

    try:
        arun(main())
    finally:
        sock.close()


def test_async_calls_need_a_running_loop(aerospike_seeds, key):
    from cspike import Client
    c = Client(aerospike_seeds, **CLIENT_KW).connect_blocking()
    try:
        s = c.create_session()
        with pytest.raises(RuntimeError, match="event loop"):
            s.get(key())
        with pytest.raises(RuntimeError, match="event loop"):
            s.put(key(), {"a": 1})
    finally:
        c.close_blocking()


def test_fast_path_returns_loop_futures(aerospike_seeds, arun, key):
    """The fast path returns futures of the running loop, so every asyncio
    combinator (gather, wait, wait_for, shield, as_completed) works."""
    from cspike import Client

    async def main():
        async with Client(aerospike_seeds, **CLIENT_KW) as c:
            s = c.create_session()
            f = s.put(key(), {"a": 1})
            assert isinstance(f, asyncio.Future)
            assert f.get_loop() is asyncio.get_running_loop()
            await f
            done, pending = await asyncio.wait([s.get(key()), s.exists(key())])
            assert not pending and {type(d.result()).__name__ for d in done} == {"Record", "bool"}
            assert (await asyncio.wait_for(s.get(key()), 5)).bins == {"a": 1}
            assert (await asyncio.shield(s.get(key()))).bins == {"a": 1}
            got = [await x for x in asyncio.as_completed([s.get(key()) for _ in range(10)])]
            assert all(r.bins == {"a": 1} for r in got)
            assert all(t is asyncio.current_task() for t in asyncio.all_tasks())

    arun(main())


# --------------------------------------------------------------------------- parity with sync


def _norm(v):
    """Comparable form of a result: Records without their key's set, rows,
    streams, exceptions as (class, result code, in_doubt, message sans node)."""
    from cspike import Record, RecordResult, RecordStream, SyncRecordStream
    if isinstance(v, BaseException):
        msg = str(v).split(" (node ")[0]
        return ("raise", type(v).__name__, getattr(v, "result_code", None),
                getattr(v, "in_doubt", None), msg)
    if isinstance(v, Record):
        return ("rec", v.key.value if v.key is not None else None, v.bins, v.generation,
                "never" if v.ttl == -1 else "expires")
    if isinstance(v, RecordResult):
        return ("row", v.key.value, v.result_code, v.in_doubt, v.index, _norm(v.record))
    if isinstance(v, (SyncRecordStream, RecordStream)):
        return ("stream", [_norm(r) for r in v._collect()])
    if isinstance(v, list):
        return [_norm(x) for x in v]
    return v


def _steps():
    """Each step: fn(session, k, Op, ErrorStrategy, handler) -> value or awaitable."""
    return [
        ("put", lambda s, k, O, E, h: s.put(k("a"), {"i": 1, "s": "x", "l": [1, 2], "m": {"k": 1.5}})),
        ("get", lambda s, k, O, E, h: s.get(k("a"))),
        ("get bins", lambda s, k, O, E, h: s.get(k("a"), bins=["i", "m"])),
        ("get missing", lambda s, k, O, E, h: s.get(k("missing"))),
        ("exists", lambda s, k, O, E, h: s.exists(k("a"))),
        ("exists missing", lambda s, k, O, E, h: s.exists(k("missing"))),
        ("touch", lambda s, k, O, E, h: s.touch(k("a"))),
        ("touch missing", lambda s, k, O, E, h: s.touch(k("missing"))),
        ("operate", lambda s, k, O, E, h: s.operate(k("a"), [O.add("i", 2), O.get("i"), O.append("s", "y"), O.get("s")])),
        ("operate type error", lambda s, k, O, E, h: s.operate(k("a"), [O.add("s", 1)])),
        ("put empty", lambda s, k, O, E, h: s.put(k("a"), {})),
        ("put bad bin", lambda s, k, O, E, h: s.put(k("a"), {"x" * 16: 1})),
        ("put bad value", lambda s, k, O, E, h: s.put(k("a"), {"v": object()})),
        ("get not a key", lambda s, k, O, E, h: s.get(("test", "set", 1))),
        ("unknown namespace", lambda s, k, O, E, h: s.get(type(k("a"))("nonexistent_ns", "s", 1))),
        ("query", lambda s, k, O, E, h: s.query(k("a")).execute()),
        ("query bins", lambda s, k, O, E, h: s.query(k("a")).bins(["s"]).execute()),
        ("query bin get", lambda s, k, O, E, h: s.query(k("a")).bin("i").get().execute()),
        ("query no bins", lambda s, k, O, E, h: s.query(k("a")).with_no_bins().execute()),
        ("query missing", lambda s, k, O, E, h: s.query(k("missing")).execute()),
        ("query batch", lambda s, k, O, E, h: s.query(k("a"), k("missing")).execute()),
        ("query batch all", lambda s, k, O, E, h: s.query([k("a"), k("missing")]).respond_all_keys().execute()),
        ("insert exists", lambda s, k, O, E, h: s.insert(k("a")).put({"z": 1}).execute()),
        ("insert new", lambda s, k, O, E, h: s.insert(k("c")).put({"z": 1}).execute()),
        ("update missing", lambda s, k, O, E, h: s.update(k("missing")).put({"z": 1}).execute()),
        ("update missing in stream", lambda s, k, O, E, h: s.update(k("missing")).put({"z": 1}).execute(on_error=E.IN_STREAM)),
        ("update missing handler", lambda s, k, O, E, h: s.update(k("missing")).put({"z": 1}).execute(on_error=h)),
        ("update", lambda s, k, O, E, h: s.update(k("c")).bin("z").add(5).get("z").execute()),
        ("replace", lambda s, k, O, E, h: s.replace(k("c")).put({"r": 1}).execute()),
        ("replace_if_exists missing", lambda s, k, O, E, h: s.replace_if_exists(k("missing")).put({"r": 1}).execute()),
        ("generation mismatch", lambda s, k, O, E, h: s.upsert(k("a")).ensure_generation_is(99).put({"g": 1}).execute()),
        ("upsert two keys", lambda s, k, O, E, h: s.upsert(k("a"), k("c")).put({"m2": 1}).execute()),
        ("read after write", lambda s, k, O, E, h: s.upsert(k("a")).add("i", 4).get("i").append("s", "c").get("s").remove_bin("l").execute()),
        ("chained specs", lambda s, k, O, E, h: s.query(k("a")).bins(["i"]).upsert(k("c")).put({"ch": 1}).query(k("missing")).execute()),
        ("batch builder", lambda s, k, O, E, h: s.batch().upsert(k("a")).put({"b1": 1}).insert(k("c")).put({"q": 1})
         .update(k("missing")).put({"q": 1}).delete(k("d")).execute()),
        ("batch builder handler", lambda s, k, O, E, h: s.batch().insert(k("a")).put({"q": 1}).execute(on_error=h)),
        ("exists builder", lambda s, k, O, E, h: s.query(k("a")).exists().execute()),
        ("exists builder all", lambda s, k, O, E, h: s.query(k("missing")).exists().respond_all_keys().execute()),
        ("delete builder", lambda s, k, O, E, h: s.query(k("c")).delete().execute()),
        ("delete", lambda s, k, O, E, h: s.delete(k("a"))),
        ("delete again", lambda s, k, O, E, h: s.delete(k("a"))),
        ("get deleted", lambda s, k, O, E, h: s.get(k("a"))),
        ("builder not a key", lambda s, k, O, E, h: s.upsert("nope")),
        ("builder no keys", lambda s, k, O, E, h: s.query([])),
        ("builder nothing to write", lambda s, k, O, E, h: s.upsert(k("a")).execute()),
    ]


def test_results_and_errors_identical_to_sync(seeds, sync_client, arun, ns, set_name):
    from cspike import Client, ErrorStrategy, Key, Operation

    def mk(prefix):
        return lambda v: Key(ns, set_name, f"{prefix}-{v}")

    handled_sync, handled_async = [], []

    sync_s = sync_client.create_session()
    expected = []
    for name, step in _steps():
        try:
            v = step(sync_s, mk("k"), Operation, ErrorStrategy,
                     lambda k, i, e: handled_sync.append((k.value, i, _norm(e))))
        except Exception as e:  # noqa: BLE001 - compared below
            v = e
        expected.append((name, _norm(v)))

    async def main():
        got = []
        async with Client(seeds, **CLIENT_KW) as c:
            s = c.create_session()
            for name, step in _steps():
                try:
                    v = step(s, mk("k2"), Operation, ErrorStrategy,
                             lambda k, i, e: handled_async.append((k.value.replace("k2-", "k-"), i, _norm(e))))
                    if asyncio.isfuture(v) or asyncio.iscoroutine(v):
                        v = await v
                except Exception as e:  # noqa: BLE001
                    v = e
                got.append((name, _norm(v)))
        return got

    got = arun(main())

    def fix(x):  # the async keys are named k2-..., the sync ones k-...
        return repr(x).replace("'k2-", "'k-")
    for (name, e), (_n, g) in zip(expected, got):
        assert fix(g) == fix(e), f"step {name!r}: async {g!r} != sync {e!r}"
    assert handled_async == handled_sync


def test_builder_results_in_input_order(seeds, arun, key):
    """A multi-key builder resolves to rows in input order with .index set,
    across the nodes of the cluster."""
    from cspike import Client

    async def main():
        async with Client(seeds, **CLIENT_KW) as c:
            s = c.create_session()
            keys = [key(i) for i in range(200)]
            rows = await (await s.upsert(keys).bin("v").set_to(7).bin("v").add(1).execute()).collect()
            assert [r.index for r in rows] == list(range(200)) and all(r.is_ok for r in rows)
            mixed = keys[:50] + [key(f"none{i}") for i in range(50)]
            random.Random(3).shuffle(mixed)
            rows = await (await s.query(mixed).respond_all_keys().execute()).collect()
            assert [r.key.value for r in rows] == [k.value for k in mixed]
            for r in rows:
                if isinstance(r.key.value, int):
                    assert r.is_ok and r.record.bins == {"v": 8}
                else:
                    assert r.result_code == 2 and r.record is None
            # async iteration of the stream
            n = 0
            async for r in await s.query(keys[:10]).execute():
                assert r.record.bins == {"v": 8}
                n += 1
            assert n == 10

    arun(main())


# --------------------------------------------------------------------------- 10,000 at once


@pytest.mark.timeout(120)
def test_10k_concurrent_gets_and_puts(seeds, arun, key, sync_client):
    """10,000 concurrent commands in one gather: puts of distinct values,
    then gets and puts mixed on the same keys; every acknowledged write is
    read back, by the async client and by a separate sync client."""
    from cspike import AerospikeError, Client, RecordNotFoundError

    n = 10_000
    keys = [key(i) for i in range(n)]

    async def main():
        async with Client(seeds, **CLIENT_KW) as c:
            s = c.create_session()
            res = await asyncio.gather(*[s.put(k, {"v": i, "id": k.value}) for i, k in enumerate(keys)],
                                       return_exceptions=True)
            errors = [r for r in res if r is not None]
            assert all(isinstance(e, AerospikeError) for e in errors), errors[:3]
            acked = {i: i for i, r in enumerate(res) if r is None}
            assert len(acked) == n, f"{n - len(acked)} puts failed: {errors[:3]}"

            # Half gets, half puts of new values, interleaved on the same keys.
            rng = random.Random(7)
            plan = []
            for i in range(n):
                if rng.random() < 0.5:
                    plan.append(("get", i, None))
                else:
                    plan.append(("put", i, n + i))
            rng.shuffle(plan)
            coros = [s.get(keys[i]) if op == "get" else s.put(keys[i], {"v": v, "id": keys[i].value})
                     for op, i, v in plan]
            res = await asyncio.gather(*coros, return_exceptions=True)
            for (op, i, v), r in zip(plan, res):
                if isinstance(r, BaseException):
                    assert isinstance(r, AerospikeError) and not isinstance(r, RecordNotFoundError), r
                    continue
                if op == "put":
                    acked[i] = v
                else:
                    # A get sees its own key's record, old or new value.
                    assert r.bins["id"] == keys[i].value
                    assert r.bins["v"] in (i, n + i)
            got = await asyncio.gather(*[s.get(k) for k in keys])
            for i, r in enumerate(got):
                assert r.bins == {"v": acked[i], "id": keys[i].value}, i
            assert all(d.inflight == 0 for d in c._drivers.values())
            return acked

    acked = arun(main())
    ss = sync_client.create_session()
    for i in range(0, n, 97):  # a sample through the blocking driver
        assert ss.get(keys[i]).bins["v"] == acked[i]
    for lo in range(0, n, 2000):  # servers refuse batches over 5,000 keys
        rows = ss.query(keys[lo:lo + 2000]).execute().collect()
        assert [r.record.bins["v"] for r in rows] == [acked[i] for i in range(lo, lo + 2000)]


@pytest.mark.timeout(120)
def test_10k_concurrent_under_the_default_fd_limit(aerospike_seeds, ns, set_name):
    """10,000 concurrent puts with the common default descriptor limit
    (ulimit -n 1024): the client must queue commands for connections rather
    than open one socket per command in flight (EMFILE errors, and the node's
    circuit breaker opening for everyone).  Child process: the limit is its
    own; the server runs here with the usual limit."""
    from aiohelpers import run_isolated
    rc, out = run_isolated(f"""
        import asyncio, collections, resource
        from cspike import Client, Key
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))

        async def main():
            async with Client({aerospike_seeds!r}, tend_interval=0.25) as c:
                s = c.create_session()
                keys = [Key({ns!r}, {set_name!r}, i) for i in range(10_000)]
                res = await asyncio.gather(*[s.put(k, {{"v": i}}) for i, k in enumerate(keys)],
                                           return_exceptions=True)
                errors = collections.Counter(type(r).__name__ for r in res if r is not None)
                print("errors:", dict(errors))
                got = await asyncio.gather(*[s.get(k) for k in keys], return_exceptions=True)
                bad = sum(1 for i, r in enumerate(got) if isinstance(r, BaseException) or r.bins != {{"v": i}})
                print("bad reads:", bad)
                return not errors and not bad

        print("OK" if asyncio.run(main()) else "FAILED")
    """, timeout=90)
    assert rc == 0 and "OK" in out, out[-3000:]
