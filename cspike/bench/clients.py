"""The clients the bench drives, each behind the same small adapter.

An adapter hands the worker's loops plain callables, so every client pays the
same harness cost:

    sync_open(mode)            -> (get(key), put(key, bins), close())
                                  batch: (read_many(keys), write_many(keys, bins), close())
                                  read_many / write_many return the number of keys that failed
    await async_open(mode)     -> the same with awaitables, and an async close
    pool(loops)                -> async context manager with .map(fn, inputs) (AsyncPool shape)
    await pool_session_ops(client, mode) -> (get, put, aclose) on one pool client

Each is used the way its documentation suggests for speed: cspike and the
Aerospike Python SDK through the same session / builder / AsyncPool shape
(psdk-api.md 1.5, 1.6, 1.10, 1.20), keys built once where the API has a key
object; the official client and aerospike-py with their tuple keys.  The
official client has no asyncio API, so its async rows wrap the sync client in
``loop.run_in_executor(None, ...)`` (the default executor), the way its
users do.

This file is loaded by the worker with whatever interpreter runs the client
under test, so it imports each client lazily.
"""

from __future__ import annotations

import functools
import inspect
import operator

MODES = ("sync", "sync-builder", "async", "async-builder", "pool", "batch", "async-batch")

#: client -> modes it has at all (a peer without a mode gets no row).
CLIENT_MODES = {
    "cspike": MODES,
    "aerospike": ("sync", "async", "batch", "async-batch"),
    "aerospike-py": ("sync", "async", "batch", "async-batch"),
    "aerospike-sdk": MODES,
}
#: Python module each client is imported as (for the "is it installed" probe).
CLIENT_MODULES = {
    "cspike": "cspike",
    "aerospike": "aerospike",
    "aerospike-py": "aerospike_py",
    "aerospike-sdk": "aerospike_sdk",
}
PEERS = ("aerospike", "aerospike-py", "aerospike-sdk")

_IS_OK = operator.attrgetter("is_ok")
_RESULT = operator.attrgetter("result")


class Unavailable(Exception):
    """The client (or the mode) cannot run here; the message says why."""


def _dist_version(*names: str) -> str:
    from importlib import metadata
    out = []
    for n in names:
        try:
            out.append(f"{n} {metadata.version(n)}")
        except metadata.PackageNotFoundError:
            pass
    return ", ".join(out)


def _hosts(seeds: str) -> list[tuple[str, int]]:
    out = []
    for part in seeds.split(","):
        part = part.strip()
        host, _, port = part.rpartition(":")
        if not host:
            host, port = part, "3000"
        out.append((host.strip("[]"), int(port)))
    return out


async def _noop() -> None:
    return None


def _rows(stream):
    """A builder's result as a list (a RecordStream, or a list already)."""
    collect = getattr(stream, "collect", None)
    return collect() if collect is not None else list(stream)


async def _arows(stream):
    collect = getattr(stream, "collect", None)
    if collect is not None:
        rows = collect()
        return await rows if hasattr(rows, "__await__") else rows
    if hasattr(stream, "__aiter__"):
        return [r async for r in stream]
    return list(stream)


def cspike_unavailable(mode: str):
    """Why cspike cannot run `mode` yet (None when it can).  Builders, batch
    and AsyncPool are detected by the names the PSDK shape gives them."""
    import cspike
    sync_s, async_s = cspike.SyncSession, cspike.Session
    need = {
        "sync": [(sync_s, "get"), (sync_s, "put")],
        "async": [(async_s, "get"), (async_s, "put")],
        "sync-builder": [(sync_s, "query"), (sync_s, "upsert")],
        "async-builder": [(async_s, "query"), (async_s, "upsert")],
        "batch": [(sync_s, "query"), (sync_s, "batch")],
        "async-batch": [(async_s, "query"), (async_s, "batch")],
        "pool": [(cspike, "AsyncPool")],
    }[mode]
    missing = [f"{getattr(o, '__name__', o)}.{a}" for o, a in need if not hasattr(o, a)]
    if missing:
        return "not available: " + ", ".join(missing) + " not built yet"
    return None


