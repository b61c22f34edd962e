"""Chained builders: ``session.query(...)``, ``session.upsert(...)`` and the
other write verbs, and ``session.batch()``.

A chain only collects specs in Python; ``execute()`` crosses into C once:
one key -> one command (``_execute``), several keys or specs -> one batch
(``_batch``), whose rows come back in input order.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from ._types import DataSet, Key
from .streams import ErrorStrategy, OnError, RecordStream, SyncRecordStream, one_row, route_results

__all__ = [
    "QueryBuilder", "SyncQueryBuilder", "WriteSegmentBuilder", "SyncWriteSegmentBuilder",
    "WriteBinBuilder", "QueryBinBuilder", "BatchOperationBuilder",
    "SyncBatchOperationBuilder", "BatchKeyOperationBuilder", "SyncBatchKeyOperationBuilder",
]

# Command kinds and record-exists actions understood by _core (_execute/_batch).
K_GET, K_PUT, K_DELETE, K_EXISTS, K_TOUCH, K_OPERATE = range(6)
EX_UPDATE, EX_UPDATE_ONLY, EX_REPLACE, EX_REPLACE_ONLY, EX_CREATE_ONLY = range(5)
_OP_READ, _OP_WRITE, _OP_INCR, _OP_APPEND, _OP_PREPEND, _OP_TOUCH, _OP_DELETE = 1, 2, 5, 9, 10, 11, 14

_EXISTS = {"upsert": EX_UPDATE, "insert": EX_CREATE_ONLY, "update": EX_UPDATE_ONLY,
           "replace": EX_REPLACE, "replace_if_exists": EX_REPLACE_ONLY}
# Verbs for which a missing record is an error worth raising.
_NOT_FOUND_IS_ERROR = frozenset(("update", "replace_if_exists"))


def _keys_of(target: Any, more: tuple) -> list[Key]:
    if more:
        target = (target,) + more
    if isinstance(target, Key):
        return [target]
    if isinstance(target, DataSet):
        raise TypeError("queries over a whole DataSet (scans) are not supported yet; "
                        "pass one or more keys")
    if isinstance(target, (list, tuple)):
        keys: list[Key] = []
        for t in target:
            if isinstance(t, Key):
                keys.append(t)
            elif isinstance(t, (list, tuple)):
                keys.extend(_keys_of(t, ()))
            else:
                raise TypeError(f"expected a Key, not {type(t).__name__}")
        if not keys:
            raise ValueError("no keys given")
        return keys
    raise TypeError(f"expected a Key or a list of Keys, not {type(target).__name__}")


class _Spec:
    """One verb over some keys with its operations and options.

    Unset options are class attributes, so a plain spec costs two stores.
    """

    _bins: dict | None = None
    _ops: list | tuple = ()
    _names: list | None = None
    _no_bins = False
    _ttl: int | None = None
    _gen = 0
    _durable = -1
    _rak = False
    _fof = False

    def __init__(self, verb: str, keys: list[Key]) -> None:
        self._verb = verb
        self._keys = keys

    def command(self) -> tuple[int, Any, tuple | None]:
        """(kind, arg, opts) of each key's command."""
        v = self._verb
        opts = None
        if (self._ttl is not None or self._gen or self._durable >= 0 or self._no_bins
                or (v in _EXISTS and v != "upsert")):
            opts = (self._ttl, _EXISTS.get(v, 0), 1 if self._gen else 0, self._gen,
                    self._durable, self._no_bins, None)
        if v == "read":
            if self._ops:
                return K_OPERATE, self._ops, opts
            return K_GET, self._names, opts
        if v == "exists":
            return K_EXISTS, None, opts
        if v == "delete":
            return K_DELETE, None, opts
        if v == "touch":
            if self._ops:
                return K_OPERATE, [(_OP_TOUCH, None, None)] + list(self._ops), opts
            return K_TOUCH, None, opts
        # write verbs
        if self._ops:
            ops = [(_OP_WRITE, k, val) for k, val in self._bins.items()] if self._bins else []
            return K_OPERATE, ops + list(self._ops), opts
        if self._bins:
            return K_PUT, self._bins, opts
        raise ValueError(f"{v}() has nothing to write: add put({{...}}) or bin operations")

    def row_info(self) -> tuple[bool, bool, bool]:
        return (self._verb in _NOT_FOUND_IS_ERROR, self._rak,
                self._fof)


