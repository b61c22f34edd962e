"""Free-threaded CPython (3.13t): importing cspike and using every public
module leaves the GIL disabled.  Checked in a child interpreter with
PYTHON_GIL unset (the test run itself may force it with PYTHON_GIL=0,
which would hide a module that asks for the GIL)."""

from __future__ import annotations

import os
import sys

import pytest

from aiohelpers import run_isolated

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not hasattr(sys, "_is_gil_enabled"),
                       reason="needs a free-threaded CPython (3.13t or newer)"),
]

CHILD = r"""
import asyncio, importlib, pkgutil, sys, threading, warnings
warnings.simplefilter("always")

def gil(where):
    on = sys._is_gil_enabled()
    print(f"GIL {'ON ' if on else 'off'} after {where}", flush=True)
    return on

assert not gil("start")
import cspike
problems = []
if gil("import cspike"):
    problems.append("import cspike")

# every module of the package (modules needing optional peers are reported, not fatal)
for m in pkgutil.walk_packages(cspike.__path__, "cspike."):
    if m.name.endswith("__main__"):
        continue
    try:
        importlib.import_module(m.name)
    except ImportError as e:
        print(f"skip {m.name}: {e}", flush=True)
        continue
    if gil(f"import {m.name}"):
        problems.append(f"import {m.name}")

from cspike import (AsyncPool, Behavior, Client, DataSet, Key, Operation, SyncClient,
                    ErrorStrategy)
from cspike.testing import Server

with Server(nodes=1) as seeds:
    # sync client on several threads
    with SyncClient(seeds) as c:
        s = c.create_session(Behavior.DEFAULT)
        def work(t):
            for i in range(200):
                k = Key("test", "gil", f"{t}-{i}")
                s.put(k, {"v": i})
                assert s.get(k).bins == {"v": i}
                s.operate(k, [Operation.add("v", 1), Operation.get("v")])
                s.exists(k); s.touch(k); s.delete(k)
        ts = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        [t.start() for t in ts]; [t.join() for t in ts]
        ds = DataSet("test", "gil")
        list(s.upsert(ds.id(1)).put({"a": 1}).execute())
        list(s.query(ds.id(1), ds.id(2)).respond_all_keys().execute())
        s.batch().upsert(ds.id(3)).put({"b": 1}).delete(ds.id(1)).execute(on_error=lambda *a: None)
        c.info("build"); c.nodes()
    if gil("SyncClient, sessions, builders, batch, info"):
        problems.append("sync client use")

    async def amain():
        async with Client(seeds) as c:
            s = c.create_session()
            await asyncio.gather(*[s.put(Key("test", "gil", i), {"v": i}) for i in range(500)])
            await asyncio.gather(*[s.get(Key("test", "gil", i)) for i in range(500)])
            await (await s.query(Key("test", "gil", 1)).execute()).collect()
            await s.batch().upsert(Key("test", "gil", 2)).put({"x": 1}).execute()
        async def fn(client, x):
            sess = client.create_session()
            await sess.put(Key("test", "gil", f"p{x}"), {"x": x})
            return (await sess.get(Key("test", "gil", f"p{x}"))).bins["x"]
        async with AsyncPool(lambda: Client(seeds), loop_count=4) as pool:
            assert await pool.map(fn, range(16)) == list(range(16))
    asyncio.run(amain())
    if gil("asyncio Client and AsyncPool"):
        problems.append("async client / AsyncPool use")

if problems:
    print("PROBLEMS:", problems)
    sys.exit(1)
print("OK")
"""


def test_gil_stays_disabled_after_import_and_use():
    env = dict(os.environ)
    env.pop("PYTHON_GIL", None)
    rc, out = run_isolated(CHILD, timeout=90, env=env)
    assert rc == 0 and "OK" in out, out[-6000:]
    assert "GIL has been enabled" not in out, out[-6000:]


def test_this_run_has_the_gil_disabled():
    """The concurrency suite is meant to run with the GIL off on 3.13t."""
    import cspike  # noqa: F401
    if os.environ.get("PYTHON_GIL") == "1":
        pytest.skip("PYTHON_GIL=1 forces the GIL on for this run")
    assert sys._is_gil_enabled() is False
