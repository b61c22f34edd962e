"""Faults under asyncio (embedded server): a node killed and restarted and
partitions moved while 64 tasks mix get/put/delete/operate on overlapping
keys (no acknowledged write lost, last writer wins); connections dropped
mid-command; corrupt frames; server error codes -- the same exceptions as
the sync client, and no broken connection is ever reused."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from aiohelpers import CLIENT_KW, await_for, behavior, inflight, master_of, no_leaks
from lww import WriteLog

pytestmark = [pytest.mark.faults, pytest.mark.timeout(60)]


def _token(rec):
    return (rec.bins["w"], rec.bins["s"])


async def _mixed_worker(s, keys, writer, log, stop_at, rng, counts):
    from cspike import AerospikeError, Operation as Op, RecordNotFoundError
    seq = 0
    while time.monotonic() < stop_at:
        kid = rng.randrange(len(keys))
        k = keys[kid]
        r = rng.random()
        try:
            if r < 0.35:
                seq += 1
                with log.write(kid, (writer, seq)):
                    await s.put(k, {"w": writer, "s": seq, "k": kid})
            elif r < 0.5:
                seq += 1
                with log.write(kid, (writer, seq)) as w:
                    rec = await s.operate(k, [Op.put("w", writer), Op.put("s", seq), Op.put("k", kid),
                                              Op.add("n", 1), Op.get()])
                if w.outcome == "ok":
                    # read-your-write inside one atomic operate
                    assert (rec.bins["w"], rec.bins["s"], rec.bins["k"]) == (writer, seq, kid)
            elif r < 0.54:
                # a batch write of 3 distinct keys: each row is its own write
                kids = rng.sample(range(len(keys)), 3)
                ws = []
                b = s.batch()
                for i, kk in enumerate(kids):
                    seq += 1
                    ws.append(log.begin(kk, (writer, seq)))
                    b = b.upsert(keys[kk]).put({"w": writer, "s": seq, "k": kk})
                try:
                    rows = await b.execute()
                except AerospikeError as e:  # the whole batch failed
                    for w in ws:
                        log.end(w, e)
                else:
                    assert [row.key.value for row in rows] == [keys[kk].value for kk in kids]
                    for w, row in zip(ws, rows):
                        log.end(w, None if row.is_ok else row.exception)
            elif r < 0.58:
                # a batch read of 4 keys
                kids = rng.sample(range(len(keys)), 4)
                try:
                    rows = await (await s.query([keys[kk] for kk in kids]).respond_all_keys()
                                  .execute()).collect()
                except AerospikeError as e:
                    log.error(e)
                else:
                    for kk, row in zip(kids, rows):
                        if row.is_ok:
                            assert row.record.bins["k"] == kk
                            log.read(kk, _token(row.record))
                        elif row.result_code == 2:
                            log.read(kk, None)
                        else:
                            log.error(row.exception)
            elif r < 0.62:
                with log.write(kid, None):
                    await s.delete(k)
            else:
                try:
                    rec = await s.get(k)
                except RecordNotFoundError:
                    log.read(kid, None)
                else:
                    assert rec.bins["k"] == kid, "a get returned another key's record"
                    log.read(kid, _token(rec))
            counts["ops"] += 1
        except AerospikeError as e:
            log.error(e)
        await asyncio.sleep(0)


async def _final_state(s, keys):
    from cspike import AerospikeError, RecordNotFoundError
    final = {}
    for kid, k in enumerate(keys):
        end = time.monotonic() + 10
        while True:
            try:
                final[kid] = _token(await s.get(k))
                break
            except RecordNotFoundError:
                final[kid] = None
                break
            except AerospikeError:
                assert time.monotonic() < end, f"key {kid} unreadable after the faults"
                await asyncio.sleep(0.05)
    return final


@pytest.mark.timeout(120)
def test_node_killed_mid_flight(aerospike_server_factory, arun, ns, set_name):
    """3-node cluster: 64 tasks on 48 overlapping keys for ~3.5 s while node
    1 is killed and restarted, partitions move, node 2 is killed and
    restarted.  No acknowledged write is lost, no task hangs, the loop is
    never blocked for long, nothing leaks."""
    from cspike import Client, Key
    srv = aerospike_server_factory(nodes=3)
    keys = [Key(ns, set_name, f"k{i}") for i in range(48)]
    log = WriteLog()
    counts = {"ops": 0}

    async def faults(t0):
        plan = [(0.4, srv.kill, (1,)), (1.2, srv.restart, (1,)), (1.8, srv.migrate, ((0, 2047), 0)),
                (2.3, srv.kill, (2,)), (3.0, srv.restart, (2,))]
        for at, fn, args in plan:
            await asyncio.sleep(max(0, t0 + at - time.monotonic()))
            # off the loop: only the client may be judged for blocking it
            await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def main():
        async with Client(srv.seeds, **CLIENT_KW) as c:
            s = c.create_session(behavior(total_timeout=1.0, socket_timeout=0.3, max_retries=2,
                                          retry_delay=0.02))
            gaps = []

            async def ticker():
                last = time.monotonic()
                while True:
                    await asyncio.sleep(0.01)
                    now = time.monotonic()
                    gaps.append(now - last)
                    last = now

            tick = asyncio.ensure_future(ticker())
            t0 = time.monotonic()
            stop_at = t0 + 3.5
            rng = random.Random(1)
            workers = [_mixed_worker(s, keys, w, log, stop_at, random.Random(rng.random()), counts)
                       for w in range(64)]
            await asyncio.wait_for(asyncio.gather(faults(t0), *workers), 30)
            tick.cancel()
            await await_for(lambda: inflight(c) == 0, 10, what="in-flight commands to finish")
            await await_for(lambda: len(c.nodes()) == 3, 10, what="the cluster to re-form")
            final = await _final_state(s, keys)
            # (generous: this box is shared, and the scheduler alone can pause us)
            assert max(gaps) < 1.0, f"the loop was blocked for {max(gaps):.2f} s"
            return final

    with no_leaks("after the node-kill run"):
        final = arun(main())
    log.check(final)
    assert log.acked() > 500, (log.acked(), dict(log.errors))
    assert counts["ops"] > 1000


def test_connection_dropped_mid_command(aerospike_server_factory, arun, ns, set_name):
    """The server closes the connection of the next command without
    replying: reads retry and succeed; a write without retries fails in
    doubt (ConnectionError); later commands get their own answers."""
    from cspike import Client, ConnectionError, Key
    srv = aerospike_server_factory()

    async def main():
        async with Client(srv.seeds, **CLIENT_KW) as c:
            r = c.create_session(behavior(max_retries=2, total_timeout=2, socket_timeout=1))
            w = c.create_session(behavior(max_retries=0, total_timeout=2, socket_timeout=1))
            keys = [Key(ns, set_name, i) for i in range(20)]
            await asyncio.gather(*[w.put(k, {"id": k.value}) for k in keys])
            for i in range(5):
                srv.close_after(0, 1, drop=True)
                assert (await r.get(keys[i])).bins == {"id": i}
                srv.close_after(0, 1, drop=True)
                with pytest.raises(ConnectionError) as ei:
                    await w.put(keys[i], {"id": i, "x": 1})
                assert ei.value.in_doubt
                got = await asyncio.gather(*[r.get(k) for k in keys])
                assert [g.bins["id"] for g in got] == list(range(20))
            assert inflight(c) == 0

    arun(main())


def test_pooled_connection_closed_by_server_is_not_used(aerospike_server_factory, arun, ns,
                                                         set_name):
    """A command whose connection the server closes right after replying
    succeeds; once its FIN has arrived, the closed connection must not be
    handed to the next command: a write without retries sent on it would
    fail in doubt although the server never saw it."""
    from cspike import Client, Key
    srv = aerospike_server_factory()

    async def main():
        async with Client(srv.seeds, **CLIENT_KW) as c:
            w = c.create_session(behavior(max_retries=0, total_timeout=2, socket_timeout=1))
            k = Key(ns, set_name, "k")
            await w.put(k, {"v": 0})
            for i in range(1, 6):
                srv.close_after(0, 1, drop=False)   # reply, then close
                assert (await w.get(k)).bins == {"v": i - 1}
                await asyncio.sleep(0.01)            # the FIN is here before the next command
                await w.put(k, {"v": i})             # must not fail: nothing went wrong

    arun(main())


def _outcome(fn):
    try:
        v = fn()
    except Exception as e:  # noqa: BLE001
        return ("raise", type(e).__name__, getattr(e, "result_code", None), getattr(e, "in_doubt", None))
    return ("ok", getattr(v, "bins", v))


async def _aoutcome(fn):
    try:
        v = await fn()
    except Exception as e:  # noqa: BLE001
        return ("raise", type(e).__name__, getattr(e, "result_code", None), getattr(e, "in_doubt", None))
    return ("ok", getattr(v, "bins", v))


@pytest.mark.timeout(60)
def test_faults_give_the_same_errors_as_sync(aerospike_server_factory, arun, ns, set_name):
    """Corrupt frames and chosen server result codes: the async client
    raises what the sync client raises (class, code, in-doubt flag), and the
    connection that carried a corrupt frame is not reused."""
    from cspike import Client, Key, SyncClient
    from cspike.testing import CORRUPT_MODES
    srv = aerospike_server_factory()
    b = behavior(max_retries=0, total_timeout=2, socket_timeout=1)
    b_retry = behavior(max_retries=2, total_timeout=2, socket_timeout=1)
    sc = SyncClient(srv.seeds, **CLIENT_KW).connect()
    ss, ss_retry = sc.create_session(b), sc.create_session(b_retry)
    keys = [Key(ns, set_name, i) for i in range(10)]
    for k in keys:
        ss.put(k, {"id": k.value})

    faults = [("corrupt", m) for m in CORRUPT_MODES] + [("fail", rc) for rc in (4, 8, 14, 18, 22, 11)]

    def arm(kind, arg, count=1):
        if kind == "corrupt":
            srv.corrupt_next(0, arg, count)
        else:
            srv.fail_next(0, arg, count)

    expected = {}
    for kind, arg in faults:
        for op in ("get", "put"):
            arm(kind, arg)
            fn = (lambda: ss.get(keys[0])) if op == "get" else (lambda: ss.put(keys[0], {"id": 0}))
            expected[(kind, arg, op)] = _outcome(fn)
            srv.clear_faults(0)
        arm(kind, arg)
        expected[(kind, arg, "get-retry")] = _outcome(lambda: ss_retry.get(keys[1]))
        srv.clear_faults(0)
    sc.close()

    async def main():
        got = {}
        async with Client(srv.seeds, **CLIENT_KW) as c:
            s, s_retry = c.create_session(b), c.create_session(b_retry)
            for kind, arg in faults:
                for op in ("get", "put"):
                    arm(kind, arg)
                    fn = (lambda: s.get(keys[0])) if op == "get" else (lambda: s.put(keys[0], {"id": 0}))
                    got[(kind, arg, op)] = await _aoutcome(fn)
                    srv.clear_faults(0)
                    # whatever happened, the next commands read their own records
                    recs = await asyncio.gather(*[s.get(k) for k in keys])
                    assert [r.bins["id"] for r in recs] == [k.value for k in keys], (kind, arg, op)
                arm(kind, arg)
                got[(kind, arg, "get-retry")] = await _aoutcome(lambda: s_retry.get(keys[1]))
                srv.clear_faults(0)
            assert inflight(c) == 0
        return got

    got = arun(main())
    diffs = {k: (got[k], e) for k, e in expected.items() if got[k] != e}
    assert not diffs, "async != sync:\n" + "\n".join(f"{k}: async {a} sync {e}" for k, (a, e) in diffs.items())


def test_partition_moved_under_load(aerospike_server_factory, arun, ns, set_name):
    """Partitions move to another node while 500 commands are in flight: the
    old master answers 'partition unavailable' and commands retry on the
    new map; all complete and read back."""
    from cspike import Client, Key
    srv = aerospike_server_factory(nodes=3)

    async def main():
        async with Client(srv.seeds, **CLIENT_KW) as c:
            # Retries span more than a tend interval (0.25 s): the client
            # learns the new map before they run out.
            s = c.create_session(behavior(max_retries=6, retry_delay=0.1, total_timeout=3,
                                          socket_timeout=1))
            keys = [Key(ns, set_name, i) for i in range(500)]
            await asyncio.gather(*[s.put(k, {"v": 0}) for k in keys])
            for rnd in range(1, 4):
                target = rnd % 3
                futs = [s.put(k, {"v": rnd}) for k in keys]
                srv.migrate("all", target)
                res = await asyncio.gather(*futs, return_exceptions=True)
                ok = [k for k, r in zip(keys, res) if r is None]
                assert len(ok) == len(keys), [r for r in res if r is not None][:3]
                await await_for(lambda: all(master_of(c, k) == srv.nodes[target][0] for k in keys[:20]),
                                5, what="the client to learn the new map")
                got = await asyncio.gather(*[s.get(k) for k in keys])
                assert all(g.bins == {"v": rnd} for g in got)

    arun(main())


# --------------------------------------------------------------------------- answers split across reads


def _as_msg(result=0, generation=1, ops=b"", n_ops=0) -> bytes:
    import struct
    body = struct.pack(">BBBBBBIIIHH", 22, 0, 0, 0, 0, result, generation, 0, 0, 0, n_ops) + ops
    return struct.pack(">Q", (2 << 56) | (3 << 48) | len(body)) + body


def _int_bin(name: str, value: int) -> bytes:
    import struct
    nb = name.encode()
    rest = struct.pack(">BBBB", 1, 1, 0, len(nb)) + nb + struct.pack(">q", value)
    return struct.pack(">I", len(rest)) + rest


def _chunked(data: bytes, sizes: list[int]):
    """Send data in pieces of these sizes (the rest last), 20 ms apart, so
    the client's reads return exactly those pieces."""
    import fakenode
    pieces, pos = [], 0
    for n in sizes:
        pieces.append(data[pos:pos + n])
        pos += n
    action = data[pos:]
    for p in reversed(pieces):
        action = fakenode.Then(p, fakenode.Delay(0.02, action))
    return action