class Adapter:
    name = "?"
    version = ""
    not_found: tuple = ()
    timeout: tuple = ()

    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self.seeds = spec["seeds"]

    def unavailable(self, mode: str):
        if mode not in CLIENT_MODES[self.name]:
            return f"{self.name} has no {mode} mode"
        return None

    def api(self, mode: str) -> str:
        return ""


# ---- PSDK shape: cspike and aerospike-sdk ------------------------------------------


class PsdkShaped(Adapter):
    """Session fast path, builders, batch builder and AsyncPool, written
    once for cspike and the Aerospike Python SDK (same API shape)."""

    SyncClient = Client = Key = Behavior = AsyncPool = None

    def keys(self, ns: str, set_name: str, n: int) -> list:
        Key = self.Key
        return [Key(ns, set_name, i) for i in range(n)]

    def api(self, mode: str) -> str:
        return {
            "sync": "session.get / session.put",
            "async": "await session.get / session.put",
            "sync-builder": "session.query(k).execute().first() / session.upsert(k).put(b).execute()",
            "async-builder": "await (await session.query(k).execute()).first() / "
                             "await session.upsert(k).put(b).execute()",
            "pool": "AsyncPool(loops) + await session.get / put",
            "batch": "session.query(keys).execute().collect() / session.batch().upsert(k).put(b)...execute()",
            "async-batch": "await session.query(keys).execute() / session.batch()...execute()",
        }[mode]

    # sync
    def sync_open(self, mode: str):
        c = self.SyncClient(self.seeds)
        c.connect()
        s = c.create_session(self.Behavior.DEFAULT)
        if mode == "sync":
            return s.get, s.put, c.close
        if mode == "sync-builder":
            def get(k):
                return s.query(k).execute().first()

            def put(k, b):
                s.upsert(k).put(b).execute()
            return get, put, c.close
        if mode == "batch":
            def read_many(ks):
                rows = _rows(s.query(ks).execute())
                return len(ks) - sum(map(_IS_OK, rows))

            def write_many(ks, b):
                bb = s.batch()
                for k in ks:
                    bb = bb.upsert(k).put(b)
                rows = _rows(bb.execute())
                return len(ks) - sum(map(_IS_OK, rows))
            return read_many, write_many, c.close
        raise Unavailable(f"no sync driver for {mode}")

    # async
    async def _async_session_ops(self, s, mode: str, aclose):
        if mode in ("async", "pool"):
            return s.get, s.put, aclose
        if mode == "async-builder":
            async def get(k):
                return await (await s.query(k).execute()).first()

            async def put(k, b):
                await s.upsert(k).put(b).execute()
            return get, put, aclose
        if mode == "async-batch":
            async def read_many(ks):
                rows = await _arows(await s.query(ks).execute())
                return len(ks) - sum(map(_IS_OK, rows))

            async def write_many(ks, b):
                bb = s.batch()
                for k in ks:
                    bb = bb.upsert(k).put(b)
                rows = await _arows(await bb.execute())
                return len(ks) - sum(map(_IS_OK, rows))
            return read_many, write_many, aclose
        raise Unavailable(f"no async driver for {mode}")

    async def async_open(self, mode: str):
        c = self.Client(self.seeds)
        await c.connect()
        s = c.create_session(self.Behavior.DEFAULT)
        return await self._async_session_ops(s, mode, c.close)

    def pool(self, loops: int):
        seeds, Client = self.seeds, self.Client
        kw = {}
        # The pool's loops follow --loop where the pool lets us choose
        # (cspike; newer SDKs): the rows compare clients, not event loops.
        try:
            if "use_uvloop" in inspect.signature(self.AsyncPool).parameters:
                kw["use_uvloop"] = self.spec.get("loop") == "uvloop"
        except (TypeError, ValueError):
            pass
        return self.AsyncPool(lambda: Client(seeds), loop_count=loops, **kw)

    async def pool_session_ops(self, client, mode: str):
        return await self._async_session_ops(client.create_session(self.Behavior.DEFAULT),
                                             "pool", _noop)