def _rows(specs: list[_Spec]) -> tuple[list, list]:
    rows, info = [], []
    for spec in specs:
        kind, arg, opts = spec.command()
        ri = spec.row_info()
        for k in spec._keys:
            rows.append((kind, k, arg, opts))
            info.append(ri)
    return rows, info


def _run_sync(session: Any, specs: list[_Spec], on_error: OnError) -> SyncRecordStream:
    if len(specs) == 1 and len(specs[0]._keys) == 1:
        spec = specs[0]
        kind, arg, opts = spec.command()
        r = session._execute(kind, spec._keys[0], arg, opts)
        if not r.result_code:
            return one_row(SyncRecordStream, r)
        return SyncRecordStream(route_results((r,), (spec.row_info(),), on_error, True))
    rows, info = _rows(specs)
    return SyncRecordStream(route_results(session._batch(rows), info, on_error, False))


async def _run_async(session: Any, specs: list[_Spec], on_error: OnError) -> RecordStream:
    if len(specs) == 1 and len(specs[0]._keys) == 1:
        spec = specs[0]
        kind, arg, opts = spec.command()
        r = await session._execute(kind, spec._keys[0], arg, opts)
        if not r.result_code:
            return one_row(RecordStream, r)
        return RecordStream(route_results((r,), (spec.row_info(),), on_error, True))
    rows, info = _rows(specs)
    return RecordStream(route_results(await session._batch(rows), info, on_error, False))


# --------------------------------------------------------------------------- read side


class _QueryBase(_Spec):
    """A read spec, and the chain it belongs to.

    A builder is its own first spec: ``session.query(key).execute()``
    creates one object.  ``_specs`` is None until a second spec is chained.
    """

    _verb = "read"
    _specs: list | None = None
    _query_cls: type
    _write_cls: type

    def __init__(self, session: Any, keys: list[Key], specs: list | None = None) -> None:
        self._session = session
        self._keys = keys
        if specs is not None:
            specs.append(self)
            self._specs = specs

    @property
    def _spec(self) -> _Spec:
        return self

    def _chain_specs(self) -> list:
        if self._specs is None:
            self._specs = [self]
        return self._specs

    def bins(self, names: Iterable[str]) -> Any:
        """Read only these bins."""
        names = list(names)
        for n in names:
            if not isinstance(n, str):
                raise TypeError(f"bin names must be str, not {type(n).__name__}")
        self._names = names
        return self

    def with_no_bins(self) -> Any:
        """Read metadata only (generation, TTL)."""
        self._no_bins = True
        return self

    def bin(self, name: str) -> QueryBinBuilder:
        return QueryBinBuilder(self, name)

    def respond_all_keys(self) -> Any:
        """Keep rows for missing records (result_code 2) in the stream."""
        self._rak = True
        return self

    include_missing_keys = respond_all_keys

    def fail_on_filtered_out(self) -> Any:
        self._fof = True
        return self

    # chaining more specs into the same call
    def query(self, target: Any, *more: Any) -> Any:
        return self._query_cls(self._session, _keys_of(target, more), self._chain_specs())

    def _write(self, verb: str, target: Any, more: tuple) -> Any:
        if target is None and not more:
            # query(key).delete(): the same keys; a bare read spec is dropped.
            if (self._verb == "read" and not self._ops and self._names is None
                    and not self._no_bins and self._specs is None):
                return self._write_cls(self._session, verb, self._keys)
            return self._write_cls(self._session, verb, self._keys, self._chain_specs())
        return self._write_cls(self._session, verb, _keys_of(target, more),
                               self._chain_specs())

    def upsert(self, target: Any = None, *more: Any) -> Any:
        return self._write("upsert", target, more)

    def insert(self, target: Any = None, *more: Any) -> Any:
        return self._write("insert", target, more)

    def update(self, target: Any = None, *more: Any) -> Any:
        return self._write("update", target, more)

    def replace(self, target: Any = None, *more: Any) -> Any:
        return self._write("replace", target, more)

    def replace_if_exists(self, target: Any = None, *more: Any) -> Any:
        return self._write("replace_if_exists", target, more)

    def delete(self, target: Any = None, *more: Any) -> Any:
        return self._write("delete", target, more)

    def touch(self, target: Any = None, *more: Any) -> Any:
        return self._write("touch", target, more)

    def exists(self, target: Any = None, *more: Any) -> Any:
        return self._write("exists", target, more)