SPLITS = {
    "9+rest": [9],
    "8+rest": [8],
    "1-byte reads": [1] * 12,
    "9+9+9+rest": [9, 9, 9],
    "30+9": [30],
}


@pytest.mark.fake_server
@pytest.mark.parametrize("split", list(SPLITS))
def test_answers_split_across_reads(arun, split):
    """A node's answer arriving in pieces (here: of 9 bytes, 1 byte...) is
    reassembled by both drivers: put and get succeed with the same results
    on the sync and the async client (fake node: works with any target)."""
    import os
    import sys
    golden = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "golden")
    if golden not in sys.path:
        sys.path.insert(0, golden)
    import fakenode
    from cspike import Client, Key, SyncClient

    put_reply = _as_msg(generation=1)
    get_reply = _as_msg(generation=2, ops=_int_bin("a", 77) + _int_bin("bb", -5), n_ops=2)
    sizes = SPLITS[split]
    b = behavior(total_timeout=2, socket_timeout=1, max_retries=0)
    with fakenode.FakeNode(fakenode.default_info("S9")) as node:
        k = Key("test", "split", "k")
        results = {}
        node.push(_chunked(put_reply, sizes), _chunked(get_reply, sizes))
        c = SyncClient(node.seed, **CLIENT_KW).connect()
        try:
            s = c.create_session(b)
            results["sync"] = (_outcome(lambda: s.put(k, {"a": 77})), _outcome(lambda: s.get(k)))
        finally:
            c.close()

        async def main():
            async with Client(node.seed, **CLIENT_KW) as ac:
                s = ac.create_session(b)
                return (await _aoutcome(lambda: s.put(k, {"a": 77})),
                        await _aoutcome(lambda: s.get(k)))

        node.push(_chunked(put_reply, sizes), _chunked(get_reply, sizes))
        results["async"] = arun(main())
    expected = (("ok", None), ("ok", {"a": 77, "bb": -5}))
    assert results == {"sync": expected, "async": expected}, results


