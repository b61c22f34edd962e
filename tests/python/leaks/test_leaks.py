"""No leaks on the hot paths: 100,000 operations (put, get, operate, exists
and the exception paths: a missing record, a refused insert, a client-side
TypeError), then the process must look as it did before them.

Checked after a warm-up (pools, caches and free lists filled) and a
gc.collect(), between the start and the end of the measured run:

* ``sys.getrefcount`` of every object the loop shares (the key, the bins
  dict and its values, bin names, the session, the client, the exception
  classes, the operations list) is unchanged: a missing Py_DECREF in the
  binding shows up here exactly;
* the number of gc-tracked objects and of allocated Python memory blocks
  (``sys.getallocatedblocks``) is flat: one leaked object per operation
  would be 100,000 blocks;
* the C heap is flat: the bytes malloc has handed out (glibc's
  ``mallinfo2``: every malloc of the C core and the binding), or, under
  ASan (LD_PRELOAD of the ASan runtime with PYTHONMALLOC=malloc, where
  Python's blocks are plain mallocs too), the allocator's live heap bytes
  (``__sanitizer_get_current_allocated_bytes``); and the RSS stays within
  a looser bound.

The asyncio client gets the same check with 20,000 operations.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import os
import sys

import pytest

pytestmark = pytest.mark.timeout(900)

OPS = 100_000          # measured operations of the sync test
AIO_OPS = 20_000       # measured operations of the asyncio test
PER_ITER = 5           # operations per loop iteration (see _sync_iteration)
# Allowed growth over the measured run.  The C heap is measured by what the
# allocator has handed out (glibc's mallinfo2, or ASan's live bytes), which
# is exact, unlike RSS (freed memory is reused before RSS grows): one leaked
# 32-byte chunk every four operations is 800 kB over 100,000 operations.
MEM_LIMIT = 256 * 1024
RSS_LIMIT = 8 * 1024 * 1024  # a backstop; ASan's quarantine makes RSS grow
BLOCKS_LIMIT = 2_000
GC_OBJECTS_LIMIT = 500


def _asan_live_bytes():
    """ASan's live heap bytes when the ASan runtime is loaded, else None."""
    if "libasan" not in os.environ.get("LD_PRELOAD", ""):
        return None
    fn = ctypes.CDLL(None).__sanitizer_get_current_allocated_bytes
    fn.restype = ctypes.c_size_t
    return fn


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]


def _glibc_in_use():
    """glibc's bytes in use (all arenas, plus mmapped chunks), else None."""
    try:
        fn = ctypes.CDLL(None).mallinfo2
    except AttributeError:
        return None
    fn.restype = _Mallinfo2

    def in_use() -> int:
        m = fn()
        return m.uordblks + m.hblkhd
    return in_use


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Meter:
    """Memory, blocks, gc objects and refcounts of the shared objects."""

    def __init__(self, shared: dict):
        self.shared = shared
        self.heap = _asan_live_bytes()
        self.kind = "ASan live heap bytes"
        # Under ASan, RSS holds the quarantine of freed blocks (up to 256 MB),
        # so only the live bytes (exact) are bounded there.
        self.rss_limit = None if self.heap else RSS_LIMIT
        if self.heap is None:
            self.heap = _glibc_in_use()
            self.kind = "malloc bytes in use"
        assert self.heap is not None, "no way to measure the C heap (not glibc, no ASan)"

    def snap(self) -> dict:
        for _ in range(3):
            gc.collect()
        return {
            "mem": self.heap(),
            "rss": _rss(),
            "blocks": sys.getallocatedblocks(),
            "gc_objects": len(gc.get_objects()),
            "refs": {name: sys.getrefcount(o) for name, o in self.shared.items()},
        }

    def check(self, before: dict, after: dict, ops: int) -> None:
        grew = {k: after[k] - before[k] for k in ("mem", "rss", "blocks", "gc_objects")}
        report = (f"after {ops} operations: {self.kind} {before['mem']} -> {after['mem']} "
                  f"({grew['mem']:+d}), RSS {grew['rss']:+d}, blocks {grew['blocks']:+d}, "
                  f"gc objects {grew['gc_objects']:+d}")
        print(report)
        changed = {name: (before["refs"][name], after["refs"][name])
                   for name in self.shared if before["refs"][name] != after["refs"][name]}
        assert not changed, f"refcounts changed (before, after): {changed}; {report}"
        assert grew["gc_objects"] < GC_OBJECTS_LIMIT, report
        assert grew["blocks"] < BLOCKS_LIMIT, report
        assert grew["mem"] < MEM_LIMIT, report
        if self.rss_limit is not None:
            assert grew["rss"] < self.rss_limit, report