class QueryBinBuilder:
    """``query(key).bin("a").get()``: per-bin read operations."""

    __slots__ = ("_qb", "_name")

    def __init__(self, qb: _QueryBase, name: str) -> None:
        if not isinstance(name, str):
            raise TypeError("bin name must be a str")
        self._qb = qb
        self._name = name

    def get(self) -> Any:
        spec = self._qb
        if not spec._ops:
            spec._ops = []
        spec._ops.append((_OP_READ, self._name, None))
        return self._qb


class SyncQueryBuilder(_QueryBase):
    def execute(self, on_error: OnError = None) -> SyncRecordStream:
        if self._specs is None and len(self._keys) == 1:
            kind, arg, opts = self.command()
            r = self._session._execute(kind, self._keys[0], arg, opts)
            if not r.result_code:
                return one_row(SyncRecordStream, r)
            return SyncRecordStream(route_results((r,), (self.row_info(),), on_error, True))
        return _run_sync(self._session, self._specs or [self], on_error)


class QueryBuilder(_QueryBase):
    async def execute(self, on_error: OnError = None) -> RecordStream:
        if self._specs is None and len(self._keys) == 1:
            kind, arg, opts = self.command()
            r = await self._session._execute(kind, self._keys[0], arg, opts)
            if not r.result_code:
                return one_row(RecordStream, r)
            return RecordStream(route_results((r,), (self.row_info(),), on_error, True))
        return await _run_async(self._session, self._specs or [self], on_error)


# --------------------------------------------------------------------------- write side


