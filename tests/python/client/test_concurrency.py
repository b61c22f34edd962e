"""16 threads x 5,000 mixed operations on one shared client and session,
single node and 3 nodes; afterwards every acknowledged write is read back.
Plus the same shape on asyncio (one loop, many tasks) and sessions shared
between threads while the client tends."""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time

import pytest

from chelpers import behavior

THREADS = int(os.environ.get("CSPIKE_TEST_THREADS", "16"))
OPS = int(os.environ.get("CSPIKE_TEST_OPS", "5000"))
KEYS_PER_THREAD = 200


def _run_thread(s, ns, set_name, t, state, failures):
    """Mixed ops on keys owned by this thread, tracking what the server
    must hold: {key: bins} (None = deleted / never written)."""
    from cspike import AerospikeError, Key, RecordNotFoundError
    from cspike import Operation as Op
    rnd = random.Random(1000 + t)
    mine = state[t]
    for i in range(OPS):
        kv = f"{t}-{rnd.randrange(KEYS_PER_THREAD)}"
        k = Key(ns, set_name, kv)
        want = mine.get(kv)
        r = rnd.random()
        try:
            if r < 0.30:
                bins = {"t": t, "i": i, "s": f"v{i}", "l": [i, str(i)]}
                s.put(k, bins)
                mine[kv] = dict(want or {}, **bins)
            elif r < 0.55:
                try:
                    got = s.get(k).bins
                except RecordNotFoundError:
                    got = None
                if got != want:
                    failures.append(("get", kv, want, got))
            elif r < 0.70:
                rec = s.operate(k, [Op.add("n", 1), Op.get("n")])
                n = (want or {}).get("n", 0) + 1
                if rec.bins.get("n") != n:
                    failures.append(("add", kv, n, rec.bins))
                mine[kv] = dict(want or {}, n=n)
            elif r < 0.80:
                existed = s.delete(k)
                if existed != (want is not None):
                    failures.append(("delete", kv, want is not None, existed))
                mine[kv] = None
            elif r < 0.90:
                e = s.exists(k)
                if e != (want is not None):
                    failures.append(("exists", kv, want is not None, e))
            else:
                rec = s.operate(k, [Op.append("a", "x"), Op.get("a")])
                a = (want or {}).get("a", "") + "x"
                if rec.bins.get("a") != a:
                    failures.append(("append", kv, a, rec.bins))
                mine[kv] = dict(want or {}, a=a)
        except AerospikeError as e:  # nothing may fail on a healthy cluster
            failures.append(("error", kv, type(e).__name__, str(e)))
            # The write may or may not have happened: stop tracking the key.
            mine.pop(kv, None)
            mine[kv] = _unknown


_unknown = object()


def _verify(s, ns, set_name, state, failures):
    from cspike import Key, RecordNotFoundError
    checked = 0
    for t, mine in state.items():
        for kv, want in mine.items():
            if want is _unknown:
                continue
            try:
                got = s.get(Key(ns, set_name, kv)).bins
            except RecordNotFoundError:
                got = None
            if got != want:
                failures.append(("final", kv, want, got))
            checked += 1
    return checked


@pytest.mark.timeout(600)
@pytest.mark.parametrize("which", ["client", "cluster_client"])
def test_threads_mixed_ops_every_ack_read_back(request, ns, set_name, which):
    client = request.getfixturevalue(which)
    s = client.create_session(behavior(total_timeout=10.0, socket_timeout=5.0))
    state = {t: {} for t in range(THREADS)}
    failures: list = []
    threads = [threading.Thread(target=_run_thread,
                                args=(s, ns, set_name, t, state, failures))
               for t in range(THREADS)]
    t0 = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join(540)
    elapsed = time.monotonic() - t0
    assert not any(th.is_alive() for th in threads), "a worker hung"
    checked = _verify(s, ns, set_name, state, failures)
    total = THREADS * OPS
    print(f"\n{which}: {total} ops on {THREADS} threads in {elapsed:.1f} s "
          f"({total / elapsed:,.0f} ops/s); {checked} keys verified")
    assert not failures, f"{len(failures)} failures, e.g. {failures[:5]}"
    assert checked >= THREADS * KEYS_PER_THREAD * 0.9


@pytest.mark.timeout(300)
def test_asyncio_many_tasks(any_client, ns, set_name):
    from cspike import Client, Key
    from cspike import Operation as Op
    seeds = ",".join(f"{h}:{p}" for _n, h, p in any_client.nodes())
    n_tasks, per_task = 64, 100

    async def task(s, t):
        for i in range(per_task):
            k = Key(ns, set_name, f"a{t}-{i % 10}")
            await s.put(k, {"t": t, "i": i})
            rec = await s.get(k)
            assert rec.bins["t"] == t and rec.bins["i"] == i
            rec = await s.operate(k, [Op.add("c", 1), Op.get("c")])
            assert rec.bins["c"] >= 1

    async def main():
        async with Client(seeds) as c:
            s = c.create_session()
            await asyncio.gather(*(task(s, t) for t in range(n_tasks)))
            for t in range(n_tasks):
                for j in range(10):
                    rec = await s.get(Key(ns, set_name, f"a{t}-{j}"))
                    assert rec.bins["t"] == t
                    assert rec.bins["c"] == per_task // 10

    asyncio.run(main())


@pytest.mark.timeout(300)
def test_async_from_several_loops_and_threads(any_client, ns, set_name):
    """One Client used from 4 threads, each running its own event loop."""
    from cspike import Client, Key
    seeds = ",".join(f"{h}:{p}" for _n, h, p in any_client.nodes())
    c = Client(seeds)
    c.connect_blocking()
    errors = []

    def run(t):
        async def main():
            s = c.create_session()
            ks = [Key(ns, set_name, f"l{t}-{i}") for i in range(300)]
            await asyncio.gather(*(s.put(k, {"v": i}) for i, k in enumerate(ks)))
            recs = await asyncio.gather(*(s.get(k) for k in ks))
            assert [r.bins["v"] for r in recs] == list(range(300))
        try:
            asyncio.run(main())
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    c.close_blocking()
    assert not any(th.is_alive() for th in threads)
    assert not errors, errors
