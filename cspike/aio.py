"""Client: the asyncio client.

I/O runs on the event loop's own thread: each (client, loop) pair gets a
``LoopDriver`` whose single epoll fd is registered with the loop; commands
send straight from the awaiting call and complete inline when the loop
reports the fd readable.  There is no helper thread and no cross-thread
wake-up per operation.

A client may be used from several event loops (each gets its own driver and
connections); cluster state is shared.  Close the client from any loop.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from . import _core
from .builders import BatchOperationBuilder, QueryBuilder, WriteSegmentBuilder
from .client import _ClientBase
from .policy import Behavior
from .session import _SessionBase

__all__ = ["Client", "Session"]


class Client(_ClientBase):
    """Asyncio Aerospike client: ``async with Client("127.0.0.1:3000") as c``."""

    def __init__(self, seeds: str, policy: Any = None, **settings: Any) -> None:
        super().__init__(seeds, policy, **settings)
        self._drivers: dict[asyncio.AbstractEventLoop, _core.LoopDriver] = {}
        self._drivers_lock = threading.Lock()

    async def connect(self) -> Client:
        """Connect (seeding runs in a worker thread so the loop stays free)."""
        if self._closed:
            from .exceptions import ClientClosedError
            raise ClientClosedError("client is closed; create a new client", result_code=-20)
        if self._cluster is None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, self._connect_core)
        return self

    def connect_blocking(self) -> Client:
        self._connect_core()
        return self

    async def close(self) -> None:
        """Close: commands in flight fail with ClientClosedError.  The core
        (tend thread, sockets) closes in a worker thread, so a slow node
        cannot stall this event loop."""
        self._close_drivers()
        await asyncio.get_running_loop().run_in_executor(None, self._close_core)

    def close_blocking(self) -> None:
        self._close_drivers()
        self._close_core()

    async def __aenter__(self) -> Client:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def create_session(self, behavior: Behavior | None = None) -> Session:
        return Session(self, behavior)

    # -- drivers ----------------------------------------------------------------
    def _driver_for(self, loop: asyncio.AbstractEventLoop) -> _core.LoopDriver:
        cluster = self._require()
        with self._drivers_lock:
            d = self._drivers.get(loop)
            if d is not None and not d.is_closed:
                return d
            # Drop drivers of loops that have been closed meanwhile.
            for old_loop in [lp for lp in self._drivers if lp.is_closed()]:
                self._drivers.pop(old_loop).close()
            idle_ms = self._config["max_socket_idle_ms"]
            d = _core.LoopDriver(cluster, loop, idle_ms)
            self._drivers[loop] = d
            return d

    def _close_drivers(self) -> None:
        with self._drivers_lock:
            drivers = list(self._drivers.items())
            self._drivers.clear()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for loop, d in drivers:
            if loop is running or loop.is_closed() or not loop.is_running():
                d.close()
            else:
                # The driver belongs to a loop running on another thread.
                loop.call_soon_threadsafe(d.close)

    def info(self, command: str, node: str | None = None, timeout: float = 1.0) -> str:
        from ._info import info_value
        return info_value(self._require().info(command, node, int(timeout * 1000)), command)


class Session(_SessionBase, _core.AsyncSessionCore):
    """An asyncio session: ``await session.get(key)``, ``await session.put(key, bins)``,
    ``delete``, ``exists``, ``touch``, ``operate``; builders as on SyncSession
    with ``await ....execute()``."""

    _query_cls = QueryBuilder
    _write_cls = WriteSegmentBuilder
    _batch_cls = BatchOperationBuilder

    @staticmethod
    def _driver_factory(client: Client) -> Any:
        return client._driver_for