class CspikeAdapter(PsdkShaped):
    name = "cspike"

    def __init__(self, spec: dict) -> None:
        super().__init__(spec)
        import cspike  # a failure here is an error of the run, not "not available"
        self.cs = cspike
        self.version = f"cspike {cspike.__version__}"
        self.SyncClient, self.Client, self.Key = cspike.SyncClient, cspike.Client, cspike.Key
        self.Behavior = cspike.Behavior
        self.AsyncPool = getattr(cspike, "AsyncPool", None)
        self.not_found = (cspike.RecordNotFoundError,)
        self.timeout = (cspike.TimeoutError,)

    def unavailable(self, mode: str):
        return super().unavailable(mode) or cspike_unavailable(mode)


class SdkAdapter(PsdkShaped):
    name = "aerospike-sdk"

    def __init__(self, spec: dict) -> None:
        super().__init__(spec)
        try:
            import aerospike_sdk
            from aerospike_async import Key
            from aerospike_async import exceptions as pac_exc
            from aerospike_sdk import exceptions as sdk_exc
        except ImportError as e:
            raise Unavailable(f"aerospike-sdk is not installed: {e}") from e
        self.version = _dist_version("aerospike-sdk", "aerospike-async")
        self.SyncClient, self.Client = aerospike_sdk.SyncClient, aerospike_sdk.Client
        self.Key, self.Behavior = Key, aerospike_sdk.Behavior
        self.AsyncPool = aerospike_sdk.AsyncPool
        # The fast path raises PAC's exceptions unconverted (psdk-api 1.5).
        self.not_found = tuple(getattr(pac_exc, n) for n in ("RecordNotFound",)
                               if hasattr(pac_exc, n))
        self.timeout = tuple(x for x in (getattr(pac_exc, "TimeoutError", None),
                                         getattr(sdk_exc, "TimeoutError", None)) if x)


# ---- the official client ---------------------------------------------------------------


class OfficialAdapter(Adapter):
    name = "aerospike"

    def __init__(self, spec: dict) -> None:
        super().__init__(spec)
        try:
            import aerospike
            # Imported here, before any worker thread: aerospike 19.3.0's
            # batch_read takes this module from sys.modules while another
            # thread's first batch call is still importing it, fails to find
            # BatchRecords, and then frees uninitialised pointers
            # (batch_read.c CLEANUP4): a segfault in about 1 run in 10.
            import aerospike_helpers.batch.records  # noqa: F401
            from aerospike import exception as ex
            from aerospike_helpers.operations import operations
        except ImportError as e:
            raise Unavailable(f"aerospike is not installed: {e}") from e
        self.aerospike, self.operations = aerospike, operations
        self.version = _dist_version("aerospike")
        self.not_found = (ex.RecordNotFound,)
        self.timeout = (ex.TimeoutError,)

    def api(self, mode: str) -> str:
        return {
            "sync": "client.get / client.put",
            "async": "await loop.run_in_executor(None, client.get / client.put)",
            "batch": "client.batch_read(keys) / client.batch_operate(keys, [write])",
            "async-batch": "run_in_executor(None, batch_read / batch_operate)",
        }.get(mode, "")

    def keys(self, ns: str, set_name: str, n: int) -> list:
        return [(ns, set_name, i) for i in range(n)]

    def _connect(self):
        return self.aerospike.client({"hosts": _hosts(self.seeds)}).connect()

    def _batch_ops(self, c):
        write = self.operations.write
        cache = {}

        def read_many(ks):
            recs = c.batch_read(ks).batch_records
            return len(ks) - list(map(_RESULT, recs)).count(0)

        def write_many(ks, b):
            ops = cache.get(id(b))
            if ops is None:
                ops = cache[id(b)] = [write(n, v) for n, v in b.items()]
            recs = c.batch_operate(ks, ops).batch_records
            return len(ks) - list(map(_RESULT, recs)).count(0)
        return read_many, write_many

    def sync_open(self, mode: str):
        c = self._connect()
        if mode == "sync":
            return c.get, c.put, c.close
        if mode == "batch":
            return (*self._batch_ops(c), c.close)
        raise Unavailable(f"no sync driver for {mode}")

    async def async_open(self, mode: str):
        import asyncio
        loop = asyncio.get_running_loop()
        c = self._connect()

        async def aclose():
            c.close()
        if mode == "async":
            return (functools.partial(loop.run_in_executor, None, c.get),
                    functools.partial(loop.run_in_executor, None, c.put), aclose)
        if mode == "async-batch":
            rm, wm = self._batch_ops(c)
            return (functools.partial(loop.run_in_executor, None, rm),
                    functools.partial(loop.run_in_executor, None, wm), aclose)
        raise Unavailable(f"no async driver for {mode}")


