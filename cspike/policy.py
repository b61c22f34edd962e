"""Policy model: ``Settings``, scope-aware ``Behavior`` bundles and ``SystemSettings``.

A :class:`Behavior` holds :class:`Settings` patches keyed by :class:`Scope`. For one operation
context ``(OpKind, OpShape, Mode)`` the patches are layered from least to most specific::

    parent chain first, then
    ALL -> READS | WRITES -> READS_AP/SC | WRITES_AP/SC
        -> (writes only) WRITES_RETRYABLE | WRITES_NON_RETRYABLE
        -> shape scope (READS_POINT/BATCH/QUERY or WRITES_POINT/BATCH/QUERY)

Sessions resolve (and :func:`compile_settings` flattens) each context once per session, never per
call (design decision 6), so nothing here is on the per-operation path.

Unlike PSDK, whose sessions only ever ask for ``WRITE_NON_RETRYABLE`` (so ``writes_retryable``
patches were dead), cspike sessions ask for ``OpKind.WRITE_RETRYABLE`` for idempotent writes
(plain put/delete/touch without increments, appends or other read-modify-write ops), so those
patches take effect. With :attr:`Behavior.DEFAULT` such writes inherit ``max_retries=2`` from
``ALL`` while non-retryable writes keep ``max_retries=0``.

The module depends only on the standard library and can be imported without the C extension.
"""

from __future__ import annotations

import enum
import math
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import timedelta
from types import MappingProxyType
from typing import Any, ClassVar

__all__ = [
    "Scope", "OpKind", "OpShape", "Mode",
    "Replica", "ReadModeAP", "ReadModeSC", "CommitLevel",
    "Settings", "Behavior", "SystemSettings",
    "resolution_order", "get_behavior", "get_behavior_or_default", "get_all_behaviors",
    "FALLBACK_SETTINGS", "COMPILED_FIELDS", "compile_settings",
    "COMPILED_SYSTEM_FIELDS", "compile_system_settings",
]

# --------------------------------------------------------------------------- enums


class Scope(enum.Enum):
    """Where a ``Settings`` patch applies. Values are the ``derive_with_changes`` kwarg names
    (as in PSDK), so ``Scope("reads_sc") is Scope.READS_SC``."""

    ALL = "all"
    READS = "reads"
    READS_AP = "reads_ap"
    READS_SC = "reads_sc"
    READS_POINT = "reads_point"
    READS_BATCH = "reads_batch"
    READS_QUERY = "reads_query"
    WRITES = "writes"
    WRITES_AP = "writes_ap"
    WRITES_SC = "writes_sc"
    WRITES_RETRYABLE = "writes_retryable"
    WRITES_NON_RETRYABLE = "writes_non_retryable"
    WRITES_POINT = "writes_point"
    WRITES_BATCH = "writes_batch"
    WRITES_QUERY = "writes_query"


class OpKind(enum.Enum):
    """Kind of operation; ``WRITE_RETRYABLE`` is asked for idempotent writes (see module doc)."""

    READ = "read"
    WRITE_RETRYABLE = "write_retryable"
    WRITE_NON_RETRYABLE = "write_non_retryable"


class OpShape(enum.Enum):
    """Cardinality of an operation: one key, many keys, or a scan/query."""

    POINT = "point"
    BATCH = "batch"
    QUERY = "query"


class Mode(enum.Enum):
    """Namespace consistency mode (``strong-consistency=true`` -> SC)."""

    AP = "ap"
    SC = "sc"


class Replica(enum.IntEnum):
    """Replica selection for routing (client-side only, no wire bits).

    Values follow the Aerospike C client's ``as_policy_replica`` order, RANDOM appended.
    """

    MASTER = 0
    ANY = 1
    SEQUENCE = 2
    PREFER_RACK = 3
    RANDOM = 4


class ReadModeAP(enum.IntEnum):
    """AP read consistency. ``ALL`` sets info1 ``READ_MODE_AP_ALL`` (0x40): duplicate-resolve."""

    ONE = 0
    ALL = 1

    @property
    def info1_bits(self) -> int:
        return 0x40 if self is ReadModeAP.ALL else 0


