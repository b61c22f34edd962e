"""Record streams (results of builder calls) and error routing.

A builder's ``execute()`` crosses into C once and returns a stream over the
results: ``RecordStream`` (async iteration) or ``SyncRecordStream``.  Each
item is a ``RecordResult`` (``key``, ``record``, ``result_code``,
``in_doubt``, ``index``, ``is_ok``, ``or_raise()``, ``record_or_raise()``,
``as_bool()``).
"""

from __future__ import annotations

import enum
from typing import Any, Callable, Iterable, Iterator, Union

from . import _core
from .exceptions import AerospikeError, RecordNotFoundError

RecordResult = _core.RecordResult

__all__ = ["RecordResult", "RecordStream", "SyncRecordStream", "ErrorStrategy",
           "ErrorHandler", "OnError"]


class ErrorStrategy(enum.Enum):
    """How ``execute(on_error=...)`` reports failures.  ``IN_STREAM``: every
    failure becomes a row with ``is_ok`` False instead of raising."""

    IN_STREAM = "in_stream"


ErrorHandler = Callable[[Any, int, AerospikeError], None]
OnError = Union[ErrorStrategy, ErrorHandler, None]

# Result codes that do not count as failures unless asked for.
_NOT_FOUND = 2
_FILTERED_OUT = 27


def route_results(results: list, specs_info: list, on_error: OnError, single: bool) -> list:
    """Apply PSDK's row rules to raw results.

    specs_info[i] = (not_found_is_error, include_not_found, filtered_is_error)
    for result i.  Rows kept: OK rows; NOT_FOUND / FILTERED_OUT only when
    asked for; other failures by ``on_error``: a single key raises by
    default, several keys keep the error rows; a handler gets (key, index,
    exception) and the row is dropped; IN_STREAM keeps the row.
    """
    if on_error is not None and not isinstance(on_error, ErrorStrategy) and not callable(on_error):
        raise TypeError("on_error must be ErrorStrategy.IN_STREAM or a callable(key, index, exc)")
    out = []
    for r, (nf_error, include_nf, filtered_error) in zip(results, specs_info):
        code = r.result_code
        if code == 0:
            out.append(r)
            continue
        if code == _NOT_FOUND and not nf_error:
            if include_nf:
                out.append(r)
            continue
        if code == _FILTERED_OUT and not filtered_error:
            if include_nf:
                out.append(r)
            continue
        # An actionable failure.
        if on_error is None:
            if single:
                r.or_raise()
            out.append(r)
        elif on_error is ErrorStrategy.IN_STREAM:
            out.append(r)
        else:
            on_error(r.key, r.index, r.exception)
    return out


class _StreamBase:
    __slots__ = ("_items", "_pos", "_chunk_served")

    def __init__(self, items: Iterable[Any] = ()) -> None:
        self._items = items if type(items) in (list, tuple) else list(items)
        self._pos = 0
        self._chunk_served = False

    @classmethod
    def from_list(cls, items: Iterable[Any]):
        return cls(items)

    @classmethod
    def from_single(cls, item: Any):
        return cls([item])

    def _next(self) -> Any:
        if self._pos >= len(self._items):
            return _END
        item = self._items[self._pos]
        self._pos += 1
        return item

    def _first(self) -> Any:
        # Inlined _next(): first() ends most single-key builder calls.
        items, pos = self._items, self._pos
        if pos < len(items):
            self._pos = pos + 1
            return items[pos]
        return None

    def _first_or_raise(self) -> Any:
        item = self._next()
        if item is _END:
            # PSDK raises StopAsyncIteration here; a missing record is the
            # common reason and deserves its own exception.
            raise RecordNotFoundError("the stream is empty (record not found?)",
                                      result_code=_NOT_FOUND)
        return item.or_raise() if isinstance(item, RecordResult) else item

    def _collect(self) -> list:
        rest = list(self._items[self._pos:])
        self._pos = len(self._items)
        return rest

    def _failures(self) -> list:
        return [r for r in self._collect() if isinstance(r, RecordResult) and not r.is_ok]

    def close(self) -> None:
        self._pos = len(self._items)

    def __len__(self) -> int:
        return len(self._items) - self._pos

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {len(self)} result(s) left>"


_END = object()
_new = object.__new__


def one_row(cls: type, row: Any) -> Any:
    """``cls((row,))`` without the generic ``__init__``: the stream of a
    single-key builder call that succeeded."""
    st = _new(cls)
    st._items = (row,)
    st._pos = 0
    st._chunk_served = False
    return st


class RecordStream(_StreamBase):
    """Async, single-pass stream of RecordResult rows."""

    __slots__ = ()

    def __aiter__(self) -> RecordStream:
        return self

    async def __anext__(self) -> Any:
        item = self._next()
        if item is _END:
            raise StopAsyncIteration
        return item

    async def first(self) -> Any:
        return self._first()

    async def first_or_raise(self) -> Any:
        return self._first_or_raise()

    async def first_udf_result(self) -> Any:
        r = self._first()
        return None if r is None else r.udf_result

    async def collect(self) -> list:
        return self._collect()

    async def failures(self) -> list:
        return self._failures()

    async def has_more_chunks(self) -> bool:
        """Key-based streams have a single chunk: True once, then False."""
        served, self._chunk_served = self._chunk_served, True
        return not served


class SyncRecordStream(_StreamBase):
    """Single-pass stream of RecordResult rows (blocking API)."""

    __slots__ = ()

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        item = self._next()
        if item is _END:
            raise StopIteration
        return item

    first = _StreamBase._first

    def first_or_raise(self) -> Any:
        return self._first_or_raise()

    def first_udf_result(self) -> Any:
        r = self._first()
        return None if r is None else r.udf_result

    def collect(self) -> list:
        return self._collect()

    def failures(self) -> list:
        return self._failures()

    def has_more_chunks(self) -> bool:
        served, self._chunk_served = self._chunk_served, True
        return not served