class _WriteBase(_QueryBase):
    """A write verb over some keys: bins, operations and options."""

    def __init__(self, session: Any, verb: str, keys: list[Key],
                 specs: list | None = None) -> None:
        self._session = session
        self._verb = verb
        self._keys = keys
        if specs is not None:
            specs.append(self)
            self._specs = specs

    def _write_op(self, op: tuple) -> Any:
        spec = self
        if spec._verb in ("delete", "exists"):
            raise TypeError(f"{spec._verb}() takes no bin operations")
        if not spec._ops:
            spec._ops = []
        spec._ops.append(op)
        return self

    # whole-bin writes
    def put(self, bins: dict) -> Any:
        """Write these bins (merged with the existing ones for upsert/update)."""
        if not isinstance(bins, dict):
            raise TypeError(f"put() needs a dict of bins, not {type(bins).__name__}")
        spec = self
        if spec._verb in ("delete", "exists", "touch"):
            raise TypeError(f"{spec._verb}() takes no bins")
        if spec._bins is None:
            spec._bins = bins
        else:
            spec._bins = {**spec._bins, **bins}
        return self

    set_bins = put

    def set_to(self, bin_name: str, value: Any) -> Any:
        return self._write_op((_OP_WRITE, bin_name, value))

    def add(self, bin_name: str, value: int | float) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"add() needs an int or float, not {type(value).__name__}")
        return self._write_op((_OP_INCR, bin_name, value))

    increment_by = add

    def append(self, bin_name: str, value: str | bytes) -> Any:
        return self._write_op((_OP_APPEND, bin_name, value))

    def prepend(self, bin_name: str, value: str | bytes) -> Any:
        return self._write_op((_OP_PREPEND, bin_name, value))

    def get(self, bin_name: str | None = None) -> Any:
        """Read a bin back in the same atomic call (after earlier writes)."""
        return self._write_op((_OP_READ, bin_name, None))

    def remove_bin(self, bin_name: str) -> Any:
        return self._write_op((_OP_WRITE, bin_name, None))

    def delete_record(self) -> Any:
        return self._write_op((_OP_DELETE, None, None))

    def touch_record(self) -> Any:
        return self._write_op((_OP_TOUCH, None, None))

    def bin(self, name: str) -> WriteBinBuilder:  # type: ignore[override]
        return WriteBinBuilder(self, name)

    # options
    def expire_record_after_seconds(self, seconds: int) -> Any:
        if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds <= 0:
            raise ValueError("expire_record_after_seconds() needs whole seconds > 0")
        self._ttl = seconds
        return self

    def expire_record_after(self, delta: timedelta) -> Any:
        if not isinstance(delta, timedelta):
            raise TypeError("expire_record_after() needs a timedelta")
        secs = int(-(-delta.total_seconds() // 1))
        return self.expire_record_after_seconds(max(secs, 1))

    def expire_record_at(self, when: datetime) -> Any:
        """Expire at this time (a naive datetime is local time)."""
        if not isinstance(when, datetime):
            raise TypeError("expire_record_at() needs a datetime")
        now = datetime.now(timezone.utc) if when.tzinfo else datetime.now()
        secs = int(-(-(when - now).total_seconds() // 1))
        if secs <= 0:
            raise ValueError("expire_record_at() needs a time in the future")
        return self.expire_record_after_seconds(secs)

    def never_expire(self) -> Any:
        self._ttl = -1
        return self

    def with_no_change_in_expiration(self) -> Any:
        self._ttl = -2
        return self

    def expiry_from_server_default(self) -> Any:
        self._ttl = 0
        return self

    def ensure_generation_is(self, generation: int) -> Any:
        """Apply only if the record's generation equals this (GenerationError otherwise)."""
        if isinstance(generation, bool) or not isinstance(generation, int) or generation <= 0:
            raise ValueError("ensure_generation_is() needs a generation > 0")
        self._gen = generation
        return self

    def with_durable_delete(self) -> Any:
        self._durable = 1
        return self

    def without_durable_delete(self) -> Any:
        self._durable = 0
        return self

    default_with_durable_delete = with_durable_delete
    default_without_durable_delete = without_durable_delete

    def replace_only(self) -> Any:
        """Switch this write to replace_if_exists."""
        self._verb = "replace_if_exists"
        return self


class WriteBinBuilder:
    """``upsert(key).bin("a").add(1)``: operations on one bin."""

    __slots__ = ("_w", "_name")

    def __init__(self, w: _WriteBase, name: str) -> None:
        if not isinstance(name, str):
            raise TypeError("bin name must be a str")
        self._w = w
        self._name = name

    def set_to(self, value: Any) -> Any:
        return self._w.set_to(self._name, value)

    def set_to_geo_json(self, value: Any) -> Any:
        from ._types import GeoJSON
        return self._w.set_to(self._name, value if isinstance(value, GeoJSON) else GeoJSON(value))

    def add(self, value: int | float) -> Any:
        return self._w.add(self._name, value)

    increment_by = add

    def append(self, value: str | bytes) -> Any:
        return self._w.append(self._name, value)

    def prepend(self, value: str | bytes) -> Any:
        return self._w.prepend(self._name, value)

    def remove(self) -> Any:
        return self._w.remove_bin(self._name)

    def get(self) -> Any:
        return self._w.get(self._name)


class SyncWriteSegmentBuilder(_WriteBase):
    execute = SyncQueryBuilder.execute


class WriteSegmentBuilder(_WriteBase):
    execute = QueryBuilder.execute


for _q, _w in ((SyncQueryBuilder, SyncWriteSegmentBuilder), (QueryBuilder, WriteSegmentBuilder)):
    _q._query_cls = _w._query_cls = _q
    _q._write_cls = _w._write_cls = _w
del _q, _w


# --------------------------------------------------------------------------- batch builder


def _batch_on_error(on_error: OnError) -> OnError:
    # Batch results keep their error rows unless a handler takes them.
    if on_error is None or on_error is ErrorStrategy.IN_STREAM:
        return ErrorStrategy.IN_STREAM
    if not callable(on_error):
        raise TypeError("batch execute(on_error=...) takes a callable(key, index, exc)")
    return on_error


class _BatchBase:
    """``session.batch()``: per-key mixed writes executed as one batch."""

    __slots__ = ("_session",)
    _key_cls: type

    def __init__(self, session: Any) -> None:
        self._session = session

    def _add(self, verb: str, key: Key) -> Any:
        if not isinstance(key, Key):
            raise TypeError(f"batch verbs take one Key, not {type(key).__name__}")
        return self._key_cls(self._session, verb, [key])

    def insert(self, key: Key) -> Any:
        return self._add("insert", key)

    def update(self, key: Key) -> Any:
        return self._add("update", key)

    def upsert(self, key: Key) -> Any:
        return self._add("upsert", key)

    def replace(self, key: Key) -> Any:
        return self._add("replace", key)

    def replace_if_exists(self, key: Key) -> Any:
        return self._add("replace_if_exists", key)

    def delete(self, key: Key) -> Any:
        return self._add("delete", key)


class _BatchKeyBase(_WriteBase):
    def _add(self, verb: str, key: Key) -> Any:
        if not isinstance(key, Key):
            raise TypeError(f"batch verbs take one Key, not {type(key).__name__}")
        return type(self)(self._session, verb, [key], self._chain_specs())

    def insert(self, key: Key) -> Any:  # type: ignore[override]
        return self._add("insert", key)

    def update(self, key: Key) -> Any:  # type: ignore[override]
        return self._add("update", key)

    def upsert(self, key: Key) -> Any:  # type: ignore[override]
        return self._add("upsert", key)

    def replace(self, key: Key) -> Any:  # type: ignore[override]
        return self._add("replace", key)

    def replace_if_exists(self, key: Key) -> Any:  # type: ignore[override]
        return self._add("replace_if_exists", key)

    def delete(self, key: Key) -> Any:  # type: ignore[override]
        return self._add("delete", key)


class SyncBatchKeyOperationBuilder(_BatchKeyBase):
    """Results are materialised in input order; every write is complete when
    ``execute()`` returns."""

    def execute(self, on_error: OnError = None) -> list:  # type: ignore[override]
        results = self._session._batch(_rows(self._chain_specs())[0])
        return route_results(results, [(True, True, True)] * len(results),
                             _batch_on_error(on_error), False)

    def execute_stream(self, on_error: OnError = None) -> SyncRecordStream:
        return SyncRecordStream(self.execute(on_error))


class BatchKeyOperationBuilder(_BatchKeyBase):
    async def execute(self, on_error: OnError = None) -> list:  # type: ignore[override]
        results = await self._session._batch(_rows(self._chain_specs())[0])
        return route_results(results, [(True, True, True)] * len(results),
                             _batch_on_error(on_error), False)

    async def execute_stream(self, on_error: OnError = None) -> RecordStream:
        return RecordStream(await self.execute(on_error))


class SyncBatchOperationBuilder(_BatchBase):
    __slots__ = ()
    _key_cls = SyncBatchKeyOperationBuilder


class BatchOperationBuilder(_BatchBase):
    __slots__ = ()
    _key_cls = BatchKeyOperationBuilder


# --------------------------------------------------------------------------- session mixin


_new = object.__new__


class _SessionVerbs:
    """Builder entry points of a session (sync or async flavour)."""

    __slots__ = ()
    _query_cls: type
    _write_cls: type
    _batch_cls: type

    def query(self, target: Any, *more: Any) -> Any:
        """Read one key, several keys (one batch), or chain more specs."""
        if more or type(target) is not Key:
            return self._query_cls(self, _keys_of(target, more))
        b = _new(self._query_cls)
        b._session = self
        b._keys = [target]
        return b

    def _write_verb(self, verb: str, target: Any, more: tuple) -> Any:
        if more or type(target) is not Key:
            return self._write_cls(self, verb, _keys_of(target, more))
        b = _new(self._write_cls)
        b._session = self
        b._verb = verb
        b._keys = [target]
        return b

    def upsert(self, target: Any, *more: Any) -> Any:
        return self._write_verb("upsert", target, more)

    def insert(self, target: Any, *more: Any) -> Any:
        return self._write_verb("insert", target, more)

    def update(self, target: Any, *more: Any) -> Any:
        return self._write_verb("update", target, more)

    def replace(self, target: Any, *more: Any) -> Any:
        return self._write_verb("replace", target, more)

    def replace_if_exists(self, target: Any, *more: Any) -> Any:
        return self._write_verb("replace_if_exists", target, more)

    def batch(self) -> Any:
        return self._batch_cls(self)