class ReadModeSC(enum.IntEnum):
    """SC read mode; the value is ``(SC_READ_RELAX << 1) | SC_READ_TYPE``, so
    ``value << 6`` gives the info3 bits (TYPE 0x40, RELAX 0x80)."""

    SESSION = 0
    LINEARIZE = 1
    ALLOW_REPLICA = 2
    ALLOW_UNAVAILABLE = 3

    @property
    def info3_bits(self) -> int:
        return int(self) << 6


class CommitLevel(enum.IntEnum):
    """Write commit level; ``value << 1`` gives info3 ``COMMIT_MASTER`` (0x02)."""

    COMMIT_ALL = 0
    COMMIT_MASTER = 1

    @property
    def info3_bits(self) -> int:
        return int(self) << 1


# --------------------------------------------------------------------------- validation

_U32_MAX = 0xFFFFFFFF
# Wire timeouts are u32 milliseconds.
_MAX_TIMEDELTA = timedelta(milliseconds=_U32_MAX)
_ZERO = timedelta(0)
_Check = Callable[[str, str, Any], Any]


def _to_timedelta(owner: str, name: str, v: Any) -> timedelta:
    """Accept a ``timedelta`` or a number of seconds; reject negatives, NaN/inf, > u32 ms."""
    if isinstance(v, timedelta):
        td = v
    elif isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(
            f"{owner}.{name} must be a timedelta or a number of seconds, "
            f"not {type(v).__name__}")
    else:
        if not math.isfinite(v):
            raise ValueError(f"{owner}.{name} must be finite, got {v!r}")
        if v < 0:
            raise ValueError(f"{owner}.{name} must not be negative, got {v!r}")
        if v > _MAX_TIMEDELTA.total_seconds():
            raise ValueError(f"{owner}.{name} is too large ({v!r} s; max {_U32_MAX} ms)")
        td = timedelta(seconds=v)
        if v > 0 and not td:
            # A positive sub-microsecond value must not turn into 0 ("no limit").
            td = timedelta(microseconds=1)
    if td < _ZERO:
        raise ValueError(f"{owner}.{name} must not be negative, got {td!r}")
    if td > _MAX_TIMEDELTA:
        raise ValueError(f"{owner}.{name} is too large ({td!r}; max {_U32_MAX} ms)")
    return td


