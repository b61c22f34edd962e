"""AsyncPool: N event loops on N OS threads, each with its own Client.

On free-threaded Python the loops run in parallel, so async throughput
scales with cores.  Each loop's client has its own connections and event-loop
driver; cluster discovery is per client.  Work is handed to a loop once per
``run()``/``map()`` item (one cross-thread wake-up per task, never per
database operation).

    async with AsyncPool(lambda: Client(seeds), loop_count=4) as pool:
        results = await pool.map(work, range(4))   # work(client, x)
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import threading
from typing import Any, Awaitable, Callable, Iterable

__all__ = ["AsyncPool"]


def _gil_disabled() -> bool:
    return hasattr(sys, "_is_gil_enabled") and not sys._is_gil_enabled()


def _new_loop(use_uvloop: bool) -> asyncio.AbstractEventLoop:
    if use_uvloop:
        import uvloop  # optional dependency
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


async def _close_and_drain(client: Any, grace: float = 2.0) -> None:
    """Close a loop's client, then let the loop's other tasks finish: their
    commands now fail with ClientClosedError, and run()/map() callers must
    see those outcomes before the loop stops.  Stragglers are cancelled."""
    await client.close()
    me = asyncio.current_task()
    others = [t for t in asyncio.all_tasks() if t is not me]
    if others:
        _done, pending = await asyncio.wait(others, timeout=grace)
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.wait(pending, timeout=grace)


class _Worker:
    __slots__ = ("index", "loop", "client", "thread", "error")

    def __init__(self, index: int) -> None:
        self.index = index
        self.loop: asyncio.AbstractEventLoop | None = None
        self.client: Any = None
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None


class AsyncPool:
    """A pool of event loops, each on its own thread with its own client.

    ``client_factory()`` is called on each loop's thread and must return an
    unconnected ``cspike.Client``; the pool connects and closes it.
    ``loop_count``: None = one loop per CPU when the GIL is off; one loop
    when it is on, where more loops only take turns at the GIL (measured on
    2 cores, 64 tasks in all: 2 loops 3% and 4 loops 21% fewer ops/s than
    one).  An explicit count is always honoured.
    ``use_uvloop``: None = uvloop when installed and the GIL is on (uvloop
    is not known to be free-threading safe), True/False to force.
    """

    def __init__(self, client_factory: Callable[[], Any], loop_count: int | None = None,
                 *, use_uvloop: bool | None = None) -> None:
        if not callable(client_factory):
            raise TypeError("client_factory must be a callable returning a Client")
        if loop_count is None:
            loop_count = (os.cpu_count() or 4) if _gil_disabled() else 1
        if isinstance(loop_count, bool) or not isinstance(loop_count, int) or loop_count < 1:
            raise ValueError("loop_count must be a positive int")
        if use_uvloop is None:
            try:
                import uvloop  # noqa: F401
                use_uvloop = not _gil_disabled()
            except ImportError:
                use_uvloop = False
        self._factory = client_factory
        self._workers = [_Worker(i) for i in range(loop_count)]
        self._use_uvloop = bool(use_uvloop)
        self._rr = itertools.count()
        self._started = False
        self._closed = False
        self._lock = threading.Lock()

    # -- properties --------------------------------------------------------------
    @property
    def loop_count(self) -> int:
        return len(self._workers)

    @property
    def is_started(self) -> bool:
        return self._started

    @property
    def is_closed(self) -> bool:
        return self._closed

    @property
    def clients(self) -> list[Any]:
        return [w.client for w in self._workers]

    # -- lifecycle ----------------------------------------------------------------
    def _thread_main(self, w: _Worker, ready: threading.Event) -> None:
        try:
            loop = _new_loop(self._use_uvloop)
            asyncio.set_event_loop(loop)
            w.loop = loop
            w.client = self._factory()
            loop.run_until_complete(w.client.connect())
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            w.error = exc
            if w.loop is not None:
                w.loop.close()  # its selector's fds, now, not at GC time
            ready.set()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    async def start(self) -> AsyncPool:
        with self._lock:
            if self._closed:
                raise RuntimeError("AsyncPool is closed")
            if self._started:
                return self
            self._started = True
        waits = []
        for w in self._workers:
            ready = threading.Event()
            w.thread = threading.Thread(target=self._thread_main, args=(w, ready),
                                        name=f"cspike-loop-{w.index}", daemon=True)
            w.thread.start()
            waits.append(ready)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, lambda: [e.wait() for e in waits])
        errors = [w.error for w in self._workers if w.error]
        if errors:
            await self.aclose()
            raise errors[0]
        return self

    async def aclose(self) -> None:
        """Close every client (commands in flight fail) and stop the loops."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for w in self._workers:
            if w.loop is None or w.loop.is_closed():
                continue
            if w.client is not None and w.error is None:
                fut = asyncio.run_coroutine_threadsafe(_close_and_drain(w.client), w.loop)
                try:
                    await asyncio.wrap_future(fut)
                except Exception:  # noqa: BLE001 - closing anyway
                    pass
            w.loop.call_soon_threadsafe(w.loop.stop)
        loop = asyncio.get_running_loop()
        threads = [w.thread for w in self._workers if w.thread is not None]
        await loop.run_in_executor(None, lambda: [t.join() for t in threads])
        # A closed loop (uvloop's above all) keeps its epoll fd and wake-up
        # pipe until it is freed: drop the references now.
        for w in self._workers:
            w.loop = None
            w.client = None

    async def __aenter__(self) -> AsyncPool:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- work -------------------------------------------------------------------------
    def _worker(self, pick: int | None) -> _Worker:
        if not self._started or self._closed:
            raise RuntimeError("AsyncPool is not running: use 'async with' or await start()")
        if pick is None:
            pick = next(self._rr)
        return self._workers[pick % len(self._workers)]

    async def run(self, fn: Callable[[Any], Awaitable[Any]], pick: int | None = None) -> Any:
        """Run ``await fn(client)`` on one loop (round robin, or loop ``pick``)."""
        w = self._worker(pick)
        fut = asyncio.run_coroutine_threadsafe(fn(w.client), w.loop)
        return await asyncio.wrap_future(fut)

    async def map(self, fn: Callable[[Any, Any], Awaitable[Any]], inputs: Iterable[Any]) -> list:
        """``[await fn(client, x) for x in inputs]``, item i on loop i mod N,
        all running concurrently; results in input order."""
        futs = []
        for i, x in enumerate(inputs):
            w = self._worker(i)
            futs.append(asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(fn(w.client, x), w.loop)))
        return list(await asyncio.gather(*futs))

    def __repr__(self) -> str:
        state = "closed" if self._closed else "running" if self._started else "new"
        return f"<AsyncPool loops={len(self._workers)} {state}>"
