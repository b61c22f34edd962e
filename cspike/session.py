"""Sessions: a client plus a Behavior, compiled once into core policies.

The fast path (``get``, ``put``, ``delete``, ``exists``, ``touch``,
``operate``) is implemented in C by ``_core.SessionCore``; this class adds the
Python-level API around it.
"""

from __future__ import annotations

from typing import Any

from . import _core
from .builders import (SyncBatchOperationBuilder, SyncQueryBuilder, SyncWriteSegmentBuilder,
                       _SessionVerbs)
from .policy import Behavior, Mode, OpKind, OpShape

__all__ = ["SyncSession", "compile_point_policies"]


_SLOTS = (
    (OpKind.READ, OpShape.POINT),
    (OpKind.WRITE_NON_RETRYABLE, OpShape.POINT),
    (OpKind.WRITE_RETRYABLE, OpShape.POINT),
    (OpKind.READ, OpShape.BATCH),
    (OpKind.WRITE_NON_RETRYABLE, OpShape.BATCH),
)


def compile_point_policies(behavior: Behavior) -> tuple:
    """The 10 policy tuples a SessionCore needs (read, write, retryable
    write, batch read, batch write; AP then SC namespaces), compiled once."""
    return tuple(behavior.get_compiled(kind, shape, mode)
                 for mode in (Mode.AP, Mode.SC) for kind, shape in _SLOTS)


class _SessionBase(_SessionVerbs):
    """What the sync and async sessions share: a client and a Behavior,
    compiled once into the core's policies."""

    def __init__(self, client: Any, behavior: Behavior | None = None) -> None:
        if behavior is None:
            behavior = Behavior.DEFAULT
        if not isinstance(behavior, Behavior):
            raise TypeError(f"behavior must be a Behavior, not {type(behavior).__name__}")
        super().__init__(client._require(), compile_point_policies(behavior),
                         self._driver_factory(client))
        self._client = client
        self._behavior = behavior

    @staticmethod
    def _driver_factory(client: Any) -> Any:
        return None

    @property
    def behavior(self) -> Behavior:
        return self._behavior

    @property
    def client(self) -> Any:
        return self._client

    def __repr__(self) -> str:
        return f"<{type(self).__name__} behavior={self._behavior.name!r}>"


class SyncSession(_SessionBase, _core.SessionCore):
    """A blocking session.

    Fast path (C, on the calling thread): ``get``, ``put``, ``delete``,
    ``exists``, ``touch``, ``operate``.  Builders: ``query(keys)``,
    ``upsert/insert/update/replace/replace_if_exists(keys)``,
    ``query(keys).delete()/touch()/exists()``, ``batch()``.
    """

    _query_cls = SyncQueryBuilder
    _write_cls = SyncWriteSegmentBuilder
    _batch_cls = SyncBatchOperationBuilder