def _int_check(lo: int, hi: int, hint: str = "") -> _Check:
    def check(owner: str, name: str, v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{owner}.{name} must be an int, not {type(v).__name__}")
        if not lo <= v <= hi:
            raise ValueError(f"{owner}.{name} must be in {lo}..{hi}{hint}, got {v!r}")
        return int(v)
    return check


def _bool_check(owner: str, name: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise TypeError(f"{owner}.{name} must be a bool, not {type(v).__name__}")
    return v


def _enum_check(cls: type[enum.IntEnum]) -> _Check:
    """Accept a member, its int value or its name (case-insensitive, handy for config files)."""
    def check(owner: str, name: str, v: Any) -> enum.IntEnum:
        if isinstance(v, cls):
            return v
        if isinstance(v, (enum.Enum, bool)):
            raise TypeError(f"{owner}.{name} must be a {cls.__name__}, not {type(v).__name__}")
        if isinstance(v, int):
            try:
                return cls(v)
            except ValueError:
                raise ValueError(f"{owner}.{name}: {v!r} is not a valid {cls.__name__}") from None
        if isinstance(v, str):
            try:
                return cls[v.upper()]
            except KeyError:
                raise ValueError(f"{owner}.{name}: {v!r} is not a valid {cls.__name__}") from None
        raise TypeError(f"{owner}.{name} must be a {cls.__name__}, not {type(v).__name__}")
    return check


def _fmt_td(td: timedelta) -> str:
    us = td // timedelta(microseconds=1)
    if us % 1_000_000 == 0:
        return f"{us // 1_000_000}s"
    if us % 1000 == 0:
        return f"{us // 1000}ms"
    return f"{us / 1000:g}ms"


def _fmt_value(v: Any) -> str:
    if isinstance(v, timedelta):
        return _fmt_td(v)
    if isinstance(v, enum.Enum):
        return v.name
    return repr(v)


# --------------------------------------------------------------------------- Settings


@dataclass(frozen=True, slots=True, repr=False)
class Settings:
    """Immutable bundle of per-operation settings; ``None`` = not set here (inherit).

    Timeouts and the retry delay accept a ``timedelta`` or a number of seconds and are stored
    as ``timedelta``; ``0`` means "no limit". Enum fields accept the member, its int value or
    its name. Bad types raise ``TypeError``, bad values ``ValueError``; both name the field.
    """

    total_timeout: timedelta | None = None
    socket_timeout: timedelta | None = None
    retry_delay: timedelta | None = None
    max_retries: int | None = None
    send_key: bool | None = None
    durable_delete: bool | None = None
    commit_level: CommitLevel | None = None
    replica: Replica | None = None
    read_mode_ap: ReadModeAP | None = None
    read_mode_sc: ReadModeSC | None = None
    use_compression: bool | None = None
    compression_threshold: int | None = None
    max_concurrent_nodes: int | None = None
    record_queue_size: int | None = None
    allow_inline: bool | None = None
    allow_inline_ssd: bool | None = None
    read_touch_ttl_percent: int | None = None

    def __post_init__(self) -> None:
        for name, check in _SETTINGS_CHECKS.items():
            v = getattr(self, name)
            if v is not None:
                nv = check("Settings", name, v)
                if nv is not v:
                    object.__setattr__(self, name, nv)

    @classmethod
    def merge(cls, base: Settings | None, override: Settings | None) -> Settings:
        """Return ``base`` with every non-None field of ``override`` laid over it."""
        if override is None:
            return base if base is not None else cls()
        if base is None:
            return override
        new = object.__new__(cls)
        # Both inputs are already validated, so skip __init__/__post_init__.
        for n in _SETTINGS_FIELDS:
            v = getattr(override, n)
            object.__setattr__(new, n, v if v is not None else getattr(base, n))
        return new

    def set_fields(self) -> dict[str, Any]:
        """The fields that are not None, in declaration order."""
        return {n: v for n in _SETTINGS_FIELDS if (v := getattr(self, n)) is not None}

    def is_empty(self) -> bool:
        return all(getattr(self, n) is None for n in _SETTINGS_FIELDS)

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={_fmt_value(v)}" for k, v in self.set_fields().items())
        return f"Settings({body})"


_SETTINGS_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Settings))
_SETTINGS_CHECKS: dict[str, _Check] = {
    "total_timeout": _to_timedelta,
    "socket_timeout": _to_timedelta,
    "retry_delay": _to_timedelta,
    "max_retries": _int_check(0, _U32_MAX),
    "send_key": _bool_check,
    "durable_delete": _bool_check,
    "commit_level": _enum_check(CommitLevel),
    "replica": _enum_check(Replica),
    "read_mode_ap": _enum_check(ReadModeAP),
    "read_mode_sc": _enum_check(ReadModeSC),
    "use_compression": _bool_check,
    "compression_threshold": _int_check(0, _U32_MAX),
    "max_concurrent_nodes": _int_check(0, _U32_MAX, " (0 = all nodes at once)"),
    "record_queue_size": _int_check(1, _U32_MAX),
    "allow_inline": _bool_check,
    "allow_inline_ssd": _bool_check,
    # -1 = never reset TTL on reads, 0 = namespace default, 1..100 = percent of the write TTL.
    "read_touch_ttl_percent": _int_check(-1, 100, " (or -1)"),
}
assert list(_SETTINGS_CHECKS) == list(_SETTINGS_FIELDS)
_EMPTY = Settings()


def _as_settings(what: str, v: Any) -> Settings:
    """Accept a ``Settings`` or a mapping of field -> value."""
    if isinstance(v, Settings):
        return v
    if isinstance(v, Mapping):
        unknown = [k for k in v if k not in _SETTINGS_CHECKS]
        if unknown:
            raise TypeError(f"{what}: unknown Settings field(s) {', '.join(map(str, unknown))}")
        return Settings(**v)
    raise TypeError(f"{what} must be a Settings or a mapping, not {type(v).__name__}")


# --------------------------------------------------------------------------- resolution

_OpKey = tuple[OpKind, OpShape, Mode]
_READ_SHAPE = {OpShape.POINT: Scope.READS_POINT, OpShape.BATCH: Scope.READS_BATCH,
               OpShape.QUERY: Scope.READS_QUERY}
_WRITE_SHAPE = {OpShape.POINT: Scope.WRITES_POINT, OpShape.BATCH: Scope.WRITES_BATCH,
                OpShape.QUERY: Scope.WRITES_QUERY}