def _shared_objects(client, session, k, missing, bins, ops):
    import cspike
    return {
        "client": client, "session": session, "key": k, "missing_key": missing,
        "bins": bins, "ops": ops,
        **{f"bins[{n!r}]": v for n, v in bins.items()},
        **{f"bin name {n!r}": n for n in bins},
        "RecordNotFoundError": cspike.RecordNotFoundError,
        "RecordExistsError": cspike.RecordExistsError,
        "TypeError": TypeError,
    }


def _sync_iteration(s, k, missing, bins, ops, i, RecordNotFoundError, RecordExistsError):
    s.put(k, bins)
    rec = s.get(k)
    assert rec.bins["n"] == bins["n"]
    try:
        s.get(missing)
        raise AssertionError("no RecordNotFoundError")
    except RecordNotFoundError:
        pass
    res = s.operate(k, ops)
    assert res.results[-1] is not None
    if i % 2:
        try:
            s.put(k, {"bad": object()})  # not a storable value: client-side TypeError
            raise AssertionError("no TypeError")
        except TypeError:
            pass
    else:
        try:
            list(s.insert(k).put({"x": 1}).execute())  # exists: refused by the server
            raise AssertionError("no RecordExistsError")
        except RecordExistsError:
            pass


def test_sync_100k_ops_leave_no_trace(aerospike_seeds):
    from cspike import (DataSet, Operation as Op, RecordExistsError,
                        RecordNotFoundError, SyncClient)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "m")
    ds = DataSet.of(os.environ.get("CSPIKE_TEST_NAMESPACE", "test"), f"leaks_{worker}")
    k, missing = ds.id("leak-key"), ds.id("leak-missing")
    bins = {"n": 2**40 + 7, "f": 1.25, "s": "leak-check-string" * 4,
            "b": bytes(range(200)), "l": [1, "two", 3.0, b"4"], "m": {"k": [1, 2]}}
    ops = [Op.add("c", 1), Op.get("s"), Op.get("c")]
    with SyncClient(aerospike_seeds) as client:
        s = client.create_session()
        s.delete(missing)
        meter = Meter(_shared_objects(client, s, k, missing, bins, ops))
        args = (s, k, missing, bins, ops)
        for i in range(OPS // PER_ITER // 10):      # warm-up: 10%
            _sync_iteration(*args, i, RecordNotFoundError, RecordExistsError)
        before = meter.snap()
        for i in range(OPS // PER_ITER):
            _sync_iteration(*args, i, RecordNotFoundError, RecordExistsError)
        after = meter.snap()
        s.delete(k)
    meter.check(before, after, OPS)


def test_aio_20k_ops_leave_no_trace(aerospike_seeds):
    from cspike import Client, DataSet, Operation as Op, RecordNotFoundError
    worker = os.environ.get("PYTEST_XDIST_WORKER", "m")
    ds = DataSet.of(os.environ.get("CSPIKE_TEST_NAMESPACE", "test"), f"aleaks_{worker}")
    k, missing = ds.id("leak-key"), ds.id("leak-missing")
    bins = {"n": 2**40 + 9, "s": "aio-leak" * 8, "b": bytes(100), "l": [1, 2, 3]}
    ops = [Op.add("c", 1), Op.get("c")]

    async def run(s, n):
        for i in range(n // 4):
            await s.put(k, bins)
            rec = await s.get(k)
            assert rec.bins["n"] == bins["n"]
            try:
                await s.get(missing)
                raise AssertionError("no RecordNotFoundError")
            except RecordNotFoundError:
                pass
            await s.operate(k, ops)

    async def settle():
        # Let the loop run the callbacks of the last commands' futures.
        for _ in range(5):
            await asyncio.sleep(0)

    async def main():
        async with Client(aerospike_seeds) as client:
            s = client.create_session()
            await s.delete(missing)
            meter = Meter(_shared_objects(client, s, k, missing, bins, ops))
            await run(s, AIO_OPS // 10)
            await settle()
            before = meter.snap()
            await run(s, AIO_OPS)
            await settle()
            after = meter.snap()
            await s.delete(k)
            return meter, before, after

    loop = asyncio.new_event_loop()
    try:
        meter, before, after = loop.run_until_complete(main())
    finally:
        loop.close()
    meter.check(before, after, AIO_OPS)
