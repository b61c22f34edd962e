"""Sessions: a client plus a Behavior, compiled once into core policies.

The fast path (``get``, ``put``, ``delete``, ``exists``, ``touch``,
``operate``) is implemented in C by ``_core.SessionCore``; this class adds the
Python-level API around it.
"""

from __future__ import annotations

from typing import Any

from . import _core
from .policy import Behavior, Mode, OpKind, OpShape

__all__ = ["SyncSession", "compile_point_policies"]


def compile_point_policies(behavior: Behavior) -> tuple:
    """The 6 policy tuples a SessionCore needs: read / write / retryable
    write, for AP then SC namespaces."""
    out = []
    for mode in (Mode.AP, Mode.SC):
        for kind in (OpKind.READ, OpKind.WRITE_NON_RETRYABLE, OpKind.WRITE_RETRYABLE):
            out.append(behavior.get_compiled(kind, OpShape.POINT, mode))
    return tuple(out)


class SyncSession(_core.SessionCore):
    """A blocking session.  ``get``/``put``/``delete``/``exists``/``touch``/
    ``operate`` run in C on the calling thread."""

    def __init__(self, client: Any, behavior: Behavior | None = None) -> None:
        if behavior is None:
            behavior = Behavior.DEFAULT
        if not isinstance(behavior, Behavior):
            raise TypeError(f"behavior must be a Behavior, not {type(behavior).__name__}")
        cluster = client._require()
        super().__init__(cluster, compile_point_policies(behavior))
        self._client = client
        self._behavior = behavior

    @property
    def behavior(self) -> Behavior:
        return self._behavior

    @property
    def client(self) -> Any:
        return self._client

    def __repr__(self) -> str:
        return f"<SyncSession behavior={self._behavior.name!r}>"