def _order(kind: OpKind, shape: OpShape, mode: Mode) -> tuple[Scope, ...]:
    if kind is OpKind.READ:
        return (Scope.ALL, Scope.READS,
                Scope.READS_AP if mode is Mode.AP else Scope.READS_SC, _READ_SHAPE[shape])
    return (Scope.ALL, Scope.WRITES,
            Scope.WRITES_AP if mode is Mode.AP else Scope.WRITES_SC,
            Scope.WRITES_RETRYABLE if kind is OpKind.WRITE_RETRYABLE
            else Scope.WRITES_NON_RETRYABLE,
            _WRITE_SHAPE[shape])


_ALL_KEYS: tuple[_OpKey, ...] = tuple((k, s, m) for k in OpKind for s in OpShape for m in Mode)
_ORDERS: dict[_OpKey, tuple[Scope, ...]] = {key: _order(*key) for key in _ALL_KEYS}


def _op_key(kind: Any, shape: Any, mode: Any) -> _OpKey:
    """Normalise (member or value) -> enum members; ValueError names the bad argument."""
    out = []
    for arg, cls, v in (("kind", OpKind, kind), ("shape", OpShape, shape), ("mode", Mode, mode)):
        try:
            out.append(cls(v))
        except ValueError:
            raise ValueError(f"{arg}: {v!r} is not a valid {cls.__name__}") from None
    return out[0], out[1], out[2]


def resolution_order(kind: OpKind, shape: OpShape, mode: Mode = Mode.AP) -> tuple[Scope, ...]:
    """Scopes applied for one context, least specific first (within one Behavior)."""
    return _ORDERS[_op_key(kind, shape, mode)]


# --------------------------------------------------------------------------- registry

_registry: dict[str, Behavior] = {}
# Guards registration and the children lists; lookups read the dict without it.
_registry_lock = threading.Lock()


def get_behavior(name: str) -> Behavior | None:
    """The behavior registered under ``name``, or ``None``."""
    return _registry.get(name)


def get_behavior_or_default(name: str | None) -> Behavior:
    """The behavior registered under ``name``, else the one registered as ``"DEFAULT"``."""
    b = _registry.get(name) if name is not None else None
    if b is None:
        b = _registry.get("DEFAULT") or Behavior.DEFAULT
    return b


def get_all_behaviors() -> dict[str, Behavior]:
    """Snapshot of the registry (name -> behavior)."""
    with _registry_lock:
        return dict(_registry)


class _ClassOrInstance:
    """Descriptor dispatching to one function on the class and another on instances."""

    def __init__(self, on_class: Callable[..., Any], on_instance: Callable[..., Any]) -> None:
        self._on_class, self._on_instance = on_class, on_instance
        self.__doc__ = on_instance.__doc__

    def __get__(self, obj: Any, owner: type | None = None) -> Callable[..., Any]:
        if obj is None:
            return self._on_class
        return self._on_instance.__get__(obj, owner)


# --------------------------------------------------------------------------- Behavior


