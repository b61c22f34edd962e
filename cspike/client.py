"""SyncClient: the blocking client.  Commands run on the caller's thread with
the GIL released around the network I/O only."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

from . import _core
from ._info import info_value, parse_info
from ._seeds import parse_seeds
from ._types import DataSet
from .exceptions import ClientClosedError, ConnectionError
from .policy import Behavior, SystemSettings, compile_system_settings

__all__ = ["SyncClient", "ClientPolicy", "cluster_config"]

# A ClientPolicy is the same set of cluster-wide settings.
ClientPolicy = SystemSettings


def cluster_config(policy: SystemSettings | None, overrides: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of ``_core.Cluster`` from SystemSettings + overrides."""
    s = policy if policy is not None else SystemSettings()
    if not isinstance(s, SystemSettings):
        raise TypeError(f"policy must be a ClientPolicy/SystemSettings, not {type(s).__name__}")
    if overrides:
        s = _replace(s, overrides)

    def ms(td: timedelta) -> int:
        return int(-(-td.total_seconds() * 1000 // 1))

    return dict(
        cluster_name=s.cluster_name or "",
        conn_timeout_ms=ms(s.connect_timeout) or 1000,
        tend_interval_ms=ms(s.tend_interval),
        max_conns_per_node=s.max_connections_per_node,
        min_conns_per_node=s.min_connections_per_node,
        max_socket_idle_ms=ms(s.max_socket_idle_time),
        max_error_rate=s.max_error_rate,
        error_rate_window=s.error_rate_window,
        fail_if_not_connected=s.fail_if_not_connected,
        use_services_alternate=s.use_services_alternate,
    )


def _replace(s: SystemSettings, overrides: dict[str, Any]) -> SystemSettings:
    import dataclasses
    names = {f.name for f in dataclasses.fields(SystemSettings)}
    bad = set(overrides) - names
    if bad:
        raise TypeError(f"unknown client setting(s): {', '.join(sorted(bad))}")
    return dataclasses.replace(s, **overrides)


class _ClientBase:
    """What the sync and async clients share: seeds, config, the core handle."""

    def __init__(self, seeds: str, policy: SystemSettings | None = None, **settings: Any) -> None:
        self._seeds = parse_seeds(seeds)
        self._config = cluster_config(policy, settings)
        self._cluster: _core.Cluster | None = None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def seeds(self) -> list[tuple[str, int]]:
        return list(self._seeds)

    @property
    def is_connected(self) -> bool:
        c = self._cluster
        return c is not None and c.is_connected

    def _require(self) -> _core.Cluster:
        c = self._cluster
        if c is None:
            if self._closed:
                raise ClientClosedError("client is closed", result_code=-20)
            raise ConnectionError("client is not connected; call connect() first",
                                  result_code=-10)
        return c

    def _connect_core(self) -> _core.Cluster:
        with self._lock:
            if self._closed:
                raise ClientClosedError("client is closed; create a new client",
                                        result_code=-20)
            if self._cluster is not None:
                return self._cluster
            self._cluster = _core.Cluster(self._seeds, **self._config)
            return self._cluster

    def _close_core(self) -> None:
        with self._lock:
            self._closed = True
            c = self._cluster
        if c is not None:
            c.close()

    def node_names(self) -> list[str]:
        return [n[0] for n in self._require().nodes()]

    def nodes(self) -> list[tuple[str, str, int]]:
        """``[(node name, host, port), ...]`` of the active nodes."""
        return self._require().nodes()


class SyncClient(_ClientBase):
    """Blocking Aerospike client.

    ``SyncClient("127.0.0.1:3000")``; connect with ``connect()`` or a ``with``
    block; then ``create_session(Behavior.DEFAULT)`` for reads and writes.
    Safe to share between threads (including free-threaded Python).
    """

    def connect(self) -> SyncClient:
        self._connect_core()
        return self

    def close(self) -> None:
        """Close the client; commands running on other threads fail with
        ClientClosedError.  Idempotent."""
        self._close_core()

    def __enter__(self) -> SyncClient:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def create_session(self, behavior: Behavior | None = None):
        from .session import SyncSession
        return SyncSession(self, behavior)

    # -- info -----------------------------------------------------------------
    def info(self, command: str, node: str | None = None, timeout: float = 1.0) -> str:
        """The value one node answers for an info command."""
        text = self._require().info(command, node, int(timeout * 1000))
        return info_value(text, command)

    def info_all(self, command: str, timeout: float = 1.0) -> dict[str, str]:
        """``{node name: value}`` from every node."""
        c = self._require()
        return {name: info_value(c.info(command, name, int(timeout * 1000)), command)
                for name, _h, _p in c.nodes()}

    def info_raw(self, commands: str, node: str | None = None, timeout: float = 1.0) -> dict[str, str]:
        """Several newline-separated commands -> {command: value}."""
        return parse_info(self._require().info(commands, node, int(timeout * 1000)))

    def truncate(self, dataset: DataSet | tuple[str, str], before_nanos: int | None = None) -> None:
        """Remove every record of a set (or of the namespace when the set is
        None) last updated before ``before_nanos`` (default: now)."""
        ns, set_name = (dataset.namespace, dataset.set_name) if isinstance(dataset, DataSet) else dataset
        cmd = f"truncate:namespace={ns}" if set_name else f"truncate-namespace:namespace={ns}"
        if set_name:
            cmd += f";set={set_name}"
        if before_nanos is not None:
            cmd += f";lut={int(before_nanos)}"
        value = self.info(cmd)
        if value.strip().lower() != "ok":
            from .exceptions import ServerError
            raise ServerError(f"truncate failed: {value}", result_code=1)
