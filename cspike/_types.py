"""Value and addressing types: Key, DataSet, GeoJSON, Record."""

from __future__ import annotations

import json
from typing import Any, Iterable

from . import _core

Key = _core.Key
Record = _core.Record

__all__ = ["Key", "Record", "DataSet", "GeoJSON"]


class GeoJSON:
    """A GeoJSON value stored as Aerospike's GEOJSON particle.

    ``GeoJSON('{"type": "Point", "coordinates": [-122.0, 37.5]}')`` or
    ``GeoJSON({"type": "Point", ...})``; ``.value`` is the JSON text.
    """

    __slots__ = ("value",)

    def __init__(self, value: str | dict) -> None:
        if isinstance(value, dict):
            value = json.dumps(value, separators=(",", ":"))
        if not isinstance(value, str):
            raise TypeError(f"GeoJSON value must be a str or dict, not {type(value).__name__}")
        self.value = value

    def to_dict(self) -> dict:
        return json.loads(self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GeoJSON) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(self.value)

    def __repr__(self) -> str:
        return f"GeoJSON({self.value!r})"


_core._register_geojson(GeoJSON)


class DataSet:
    """A namespace + set pair; makes keys: ``DataSet.of("test", "users").id(1)``."""

    __slots__ = ("_namespace", "_set_name")

    def __init__(self, namespace: str, set_name: str) -> None:
        if not isinstance(namespace, str) or not namespace:
            raise ValueError("namespace must be a non-empty str")
        if not isinstance(set_name, str) or not set_name:
            raise ValueError("set_name must be a non-empty str")
        self._namespace = namespace
        self._set_name = set_name

    @classmethod
    def of(cls, namespace: str, set_name: str) -> DataSet:
        return cls(namespace, set_name)

    @property
    def namespace(self) -> str:
        return self._namespace

    @property
    def set_name(self) -> str:
        return self._set_name

    def id(self, value: str | int | bytes | bytearray) -> Key:
        """The key of the record whose user key is ``value``."""
        return Key(self._namespace, self._set_name, value)

    def ids(self, *values: Any) -> list[Key]:
        """Keys for several user keys: ``ids(1, 2, 3)`` or ``ids([1, 2, 3])``.

        In the list form, whole floats (``3.0``) are accepted as ints.
        """
        if len(values) == 1 and isinstance(values[0], (list, tuple, range)):
            out = []
            for v in values[0]:
                if isinstance(v, float):
                    if not v.is_integer():
                        raise ValueError(f"key value {v!r} is not a whole number")
                    v = int(v)
                out.append(Key(self._namespace, self._set_name, v))
            return out
        return [Key(self._namespace, self._set_name, v) for v in values]

    def id_from_digest(self, digest: bytes | str) -> Key:
        """A key from a 20-byte digest (bytes or hex text)."""
        if isinstance(digest, str):
            digest = bytes.fromhex(digest)
        return Key.from_digest(self._namespace, self._set_name, digest)

    def ids_from_digests(self, *digests: bytes | str) -> list[Key]:
        return [self.id_from_digest(d) for d in digests]

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, DataSet) and other._namespace == self._namespace
                and other._set_name == self._set_name)

    def __hash__(self) -> int:
        return hash((self._namespace, self._set_name))

    def __repr__(self) -> str:
        return f"DataSet({self._namespace!r}, {self._set_name!r})"


def _iter_keys(targets: Iterable[Any]) -> list[Key]:
    keys = []
    for t in targets:
        if isinstance(t, (list, tuple)):
            keys.extend(_iter_keys(t))
        elif isinstance(t, Key):
            keys.append(t)
        else:
            raise TypeError(f"expected a Key, not {type(t).__name__}")
    return keys