class Behavior:
    """Named, immutable, scope-aware bundle of :class:`Settings` patches.

    Every Behavior registers itself by name on construction (a later one with the same name
    replaces it in the registry). Resolved settings are cached per ``(kind, shape, mode)``;
    the cache is only ever swapped or extended with complete ``Settings`` objects, so racing
    threads may compute an entry twice but never see a half-built one.
    """

    DEFAULT: ClassVar[Behavior]
    READ_FAST: ClassVar[Behavior]
    STRICTLY_CONSISTENT: ClassVar[Behavior]
    FAST_RACK_AWARE: ClassVar[Behavior]

    __slots__ = ("_name", "_patches", "_parent", "_children", "_prune_at", "_cache",
                 "_compiled", "__weakref__")

    def __init__(self, name: str, patches: Mapping[Scope, Settings] | None = None,
                 parent: Behavior | None = None) -> None:
        if not isinstance(name, str):
            raise TypeError(f"Behavior name must be a str, not {type(name).__name__}")
        if not name:
            raise ValueError("Behavior name must not be empty")
        if parent is not None and not isinstance(parent, Behavior):
            raise TypeError(f"Behavior parent must be a Behavior, not {type(parent).__name__}")
        norm: dict[Scope, Settings] = {}
        for scope, s in (patches or {}).items():
            try:
                sc = Scope(scope)
            except ValueError:
                raise ValueError(f"Behavior {name!r}: {scope!r} is not a Scope") from None
            norm[sc] = _as_settings(f"Behavior {name!r} patch {sc.value}", s)
        self._name = name
        # Scope declaration order, so explain() reads general -> specific.
        self._patches = MappingProxyType({sc: norm[sc] for sc in Scope if sc in norm})
        self._parent = parent
        self._children: list[weakref.ref[Behavior]] = []
        self._prune_at = 8
        self._cache: dict[_OpKey, Settings] = {}
        self._compiled: dict[_OpKey, tuple] = {}
        with _registry_lock:
            if parent is not None:
                # Weak refs: a replaced, unused derived behavior can be collected. Dead refs
                # are pruned when the list doubles, so appending stays amortised O(1).
                kids = parent._children
                if len(kids) >= parent._prune_at:
                    kids = parent._children = [r for r in kids if r() is not None]
                    parent._prune_at = max(8, 2 * len(kids))
                kids.append(weakref.ref(self))
            _registry[name] = self

    # -- identity and tree ----------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def parent(self) -> Behavior | None:
        return self._parent

    @property
    def children(self) -> list[Behavior]:
        """Live behaviors derived from this one, in creation order."""
        with _registry_lock:
            refs = list(self._children)
        return [b for r in refs if (b := r()) is not None]

    @property
    def patches(self) -> Mapping[Scope, Settings]:
        """This behavior's own patches (read-only; the parent's are not included)."""
        return self._patches

    def _find_in_tree(self, name: str) -> Behavior | None:
        """Search this behavior and its descendants for ``name`` (depth first)."""
        if self._name == name:
            return self
        for child in self.children:
            found = child._find_in_tree(name)
            if found is not None:
                return found
        return None

    # ``Behavior.find_behavior(name)`` looks in the registry; ``b.find_behavior(name)`` in the
    # subtree rooted at ``b`` (PSDK's instance method).
    find_behavior = _ClassOrInstance(get_behavior, _find_in_tree)

    # -- resolution -----------------------------------------------------------------------

    def get_settings(self, kind: OpKind, shape: OpShape, mode: Mode = Mode.AP) -> Settings:
        """Settings for one context: parent's resolution with this behavior's scopes on top.

        Fields set nowhere in the chain stay ``None`` (see :func:`compile_settings`).
        """
        cache = self._cache
        s = cache.get((kind, shape, mode))
        if s is None:
            key = _op_key(kind, shape, mode)
            s = cache.get(key)
            if s is None:
                s = self._parent.get_settings(*key) if self._parent is not None else _EMPTY
                patches = self._patches
                for scope in _ORDERS[key]:
                    p = patches.get(scope)
                    if p is not None:
                        s = Settings.merge(s, p)
                cache[key] = s
        return s

    def get_compiled(self, kind: OpKind, shape: OpShape, mode: Mode = Mode.AP) -> tuple:
        """``compile_settings(get_settings(...))``, cached alongside the settings."""
        compiled = self._compiled
        t = compiled.get((kind, shape, mode))
        if t is None:
            key = _op_key(kind, shape, mode)
            t = compiled.get(key)
            if t is None:
                t = compile_settings(self.get_settings(*key))
                compiled[key] = t
        return t

    def clear_cache(self) -> None:
        """Drop resolved settings here and in every descendant (recomputed on demand)."""
        # Swap rather than .clear(): a reader holding the old dict keeps a consistent view.
        self._cache = {}
        self._compiled = {}
        for child in self.children:
            child.clear_cache()

    def derive_with_changes(
        self, name: str, *,
        all: Settings | Mapping[str, Any] | None = None,  # noqa: A002 (PSDK's kwarg name)
        reads: Settings | Mapping[str, Any] | None = None,
        reads_point: Settings | Mapping[str, Any] | None = None,
        reads_batch: Settings | Mapping[str, Any] | None = None,
        reads_query: Settings | Mapping[str, Any] | None = None,
        reads_ap: Settings | Mapping[str, Any] | None = None,
        reads_sc: Settings | Mapping[str, Any] | None = None,
        writes: Settings | Mapping[str, Any] | None = None,
        writes_retryable: Settings | Mapping[str, Any] | None = None,
        writes_non_retryable: Settings | Mapping[str, Any] | None = None,
        writes_point: Settings | Mapping[str, Any] | None = None,
        writes_batch: Settings | Mapping[str, Any] | None = None,
        writes_query: Settings | Mapping[str, Any] | None = None,
        writes_ap: Settings | Mapping[str, Any] | None = None,
        writes_sc: Settings | Mapping[str, Any] | None = None,
        **flat: Any,
    ) -> Behavior:
        """New child behavior (registered as ``name``) with the given scope patches.

        ``flat`` takes any :class:`Settings` field (``total_timeout=0.5, max_retries=3``...);
        those merge into the ``ALL`` patch and win over the same field given in ``all=``.
        """
        scoped = {
            Scope.ALL: all, Scope.READS: reads, Scope.READS_POINT: reads_point,
            Scope.READS_BATCH: reads_batch, Scope.READS_QUERY: reads_query,
            Scope.READS_AP: reads_ap, Scope.READS_SC: reads_sc, Scope.WRITES: writes,
            Scope.WRITES_RETRYABLE: writes_retryable,
            Scope.WRITES_NON_RETRYABLE: writes_non_retryable,
            Scope.WRITES_POINT: writes_point, Scope.WRITES_BATCH: writes_batch,
            Scope.WRITES_QUERY: writes_query, Scope.WRITES_AP: writes_ap,
            Scope.WRITES_SC: writes_sc,
        }
        unknown = [k for k in flat if k not in _SETTINGS_CHECKS]
        if unknown:
            raise TypeError("derive_with_changes() got unexpected keyword argument(s): "
                            + ", ".join(unknown))
        patches: dict[Scope, Settings] = {}
        for scope, v in scoped.items():
            if v is not None:
                patches[scope] = _as_settings(scope.value, v)
        flat_set = {k: v for k, v in flat.items() if v is not None}
        if flat_set:
            patches[Scope.ALL] = Settings.merge(patches.get(Scope.ALL), Settings(**flat_set))
        return Behavior(name, patches, parent=self)

    def explain(self) -> str:
        """Readable dump: lineage, own patches, and the resolved matrix."""
        lineage, b = [], self._parent
        while b is not None:
            lineage.append(repr(b._name))
            b = b._parent
        head = f"Behavior {self._name!r}"
        if lineage:
            head += " <- " + " <- ".join(lineage)
        lines = [head, "patches:"]
        if not self._patches:
            lines.append("  (none)")
        width = max((len(sc.value) for sc in self._patches), default=0)
        for sc, s in self._patches.items():
            lines.append(f"  {sc.value:<{width}} : {_fmt_settings(s)}")
        lines.append("resolved:")
        labels = {key: "/".join(p.value for p in key) for key in _ALL_KEYS}
        width = max(len(v) for v in labels.values())
        for key in _ALL_KEYS:
            lines.append(f"  {labels[key]:<{width}} : {_fmt_settings(self.get_settings(*key))}")
        return "\n".join(lines)

    # -- PSDK back-compat properties (READ / POINT / AP) -------------------------------

    @property
    def total_timeout(self) -> timedelta:
        v = self.get_settings(OpKind.READ, OpShape.POINT).total_timeout
        return v if v is not None else _ZERO

    @property
    def socket_timeout(self) -> timedelta:
        v = self.get_settings(OpKind.READ, OpShape.POINT).socket_timeout
        return v if v is not None else _ZERO

    @property
    def max_retries(self) -> int:
        v = self.get_settings(OpKind.READ, OpShape.POINT).max_retries
        return v if v is not None else 0

    @property
    def retry_delay(self) -> timedelta:
        v = self.get_settings(OpKind.READ, OpShape.POINT).retry_delay
        return v if v is not None else _ZERO

    @property
    def send_key(self) -> bool:
        v = self.get_settings(OpKind.READ, OpShape.POINT).send_key
        return v if v is not None else False

    def __repr__(self) -> str:
        parent = f", parent={self._parent._name!r}" if self._parent is not None else ""
        return f"Behavior({self._name!r}{parent})"

    # Behaviors are per-process registry objects; keep them out of copy/pickle surprises.
    def __copy__(self) -> Behavior:
        return self

    def __deepcopy__(self, memo: dict) -> Behavior:
        return self