@pytest.mark.fake_server
def test_socket_timeout_is_an_idle_timeout(arun):
    """Aerospike's socket timeout bounds the time a socket stays idle, not
    the whole answer: an answer trickling in (4 bytes every 100 ms, ~1.7 s in
    all) never leaves the socket idle for 0.4 s, so with socket_timeout 0.4 s
    and total_timeout 5 s the get succeeds -- on both drivers alike (a large
    record on a slow link under READ_FAST's 50 ms socket timeout is the real
    case)."""
    import os
    import sys
    golden = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "golden")
    if golden not in sys.path:
        sys.path.insert(0, golden)
    import fakenode
    from cspike import Client, Key, SyncClient

    get_reply = _as_msg(generation=2, ops=_int_bin("a", 77) + _int_bin("bb", -5), n_ops=2)

    def trickle(data):
        pieces = [data[i:i + 4] for i in range(0, len(data), 4)]
        action = pieces[-1]
        for p in reversed(pieces[:-1]):
            action = fakenode.Then(p, fakenode.Delay(0.1, action))
        return action

    b = behavior(total_timeout=5, socket_timeout=0.4, max_retries=0)
    k = Key("test", "idle", "k")
    with fakenode.FakeNode(fakenode.default_info("S8")) as node:
        node.push(trickle(get_reply))
        c = SyncClient(node.seed, **CLIENT_KW).connect()
        try:
            sync = _outcome(lambda: c.create_session(b).get(k))
        finally:
            c.close()

        async def main():
            async with Client(node.seed, **CLIENT_KW) as ac:
                return await _aoutcome(lambda: ac.create_session(b).get(k))

        node.push(trickle(get_reply))
        got = arun(main())
    expected = ("ok", {"a": 77, "bb": -5})
    assert {"sync": sync, "async": got} == {"sync": expected, "async": expected}