# ---- aerospike-py ---------------------------------------------------------------------------


class AerospikePyAdapter(Adapter):
    name = "aerospike-py"

    def __init__(self, spec: dict) -> None:
        super().__init__(spec)
        try:
            import aerospike_py
            from aerospike_py import exception as ex
        except ImportError as e:
            raise Unavailable(f"aerospike-py is not installed: {e}") from e
        self.ap = aerospike_py
        self.version = _dist_version("aerospike-py")
        self.not_found = (ex.RecordNotFound,)
        self.timeout = (ex.AerospikeTimeoutError,)

    def api(self, mode: str) -> str:
        return {
            "sync": "client.get / client.put",
            "async": "await AsyncClient.get / put",
            "batch": "client.batch_read(keys).to_list() / client.batch_write([(k, bins)])",
            "async-batch": "await AsyncClient.batch_read(keys).to_list() / batch_write",
        }.get(mode, "")

    def keys(self, ns: str, set_name: str, n: int) -> list:
        return [(ns, set_name, i) for i in range(n)]

    def _config(self) -> dict:
        return {"hosts": _hosts(self.seeds)}

    def sync_open(self, mode: str):
        c = self.ap.client(self._config()).connect()
        if mode == "sync":
            return c.get, c.put, c.close
        if mode == "batch":
            def read_many(ks):
                return c.batch_read(ks).to_list().count(None)

            def write_many(ks, b):
                recs = c.batch_write([(k, b) for k in ks]).batch_records
                return len(ks) - list(map(_RESULT, recs)).count(0)
            return read_many, write_many, c.close
        raise Unavailable(f"no sync driver for {mode}")

    async def async_open(self, mode: str):
        c = self.ap.AsyncClient(self._config())
        await c.connect()
        if mode == "async":
            return c.get, c.put, c.close
        if mode == "async-batch":
            async def read_many(ks):
                return (await c.batch_read(ks)).to_list().count(None)

            async def write_many(ks, b):
                recs = (await c.batch_write([(k, b) for k in ks])).batch_records
                return len(ks) - list(map(_RESULT, recs)).count(0)
            return read_many, write_many, c.close
        raise Unavailable(f"no async driver for {mode}")


ADAPTERS = {
    "cspike": CspikeAdapter,
    "aerospike": OfficialAdapter,
    "aerospike-py": AerospikePyAdapter,
    "aerospike-sdk": SdkAdapter,
}


def make_adapter(spec: dict) -> Adapter:
    cls = ADAPTERS.get(spec["client"])
    if cls is None:
        raise Unavailable(f"unknown client {spec['client']!r}")
    return cls(spec)