def _fmt_settings(s: Settings) -> str:
    items = s.set_fields()
    return ", ".join(f"{k}={_fmt_value(v)}" for k, v in items.items()) if items else "-"


# --------------------------------------------------------------------------- presets

Behavior.DEFAULT = Behavior("DEFAULT", {
    Scope.ALL: Settings(
        total_timeout=timedelta(seconds=30), socket_timeout=timedelta(seconds=5),
        max_retries=2, retry_delay=_ZERO, send_key=True, replica=Replica.SEQUENCE,
        durable_delete=False, max_concurrent_nodes=1, read_touch_ttl_percent=0),
    Scope.READS_BATCH: Settings(allow_inline=True, allow_inline_ssd=False),
    Scope.READS_QUERY: Settings(max_retries=5, record_queue_size=5000),
    Scope.WRITES_NON_RETRYABLE: Settings(max_retries=0),
    Scope.WRITES_AP: Settings(commit_level=CommitLevel.COMMIT_ALL),
    Scope.WRITES_SC: Settings(durable_delete=True),
    Scope.WRITES_BATCH: Settings(allow_inline=True, allow_inline_ssd=False),
})
Behavior.READ_FAST = Behavior.DEFAULT.derive_with_changes(
    "READ_FAST",
    reads=Settings(socket_timeout=timedelta(milliseconds=50),
                   total_timeout=timedelta(milliseconds=200), max_retries=3))
