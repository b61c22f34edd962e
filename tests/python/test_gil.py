"""cspike keeps the GIL off on free-threaded CPython.

On a free-threaded interpreter (3.13t) the GIL is enabled at run time as soon
as an extension module that does not declare ``Py_mod_gil`` is imported
(unless ``PYTHON_GIL=0`` forces it off, which would hide exactly that).  So
with ``PYTHON_GIL`` unset, a fresh interpreter imports ``cspike`` and every
public module of the package, then uses the main APIs against the server
(sync client and sessions, builders, batch, exceptions, info, threads,
the asyncio client, AsyncPool, the embedded server's module) and checks
``sys._is_gil_enabled()`` after every step.  A fresh interpreter is used so
that nothing pytest or a plugin imported can be blamed or hide a change.

On a GIL build this test skips with the reason; the free-threaded leg
(``make test-ft``) sets ``CSPIKE_REQUIRE_FREE_THREADING=1``, which turns
that skip into a failure, so the leg can never pass without checking.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import textwrap

import pytest

pytestmark = pytest.mark.timeout(240)

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
REQUIRED = os.environ.get("CSPIKE_REQUIRE_FREE_THREADING") == "1"

SCRIPT = textwrap.dedent(r'''
    import asyncio, importlib, json, os, pkgutil, sys, threading, warnings
    warnings.simplefilter("always")
    seeds, ns, set_name = sys.argv[1], sys.argv[2], sys.argv[3]
    steps = []

    def check(step):
        steps.append([step, sys._is_gil_enabled()])

    check("interpreter start")
    import cspike
    check("import cspike")

    mods = []
    for m in pkgutil.walk_packages(cspike.__path__, "cspike."):
        last = m.name.rsplit(".", 1)[1]
        if last.startswith("_"):
            continue  # private, and __main__ runs the CLI
        importlib.import_module(m.name)
        mods.append(m.name)
        check("import " + m.name)

    from cspike import (AerospikeError, AsyncPool, Behavior, Client, DataSet,
                        Key, Operation as Op, RecordNotFoundError, SyncClient,
                        calc_digest)
    from cspike.testing import find_binary
    find_binary()
    ds = DataSet.of(ns, set_name)
    assert len(calc_digest(set_name, "k")) == 20
    check("types, digest, testing")

    with SyncClient(seeds) as client:
        s = client.create_session(Behavior.DEFAULT)
        k = ds.id("gil-sync")
        s.put(k, {"a": 1, "s": "x", "f": 1.5, "b": b"\x00", "l": [1, 2], "m": {"k": 1}})
        assert s.get(k).bins["a"] == 1
        assert s.exists(k) is True
        s.touch(k)
        rec = s.operate(k, [Op.add("a", 2), Op.get("a")])
        assert rec.results[-1] == 3
        try:
            s.get(ds.id("gil-missing"))
        except RecordNotFoundError as e:
            assert isinstance(e, AerospikeError)
        else:
            raise AssertionError("no RecordNotFoundError")
        check("sync session")

        if hasattr(s, "upsert"):
            list(s.upsert(ds.id("gil-b1")).put({"x": 1}).execute())
            rows = list(s.query(ds.ids("gil-b1", "gil-sync")).execute())
            assert len(rows) == 2
            list(s.batch().upsert(ds.id("gil-b2")).put({"y": 2})
                  .delete(ds.id("gil-b1")).execute())
            check("builders and batch")

        client.info("build")
        client.node_names()
        check("info")

        errors = []
        def worker(i):
            try:
                ws = client.create_session()
                for j in range(200):
                    wk = ds.id(f"gil-t{i}-{j % 10}")
                    ws.put(wk, {"v": j})
                    assert ws.get(wk).bins["v"] == j
            except BaseException as e:  # reported below
                errors.append(repr(e))
        ts = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in ts: t.start()
        for t in ts: t.join()
        assert not errors, errors
        check("threads")
        s.delete(k)

    async def aio():
        async with Client(seeds) as c:
            a = c.create_session()
            ak = ds.id("gil-aio")
            await a.put(ak, {"a": 1})
            assert (await a.get(ak)).bins == {"a": 1}
            try:
                await a.get(ds.id("gil-missing"))
            except RecordNotFoundError:
                pass
            await asyncio.gather(*(a.put(ds.id(f"gil-aio{i}"), {"i": i}) for i in range(50)))
            await a.delete(ak)
    asyncio.run(aio())
    check("asyncio client")

    async def pooled():
        async def work(c, x):
            ps = c.create_session()
            await ps.put(ds.id(f"gil-pool{x}"), {"x": x})
            return (await ps.get(ds.id(f"gil-pool{x}"))).bins["x"]
        async with AsyncPool(lambda: Client(seeds), loop_count=2) as pool:
            assert await pool.map(work, range(8)) == list(range(8))
    asyncio.run(pooled())
    check("AsyncPool")

    print("GILCHECK " + json.dumps({"modules": mods, "steps": steps}))
''')


@pytest.mark.skipif(not FREE_THREADED and not REQUIRED,
                    reason="needs free-threaded CPython (make test-ft runs it on 3.13t)")
def test_gil_stays_off_after_using_every_public_module(aerospike_seeds, request):
    if not FREE_THREADED:
        pytest.fail(f"CSPIKE_REQUIRE_FREE_THREADING=1 but {sys.executable} "
                    f"({sys.version}) is not a free-threaded build")
    assert "PYTHON_GIL" not in os.environ, (
        "PYTHON_GIL is set: it would force the GIL state and hide a module "
        "that turns it back on; run with PYTHON_GIL unset")
    assert not sys._is_gil_enabled(), "the GIL is already on in the pytest process"

    ns = os.environ.get("CSPIKE_TEST_NAMESPACE", "test")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "m")
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_GIL"}
    p = subprocess.run([sys.executable, "-c", SCRIPT, aerospike_seeds, ns, f"gil_{worker}"],
                       env=env, capture_output=True, text=True, timeout=200)
    out = p.stdout + p.stderr
    assert p.returncode == 0, f"GIL check script failed:\n{out}"
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("GILCHECK ")]
    assert line, out
    res = json.loads(line[-1][len("GILCHECK "):])
    on = [step for step, gil in res["steps"] if gil]
    assert not on, (f"the GIL was enabled at: {on}\n{out}")
    # It really walked the package and used it.
    assert "cspike.aio" in res["modules"] and "cspike.testing" in res["modules"], res
    assert [s for s, _ in res["steps"]][-1] == "AsyncPool", res
    assert "GIL" not in p.stderr, p.stderr  # "The global interpreter lock (GIL) has been enabled..."

    # And the test process itself, which imported cspike and ran tests with it.
    import cspike  # noqa: F401
    assert not sys._is_gil_enabled()