Behavior.STRICTLY_CONSISTENT = Behavior.DEFAULT.derive_with_changes(
    "STRICTLY_CONSISTENT", reads_sc=Settings(read_mode_sc=ReadModeSC.LINEARIZE))
Behavior.FAST_RACK_AWARE = Behavior.READ_FAST.derive_with_changes(
    "FAST_RACK_AWARE",
    reads=Settings(replica=Replica.PREFER_RACK),
    reads_sc=Settings(read_mode_sc=ReadModeSC.SESSION))


# --------------------------------------------------------------------------- compiling

#: Values :func:`compile_settings` uses for fields left ``None`` everywhere: DEFAULT's ``ALL``
#: values, plus the wire defaults (commit all, read mode ONE / SESSION, no compression).
FALLBACK_SETTINGS = Settings(
    total_timeout=timedelta(seconds=30), socket_timeout=timedelta(seconds=5),
    retry_delay=_ZERO, max_retries=2, send_key=True, durable_delete=False,
    commit_level=CommitLevel.COMMIT_ALL, replica=Replica.SEQUENCE,
    read_mode_ap=ReadModeAP.ONE, read_mode_sc=ReadModeSC.SESSION,
    use_compression=False, compression_threshold=0, max_concurrent_nodes=1,
    record_queue_size=5000, allow_inline=True, allow_inline_ssd=False,
    read_touch_ttl_percent=0)

#: Field order of the tuple :func:`compile_settings` returns.
COMPILED_FIELDS: tuple[str, ...] = (
    "total_timeout_ms", "socket_timeout_ms", "max_retries", "retry_delay_ms", "send_key",
    "durable_delete", "commit_level", "replica", "read_mode_ap", "read_mode_sc",
    "read_touch_ttl_percent", "use_compression", "compression_threshold")

_MS = timedelta(milliseconds=1)


def _ms(td: timedelta) -> int:
    """Whole milliseconds, rounded up (a positive limit never becomes 0 = "no limit")."""
    q, r = divmod(td, _MS)
    return q + 1 if r else q


def compile_settings(s: Settings) -> tuple:
    """Flatten resolved settings into the tuple the C extension reads once per session.

    ``(total_timeout_ms, socket_timeout_ms, max_retries, retry_delay_ms, send_key,
    durable_delete, commit_level, replica, read_mode_ap, read_mode_sc,
    read_touch_ttl_percent, use_compression, compression_threshold)`` -- plain ints/bools,
    enum fields as their int values. ``None`` fields take :data:`FALLBACK_SETTINGS`.
    Timeouts are whole ms rounded up; 0 means no limit. As the Aerospike C client does,
    a socket timeout larger than a non-zero total timeout is clamped to the total.
    """
    if not isinstance(s, Settings):
        raise TypeError(f"compile_settings() needs a Settings, not {type(s).__name__}")
    f = Settings.merge(FALLBACK_SETTINGS, s)
    total, sock = _ms(f.total_timeout), _ms(f.socket_timeout)  # type: ignore[arg-type]
    if total and (sock == 0 or sock > total):
        sock = total
    return (total, sock, f.max_retries, _ms(f.retry_delay),  # type: ignore[arg-type]
            f.send_key, f.durable_delete, int(f.commit_level),  # type: ignore[arg-type]
            int(f.replica), int(f.read_mode_ap), int(f.read_mode_sc),  # type: ignore[arg-type]
            f.read_touch_ttl_percent, f.use_compression, f.compression_threshold)


# --------------------------------------------------------------------------- SystemSettings


@dataclass(frozen=True, slots=True)
class SystemSettings:
    """Cluster-wide settings (pools, tending, circuit breaker). All fields are applied.

    Durations accept a ``timedelta`` or seconds. ``max_error_rate`` errors per node within
    ``error_rate_window`` tend intervals open the node's circuit breaker (0 disables it).
    ``connect_timeout`` bounds one connection's setup (TCP, TLS, login); 0 = no separate bound.
    """

    min_connections_per_node: int = 0
    max_connections_per_node: int = 100
    conn_pools_per_node: int = 1
    max_socket_idle_time: timedelta = timedelta(seconds=55)
    tend_interval: timedelta = timedelta(seconds=1)
    connect_timeout: timedelta = timedelta(seconds=1)
    max_error_rate: int = 100
    error_rate_window: int = 1
    cluster_name: str | None = None
    fail_if_not_connected: bool = True
    use_services_alternate: bool = False

    def __post_init__(self) -> None:
        for name, check in _SYSTEM_CHECKS.items():
            v = getattr(self, name)
            if v is None and name != "cluster_name":
                raise TypeError(f"SystemSettings.{name} must not be None")
            nv = check("SystemSettings", name, v)
            if nv is not v:
                object.__setattr__(self, name, nv)
        if self.min_connections_per_node > self.max_connections_per_node:
            raise ValueError(
                f"SystemSettings.min_connections_per_node ({self.min_connections_per_node}) "
                f"exceeds max_connections_per_node ({self.max_connections_per_node})")
        if self.conn_pools_per_node > self.max_connections_per_node:
            raise ValueError(
                f"SystemSettings.conn_pools_per_node ({self.conn_pools_per_node}) exceeds "
                f"max_connections_per_node ({self.max_connections_per_node})")
        if not self.tend_interval:
            raise ValueError("SystemSettings.tend_interval must be positive")


def _cluster_name_check(owner: str, name: str, v: Any) -> str | None:
    if v is None:
        return None
    if not isinstance(v, str):
        raise TypeError(f"{owner}.{name} must be a str or None, not {type(v).__name__}")
    if not v:
        raise ValueError(f"{owner}.{name} must not be empty (use None for no check)")
    return v


_SYSTEM_CHECKS: dict[str, _Check] = {
    "min_connections_per_node": _int_check(0, _U32_MAX),
    "max_connections_per_node": _int_check(1, _U32_MAX),
    "conn_pools_per_node": _int_check(1, 1024),
    "max_socket_idle_time": _to_timedelta,
    "tend_interval": _to_timedelta,
    "connect_timeout": _to_timedelta,
    "max_error_rate": _int_check(0, _U32_MAX, " (0 = no limit)"),
    "error_rate_window": _int_check(1, _U32_MAX),
    "cluster_name": _cluster_name_check,
    "fail_if_not_connected": _bool_check,
    "use_services_alternate": _bool_check,
}
assert set(_SYSTEM_CHECKS) == {f.name for f in fields(SystemSettings)}

#: Field order of the tuple :func:`compile_system_settings` returns.
COMPILED_SYSTEM_FIELDS: tuple[str, ...] = (
    "min_connections_per_node", "max_connections_per_node", "conn_pools_per_node",
    "max_socket_idle_time_ms", "tend_interval_ms", "connect_timeout_ms", "max_error_rate",
    "error_rate_window", "cluster_name", "fail_if_not_connected", "use_services_alternate")


def compile_system_settings(s: SystemSettings) -> tuple:
    """Flatten ``SystemSettings`` for the C extension (durations in whole ms, rounded up)."""
    if not isinstance(s, SystemSettings):
        raise TypeError(f"compile_system_settings() needs a SystemSettings, "
                        f"not {type(s).__name__}")
    return (s.min_connections_per_node, s.max_connections_per_node, s.conn_pools_per_node,
            _ms(s.max_socket_idle_time), _ms(s.tend_interval), _ms(s.connect_timeout),
            s.max_error_rate, s.error_rate_window, s.cluster_name,
            s.fail_if_not_connected, s.use_services_alternate)
