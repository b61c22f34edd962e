"""Unit tests for cspike.policy (pure Python; no server, no C extension needed)."""

from __future__ import annotations

import copy
import dataclasses
import gc
import importlib.util
import itertools
import pathlib
import sys
import threading
import uuid
from datetime import timedelta

import pytest

_ROOT = pathlib.Path(__file__).resolve().parents[3]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))
try:
    from cspike import policy as P
except ImportError:  # package __init__ needs the unbuilt C extension: load the file alone
    _spec = importlib.util.spec_from_file_location(
        "_cspike_policy_standalone", _ROOT / "cspike" / "policy.py")
    assert _spec is not None and _spec.loader is not None
    P = importlib.util.module_from_spec(_spec)
    sys.modules[_spec.name] = P
    _spec.loader.exec_module(P)

Scope, OpKind, OpShape, Mode = P.Scope, P.OpKind, P.OpShape, P.Mode
Settings, Behavior = P.Settings, P.Behavior
ms = lambda n: timedelta(milliseconds=n)  # noqa: E731
ALL_KEYS = [(k, s, m) for k in OpKind for s in OpShape for m in Mode]


def uniq(prefix: str) -> str:
    """Registry is process-global: give every test behavior a fresh name."""
    return f"test-{prefix}-{uuid.uuid4().hex[:10]}"


# --------------------------------------------------------------------------- enums

def test_enum_members_and_wire_values():
    assert [s.name for s in Scope] == [
        "ALL", "READS", "READS_AP", "READS_SC", "READS_POINT", "READS_BATCH", "READS_QUERY",
        "WRITES", "WRITES_AP", "WRITES_SC", "WRITES_RETRYABLE", "WRITES_NON_RETRYABLE",
        "WRITES_POINT", "WRITES_BATCH", "WRITES_QUERY"]
    assert all(s.value == s.name.lower() for s in Scope)
    assert Scope("reads_sc") is Scope.READS_SC
    assert [k.name for k in OpKind] == ["READ", "WRITE_RETRYABLE", "WRITE_NON_RETRYABLE"]
    assert [s.name for s in OpShape] == ["POINT", "BATCH", "QUERY"]
    assert [m.name for m in Mode] == ["AP", "SC"]
    assert {r.name: int(r) for r in P.Replica} == {
        "MASTER": 0, "ANY": 1, "SEQUENCE": 2, "PREFER_RACK": 3, "RANDOM": 4}
    assert (int(P.ReadModeAP.ONE), int(P.ReadModeAP.ALL)) == (0, 1)
    assert P.ReadModeAP.ALL.info1_bits == 0x40 and P.ReadModeAP.ONE.info1_bits == 0
    assert [m.info3_bits for m in P.ReadModeSC] == [0x00, 0x40, 0x80, 0xC0]
    assert [m.name for m in P.ReadModeSC] == [
        "SESSION", "LINEARIZE", "ALLOW_REPLICA", "ALLOW_UNAVAILABLE"]
    assert P.CommitLevel.COMMIT_MASTER.info3_bits == 0x02
    assert P.CommitLevel.COMMIT_ALL.info3_bits == 0


# --------------------------------------------------------------------------- Settings

def test_settings_defaults_all_none_and_field_list():
    s = Settings()
    assert [f.name for f in dataclasses.fields(Settings)] == [
        "total_timeout", "socket_timeout", "retry_delay", "max_retries", "send_key",
        "durable_delete", "commit_level", "replica", "read_mode_ap", "read_mode_sc",
        "use_compression", "compression_threshold", "max_concurrent_nodes",
        "record_queue_size", "allow_inline", "allow_inline_ssd", "read_touch_ttl_percent"]
    assert all(getattr(s, f.name) is None for f in dataclasses.fields(Settings))
    assert s.is_empty() and s.set_fields() == {}


def test_settings_frozen_slots_hashable():
    s = Settings(max_retries=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.max_retries = 2  # type: ignore[misc]
    assert not hasattr(s, "__dict__")
    assert hash(s) == hash(Settings(max_retries=1)) and s == Settings(max_retries=1)


@pytest.mark.parametrize("value,expected", [
    (1, timedelta(seconds=1)), (0.25, ms(250)), (0, timedelta(0)),
    (ms(7), ms(7)), (1e-9, timedelta(microseconds=1)),
])
def test_settings_timeouts_normalised(value, expected):
    s = Settings(total_timeout=value, socket_timeout=value, retry_delay=value)
    assert s.total_timeout == s.socket_timeout == s.retry_delay == expected
    assert type(s.total_timeout) is timedelta


def test_settings_enum_coercion():
    s = Settings(replica=3, read_mode_sc="linearize", commit_level=P.CommitLevel.COMMIT_MASTER,
                 read_mode_ap="ALL")
    assert s.replica is P.Replica.PREFER_RACK
    assert s.read_mode_sc is P.ReadModeSC.LINEARIZE
    assert s.commit_level is P.CommitLevel.COMMIT_MASTER
    assert s.read_mode_ap is P.ReadModeAP.ALL


def test_settings_merge():
    base = Settings(total_timeout=1, max_retries=2, send_key=True)
    over = Settings(max_retries=0, send_key=False, replica=P.Replica.MASTER)
    m = Settings.merge(base, over)
    assert m == Settings(total_timeout=1, max_retries=0, send_key=False,
                         replica=P.Replica.MASTER)
    assert base.max_retries == 2  # inputs untouched
    assert Settings.merge(base, None) is base
    assert Settings.merge(None, over) is over
    assert Settings.merge(None, None) == Settings()
    assert Settings.merge(base, Settings()) == base


def test_settings_repr_lists_only_set_fields():
    r = repr(Settings(total_timeout=0.2, replica=P.Replica.SEQUENCE, send_key=True))
    assert r == "Settings(total_timeout=200ms, send_key=True, replica=SEQUENCE)"


@pytest.mark.parametrize("field,value,exc", [
    ("total_timeout", -1, ValueError),
    ("socket_timeout", timedelta(seconds=-1), ValueError),
    ("retry_delay", float("nan"), ValueError),
    ("total_timeout", float("inf"), ValueError),
    ("total_timeout", 10**10, ValueError),
    ("total_timeout", "5", TypeError),
    ("socket_timeout", True, TypeError),
    ("max_retries", -1, ValueError),
    ("max_retries", 1.5, TypeError),
    ("max_retries", True, TypeError),
    ("read_touch_ttl_percent", 101, ValueError),
    ("read_touch_ttl_percent", -2, ValueError),
    ("read_touch_ttl_percent", "50", TypeError),
    ("compression_threshold", -5, ValueError),
    ("record_queue_size", 0, ValueError),
    ("max_concurrent_nodes", -1, ValueError),
    ("send_key", 1, TypeError),
    ("durable_delete", "yes", TypeError),
    ("use_compression", 0, TypeError),
    ("allow_inline", "true", TypeError),
    ("allow_inline_ssd", 0, TypeError),
    ("replica", 99, ValueError),
    ("replica", "NEAREST", ValueError),
    ("replica", P.ReadModeSC.LINEARIZE, TypeError),
    ("read_mode_sc", 1.0, TypeError),
    ("read_mode_ap", 7, ValueError),
    ("commit_level", [], TypeError),
])
def test_settings_validation_names_field(field, value, exc):
    with pytest.raises(exc, match=field):
        Settings(**{field: value})


def test_settings_validation_accepts_edges():
    s = Settings(read_touch_ttl_percent=100, max_retries=0, compression_threshold=0,
                 max_concurrent_nodes=0, record_queue_size=1)
    assert s.read_touch_ttl_percent == 100
    # -1 is Aerospike's "never reset TTL on read"; 0 = namespace default.
    assert Settings(read_touch_ttl_percent=-1).read_touch_ttl_percent == -1
    assert Settings(read_touch_ttl_percent=0).read_touch_ttl_percent == 0
    assert Settings(total_timeout=timedelta(milliseconds=0xFFFFFFFF)).total_timeout


# --------------------------------------------------------------------------- resolution

EXPECTED_ORDER = {
    (OpKind.READ, OpShape.POINT, Mode.AP): "ALL READS READS_AP READS_POINT",
    (OpKind.READ, OpShape.POINT, Mode.SC): "ALL READS READS_SC READS_POINT",
    (OpKind.READ, OpShape.BATCH, Mode.AP): "ALL READS READS_AP READS_BATCH",
    (OpKind.READ, OpShape.BATCH, Mode.SC): "ALL READS READS_SC READS_BATCH",
    (OpKind.READ, OpShape.QUERY, Mode.AP): "ALL READS READS_AP READS_QUERY",
    (OpKind.READ, OpShape.QUERY, Mode.SC): "ALL READS READS_SC READS_QUERY",
    (OpKind.WRITE_RETRYABLE, OpShape.POINT, Mode.AP):
        "ALL WRITES WRITES_AP WRITES_RETRYABLE WRITES_POINT",
    (OpKind.WRITE_RETRYABLE, OpShape.POINT, Mode.SC):
        "ALL WRITES WRITES_SC WRITES_RETRYABLE WRITES_POINT",
    (OpKind.WRITE_RETRYABLE, OpShape.BATCH, Mode.AP):
        "ALL WRITES WRITES_AP WRITES_RETRYABLE WRITES_BATCH",
    (OpKind.WRITE_RETRYABLE, OpShape.BATCH, Mode.SC):
        "ALL WRITES WRITES_SC WRITES_RETRYABLE WRITES_BATCH",
    (OpKind.WRITE_RETRYABLE, OpShape.QUERY, Mode.AP):
        "ALL WRITES WRITES_AP WRITES_RETRYABLE WRITES_QUERY",
    (OpKind.WRITE_RETRYABLE, OpShape.QUERY, Mode.SC):
        "ALL WRITES WRITES_SC WRITES_RETRYABLE WRITES_QUERY",
    (OpKind.WRITE_NON_RETRYABLE, OpShape.POINT, Mode.AP):
        "ALL WRITES WRITES_AP WRITES_NON_RETRYABLE WRITES_POINT",
    (OpKind.WRITE_NON_RETRYABLE, OpShape.POINT, Mode.SC):
        "ALL WRITES WRITES_SC WRITES_NON_RETRYABLE WRITES_POINT",
    (OpKind.WRITE_NON_RETRYABLE, OpShape.BATCH, Mode.AP):
        "ALL WRITES WRITES_AP WRITES_NON_RETRYABLE WRITES_BATCH",
    (OpKind.WRITE_NON_RETRYABLE, OpShape.BATCH, Mode.SC):
        "ALL WRITES WRITES_SC WRITES_NON_RETRYABLE WRITES_BATCH",
    (OpKind.WRITE_NON_RETRYABLE, OpShape.QUERY, Mode.AP):
        "ALL WRITES WRITES_AP WRITES_NON_RETRYABLE WRITES_QUERY",
    (OpKind.WRITE_NON_RETRYABLE, OpShape.QUERY, Mode.SC):
        "ALL WRITES WRITES_SC WRITES_NON_RETRYABLE WRITES_QUERY",
}


@pytest.mark.parametrize("key", ALL_KEYS, ids=lambda k: "/".join(p.value for p in k))
def test_resolution_order(key):
    assert " ".join(s.name for s in P.resolution_order(*key)) == EXPECTED_ORDER[key]


def test_resolution_order_default_mode_is_ap():
    assert P.resolution_order(OpKind.READ, OpShape.POINT) == P.resolution_order(
        OpKind.READ, OpShape.POINT, Mode.AP)


@pytest.mark.parametrize("scope", list(Scope), ids=lambda s: s.name)
def test_single_scope_reaches_exactly_its_contexts(scope):
    b = Behavior(uniq("one-scope"), {scope: Settings(max_retries=7)})
    for key in ALL_KEYS:
        want = 7 if scope.name in EXPECTED_ORDER[key].split() else None
        assert b.get_settings(*key).max_retries == want, key


@pytest.mark.parametrize("key", ALL_KEYS, ids=lambda k: "/".join(p.value for p in k))
def test_most_specific_scope_wins(key):
    # Every scope sets max_retries to its own index; the last applicable scope must win,
    # and a field set only in ALL must still come through.
    patches = {sc: Settings(max_retries=i) for i, sc in enumerate(Scope)}
    patches[Scope.ALL] = Settings(max_retries=0, send_key=True)
    b = Behavior(uniq("layers"), patches)
    winner = Scope[EXPECTED_ORDER[key].split()[-1]]
    s = b.get_settings(*key)
    assert s.max_retries == list(Scope).index(winner)
    assert s.send_key is True


def test_parent_chain_applies_first():
    parent = Behavior(uniq("parent"), {Scope.READS_POINT: Settings(max_retries=9, send_key=False),
                                       Scope.WRITES: Settings(durable_delete=True)})
    child = Behavior(uniq("child"), {Scope.ALL: Settings(max_retries=1)}, parent=parent)
    # Child's least specific scope still beats the parent's most specific one.
    assert child.get_settings(OpKind.READ, OpShape.POINT).max_retries == 1
    assert child.get_settings(OpKind.READ, OpShape.POINT).send_key is False
    grandchild = Behavior(uniq("gc"), {Scope.READS_SC: Settings(send_key=True)}, parent=child)
    s = grandchild.get_settings(OpKind.READ, OpShape.POINT, Mode.SC)
    assert (s.max_retries, s.send_key) == (1, True)
    w = grandchild.get_settings(OpKind.WRITE_NON_RETRYABLE, OpShape.BATCH, Mode.SC)
    assert (w.max_retries, w.durable_delete, w.send_key) == (1, True, None)


def test_get_settings_accepts_values_and_rejects_bad_keys():
    b = Behavior.DEFAULT
    assert b.get_settings("read", "query", "sc") == b.get_settings(
        OpKind.READ, OpShape.QUERY, Mode.SC)
    with pytest.raises(ValueError, match="kind"):
        b.get_settings("scan", OpShape.POINT)
    with pytest.raises(ValueError, match="shape"):
        b.get_settings(OpKind.READ, "many")
    with pytest.raises(ValueError, match="mode"):
        b.get_settings(OpKind.READ, OpShape.POINT, "cp")


def test_unset_fields_stay_none():
    b = Behavior(uniq("bare"), {})
    assert b.get_settings(OpKind.READ, OpShape.POINT) == Settings()
    assert (b.total_timeout, b.max_retries, b.send_key) == (timedelta(0), 0, False)


# --------------------------------------------------------------------------- presets

def _s(b, kind, shape, mode=Mode.AP):
    return b.get_settings(kind, shape, mode)


def test_default_preset_values():
    d = Behavior.DEFAULT
    assert d.name == "DEFAULT" and d.parent is None
    rp = _s(d, OpKind.READ, OpShape.POINT)
    assert rp == Settings(total_timeout=30, socket_timeout=5, max_retries=2, retry_delay=0,
                          send_key=True, replica=P.Replica.SEQUENCE, durable_delete=False,
                          max_concurrent_nodes=1, read_touch_ttl_percent=0)
    rb = _s(d, OpKind.READ, OpShape.BATCH)
    assert (rb.allow_inline, rb.allow_inline_ssd, rb.max_retries) == (True, False, 2)
    rq = _s(d, OpKind.READ, OpShape.QUERY, Mode.SC)
    assert (rq.max_retries, rq.record_queue_size) == (5, 5000)
    wnp = _s(d, OpKind.WRITE_NON_RETRYABLE, OpShape.POINT)
    assert (wnp.max_retries, wnp.commit_level, wnp.durable_delete) == (
        0, P.CommitLevel.COMMIT_ALL, False)
    wsc = _s(d, OpKind.WRITE_NON_RETRYABLE, OpShape.POINT, Mode.SC)
    assert (wsc.durable_delete, wsc.commit_level) == (True, None)
    wb = _s(d, OpKind.WRITE_NON_RETRYABLE, OpShape.BATCH)
    assert (wb.allow_inline, wb.allow_inline_ssd, wb.max_retries) == (True, False, 0)
    assert (d.total_timeout, d.socket_timeout, d.max_retries, d.retry_delay, d.send_key) == (
        timedelta(seconds=30), timedelta(seconds=5), 2, timedelta(0), True)


def test_write_retryable_is_resolved():
    # PSDK never requested WRITE_RETRYABLE; here it resolves, inheriting ALL's retries.
    d = Behavior.DEFAULT
    for shape, mode in itertools.product(OpShape, Mode):
        assert _s(d, OpKind.WRITE_RETRYABLE, shape, mode).max_retries == 2
        assert _s(d, OpKind.WRITE_NON_RETRYABLE, shape, mode).max_retries == 0
    b = d.derive_with_changes(uniq("wr"),
                              writes_retryable=Settings(max_retries=4, retry_delay=0.01))
    s = _s(b, OpKind.WRITE_RETRYABLE, OpShape.POINT, Mode.SC)
    assert (s.max_retries, s.retry_delay, s.durable_delete) == (4, ms(10), True)
    assert _s(b, OpKind.WRITE_NON_RETRYABLE, OpShape.POINT).max_retries == 0
    assert _s(b, OpKind.READ, OpShape.POINT).retry_delay == timedelta(0)


def test_read_fast_preset():
    rf = Behavior.READ_FAST
    assert rf.name == "READ_FAST" and rf.parent is Behavior.DEFAULT
    for shape, mode in itertools.product(OpShape, Mode):
        s = _s(rf, OpKind.READ, shape, mode)
        assert (s.socket_timeout, s.total_timeout, s.max_retries) == (ms(50), ms(200), 3)
    w = _s(rf, OpKind.WRITE_NON_RETRYABLE, OpShape.POINT)
    assert (w.total_timeout, w.socket_timeout, w.max_retries) == (
        timedelta(seconds=30), timedelta(seconds=5), 0)
    assert _s(rf, OpKind.READ, OpShape.QUERY).record_queue_size == 5000
    assert (rf.total_timeout, rf.socket_timeout, rf.max_retries) == (ms(200), ms(50), 3)


def test_strictly_consistent_preset():
    sc = Behavior.STRICTLY_CONSISTENT
    assert sc.parent is Behavior.DEFAULT
    for shape in OpShape:
        assert _s(sc, OpKind.READ, shape, Mode.SC).read_mode_sc is P.ReadModeSC.LINEARIZE
        assert _s(sc, OpKind.READ, shape, Mode.AP).read_mode_sc is None
    assert _s(sc, OpKind.READ, OpShape.POINT) == _s(Behavior.DEFAULT, OpKind.READ, OpShape.POINT)


def test_fast_rack_aware_preset():
    fr = Behavior.FAST_RACK_AWARE
    assert fr.parent is Behavior.READ_FAST
    s = _s(fr, OpKind.READ, OpShape.BATCH, Mode.SC)
    assert (s.replica, s.read_mode_sc, s.total_timeout, s.max_retries) == (
        P.Replica.PREFER_RACK, P.ReadModeSC.SESSION, ms(200), 3)
    assert _s(fr, OpKind.READ, OpShape.POINT).replica is P.Replica.PREFER_RACK
    assert _s(fr, OpKind.WRITE_NON_RETRYABLE, OpShape.POINT).replica is P.Replica.SEQUENCE


def test_presets_registered():
    for name in ("DEFAULT", "READ_FAST", "STRICTLY_CONSISTENT", "FAST_RACK_AWARE"):
        assert getattr(Behavior, name).name == name
    assert Behavior.READ_FAST in Behavior.DEFAULT.children
    assert Behavior.FAST_RACK_AWARE in Behavior.READ_FAST.children


# --------------------------------------------------------------------------- derive

def test_derive_scope_kwargs_and_mappings():
    name = uniq("derived")
    b = Behavior.DEFAULT.derive_with_changes(
        name, reads_point=Settings(max_retries=1), reads_batch={"max_concurrent_nodes": 8},
        writes_sc=Settings(commit_level=P.CommitLevel.COMMIT_MASTER),
        writes_query={"max_retries": 3})
    assert b.name == name and b.parent is Behavior.DEFAULT and b in Behavior.DEFAULT.children
    assert set(b.patches) == {Scope.READS_POINT, Scope.READS_BATCH, Scope.WRITES_SC,
                              Scope.WRITES_QUERY}
    assert _s(b, OpKind.READ, OpShape.POINT).max_retries == 1
    assert _s(b, OpKind.READ, OpShape.BATCH).max_concurrent_nodes == 8
    assert _s(b, OpKind.READ, OpShape.QUERY).max_concurrent_nodes == 1
    assert (_s(b, OpKind.WRITE_RETRYABLE, OpShape.POINT, Mode.SC).commit_level
            is P.CommitLevel.COMMIT_MASTER)
    assert _s(b, OpKind.WRITE_NON_RETRYABLE, OpShape.QUERY).max_retries == 3


@pytest.mark.parametrize("scope", list(Scope), ids=lambda s: s.name)
def test_derive_every_scope_kwarg(scope):
    root = Behavior(uniq("root"), {})
    b = root.derive_with_changes(uniq("d"), **{scope.value: {"max_retries": 6}})
    assert dict(b.patches) == {scope: Settings(max_retries=6)}


def test_derive_flat_kwargs_merge_into_all():
    b = Behavior.DEFAULT.derive_with_changes(
        uniq("flat"), all=Settings(max_retries=4, send_key=False),
        total_timeout=0.5, socket_timeout=ms(100), max_retries=1, retry_delay=0.002,
        send_key=None, use_compression=True, compression_threshold=128, durable_delete=True)
    a = b.patches[Scope.ALL]
    assert a == Settings(total_timeout=ms(500), socket_timeout=ms(100), max_retries=1,
                         retry_delay=ms(2), send_key=False, use_compression=True,
                         compression_threshold=128, durable_delete=True)
    s = _s(b, OpKind.READ, OpShape.QUERY)
    # DEFAULT's READS_QUERY (parent) loses to the child's ALL: parent chain applies first.
    assert (s.max_retries, s.total_timeout, s.use_compression) == (1, ms(500), True)
    assert (b.total_timeout, b.socket_timeout, b.max_retries, b.retry_delay, b.send_key) == (
        ms(500), ms(100), 1, ms(2), False)


def test_derive_errors():
    with pytest.raises(TypeError, match="bogus"):
        Behavior.DEFAULT.derive_with_changes(uniq("bad"), bogus=1)
    with pytest.raises(ValueError, match="total_timeout"):
        Behavior.DEFAULT.derive_with_changes(uniq("bad"), total_timeout=-0.1)
    with pytest.raises(TypeError, match="reads"):
        Behavior.DEFAULT.derive_with_changes(uniq("bad"), reads=5)
    with pytest.raises(TypeError, match="nope"):
        Behavior.DEFAULT.derive_with_changes(uniq("bad"), reads={"nope": 1})
    with pytest.raises(ValueError, match="max_retries"):
        Behavior.DEFAULT.derive_with_changes(uniq("bad"), writes={"max_retries": -3})


def test_behavior_constructor_validation():
    with pytest.raises(ValueError, match="empty"):
        Behavior("", {})
    with pytest.raises(TypeError, match="name"):
        Behavior(3, {})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Scope"):
        Behavior(uniq("x"), {"everything": Settings()})
    with pytest.raises(TypeError, match="reads"):
        Behavior(uniq("x"), {Scope.READS: 1})
    with pytest.raises(TypeError, match="parent"):
        Behavior(uniq("x"), {}, parent="DEFAULT")  # type: ignore[arg-type]
    b = Behavior(uniq("x"), {"reads": {"max_retries": 1}})
    assert dict(b.patches) == {Scope.READS: Settings(max_retries=1)}
    with pytest.raises(TypeError):
        b.patches[Scope.ALL] = Settings()  # type: ignore[index]


# --------------------------------------------------------------------------- cache

def test_cache_and_clear_cache_cascade():
    parent = Behavior(uniq("cp"), {Scope.ALL: Settings(max_retries=1)})
    child = parent.derive_with_changes(uniq("cc"), reads={"send_key": True})
    key = (OpKind.READ, OpShape.POINT, Mode.AP)
    s1, c1 = parent.get_settings(*key), child.get_settings(*key)
    assert parent.get_settings(*key) is s1 and child.get_settings(*key) is c1
    t1 = child.get_compiled(*key)
    assert child.get_compiled(*key) is t1 and t1 == P.compile_settings(c1)
    parent.clear_cache()
    s2, c2 = parent.get_settings(*key), child.get_settings(*key)
    assert s2 == s1 and c2 == c1
    assert s2 is not s1 and c2 is not c1  # the child was cleared too
    assert child.get_compiled(*key) is not t1 and child.get_compiled(*key) == t1


# --------------------------------------------------------------------------- explain

def test_explain():
    text = Behavior.FAST_RACK_AWARE.explain()
    lines = text.splitlines()
    assert lines[0] == "Behavior 'FAST_RACK_AWARE' <- 'READ_FAST' <- 'DEFAULT'"
    assert lines[1] == "patches:"
    assert any(l.strip().startswith("reads ") and "replica=PREFER_RACK" in l for l in lines)
    assert any(l.strip().startswith("reads_sc") and "read_mode_sc=SESSION" in l for l in lines)
    i = lines.index("resolved:")
    rows = lines[i + 1:]
    assert len(rows) == 18
    row = next(r for r in rows if r.strip().startswith("read/point/ap "))
    assert "total_timeout=200ms" in row and "socket_timeout=50ms" in row
    assert "max_retries=3" in row and "replica=PREFER_RACK" in row
    wrow = next(r for r in rows if r.strip().startswith("write_non_retryable/point/sc "))
    assert "max_retries=0" in wrow and "durable_delete=True" in wrow
    bare = Behavior(uniq("ex"), {}).explain()
    assert "(none)" in bare and bare.count(": -") == 18


# --------------------------------------------------------------------------- registry

def test_registry_functions():
    name = uniq("reg")
    assert P.get_behavior(name) is None
    assert P.get_behavior_or_default(name) is Behavior.DEFAULT
    assert P.get_behavior_or_default(None) is Behavior.DEFAULT
    b = Behavior(name, {})
    assert P.get_behavior(name) is b and P.get_behavior_or_default(name) is b
    snap = P.get_all_behaviors()
    assert snap[name] is b and snap["DEFAULT"] is Behavior.DEFAULT
    snap.pop(name)
    assert P.get_behavior(name) is b  # snapshot is a copy
    b2 = Behavior(name, {Scope.ALL: Settings(max_retries=1)})
    assert P.get_behavior(name) is b2  # re-registering replaces


def test_find_behavior_class_and_instance():
    root = Behavior(uniq("root"), {})
    mid = root.derive_with_changes(uniq("mid"))
    leaf = mid.derive_with_changes(uniq("leaf"))
    assert Behavior.find_behavior(leaf.name) is leaf  # registry lookup
    assert Behavior.find_behavior(uniq("absent")) is None
    assert root.find_behavior(leaf.name) is leaf  # subtree search
    assert root.find_behavior(root.name) is root
    assert mid.find_behavior(root.name) is None
    assert Behavior.DEFAULT.find_behavior("FAST_RACK_AWARE") is Behavior.FAST_RACK_AWARE


def test_children_are_weak_and_pruned():
    root = Behavior(uniq("weak"), {})
    name = uniq("kid")
    kids = [root.derive_with_changes(name) for _ in range(40)]  # same name: only last registered
    assert root.children == kids
    keep = kids[-1]
    del kids
    gc.collect()
    assert root.children == [keep]
    name2 = uniq("more")
    for _ in range(30):  # each replaces the last in the registry and is dropped at once
        root.derive_with_changes(name2)
    gc.collect()
    assert root.children == [keep, P.get_behavior(name2)]
    assert len(root._children) <= 9  # dead refs were pruned on append


def test_copy_returns_same_behavior():
    assert copy.copy(Behavior.DEFAULT) is Behavior.DEFAULT
    assert copy.deepcopy(Behavior.DEFAULT) is Behavior.DEFAULT


# --------------------------------------------------------------------------- compile

def test_compile_settings_default_contexts():
    d = Behavior.DEFAULT
    assert P.COMPILED_FIELDS == (
        "total_timeout_ms", "socket_timeout_ms", "max_retries", "retry_delay_ms", "send_key",
        "durable_delete", "commit_level", "replica", "read_mode_ap", "read_mode_sc",
        "read_touch_ttl_percent", "use_compression", "compression_threshold")
    rp = P.compile_settings(_s(d, OpKind.READ, OpShape.POINT))
    assert rp == (30000, 5000, 2, 0, True, False, 0, 2, 0, 0, 0, False, 0)
    assert [type(v) for v in rp] == [int] * 4 + [bool] * 2 + [int] * 5 + [bool, int]
    wsc = P.compile_settings(_s(d, OpKind.WRITE_NON_RETRYABLE, OpShape.POINT, Mode.SC))
    assert wsc == (30000, 5000, 0, 0, True, True, 0, 2, 0, 0, 0, False, 0)
    lin = P.compile_settings(_s(Behavior.STRICTLY_CONSISTENT, OpKind.READ, OpShape.POINT, Mode.SC))
    assert lin[P.COMPILED_FIELDS.index("read_mode_sc")] == int(P.ReadModeSC.LINEARIZE)
    assert Behavior.DEFAULT.get_compiled(OpKind.READ, OpShape.POINT) == rp


def test_compile_settings_fallbacks_and_rounding():
    assert P.compile_settings(Settings()) == P.compile_settings(P.FALLBACK_SETTINGS)
    assert P.compile_settings(Settings()) == (30000, 5000, 2, 0, True, False, 0, 2, 0, 0, 0,
                                              False, 0)
    t = P.compile_settings(Settings(total_timeout=0.0001, socket_timeout=ms(1.5), retry_delay=0,
                                    replica="master", commit_level=1, read_mode_ap=1,
                                    read_mode_sc=3, read_touch_ttl_percent=-1,
                                    use_compression=True, compression_threshold=64,
                                    send_key=False, durable_delete=True, max_retries=9))
    # sub-ms total rounds up to 1 ms; socket (2 ms after rounding) is clamped to the total.
    assert t == (1, 1, 9, 0, False, True, 1, 0, 1, 3, -1, True, 64)
    assert P.compile_settings(Settings(total_timeout=ms(1.5), socket_timeout=0))[:2] == (2, 2)
    assert P.compile_settings(Settings(total_timeout=0, socket_timeout=0))[:2] == (0, 0)
    assert P.compile_settings(Settings(total_timeout=0, socket_timeout=0.25))[:2] == (0, 250)
    assert P.compile_settings(Settings(total_timeout=1, socket_timeout=2))[:2] == (1000, 1000)
    with pytest.raises(TypeError):
        P.compile_settings({"total_timeout": 1})  # type: ignore[arg-type]


# --------------------------------------------------------------------------- SystemSettings

def test_system_settings_defaults_and_compile():
    s = P.SystemSettings()
    assert (s.min_connections_per_node, s.max_connections_per_node, s.conn_pools_per_node,
            s.max_socket_idle_time, s.tend_interval, s.connect_timeout, s.max_error_rate,
            s.error_rate_window, s.cluster_name, s.fail_if_not_connected,
            s.use_services_alternate) == (0, 100, 1, timedelta(seconds=55), timedelta(seconds=1),
                                          timedelta(seconds=1), 100, 1, None, True, False)
    assert P.compile_system_settings(s) == (0, 100, 1, 55000, 1000, 1000, 100, 1, None, True,
                                            False)
    assert len(P.COMPILED_SYSTEM_FIELDS) == len(P.compile_system_settings(s))
    t = P.SystemSettings(min_connections_per_node=4, max_socket_idle_time=30, tend_interval=0.25,
                         connect_timeout=ms(0.2), cluster_name="prod")
    assert (t.max_socket_idle_time, t.tend_interval) == (timedelta(seconds=30), ms(250))
    assert P.compile_system_settings(t)[:6] == (4, 100, 1, 30000, 250, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.cluster_name = "x"  # type: ignore[misc]
    assert dataclasses.replace(t, max_error_rate=0).max_error_rate == 0


@pytest.mark.parametrize("field,value,exc", [
    ("min_connections_per_node", -1, ValueError),
    ("max_connections_per_node", 0, ValueError),
    ("max_connections_per_node", "100", TypeError),
    ("conn_pools_per_node", 0, ValueError),
    ("max_socket_idle_time", -1, ValueError),
    ("tend_interval", 0, ValueError),
    ("tend_interval", "1s", TypeError),
    ("connect_timeout", timedelta(seconds=-1), ValueError),
    ("max_error_rate", -1, ValueError),
    ("error_rate_window", 0, ValueError),
    ("cluster_name", "", ValueError),
    ("cluster_name", 5, TypeError),
    ("fail_if_not_connected", 1, TypeError),
    ("use_services_alternate", None, TypeError),
])
def test_system_settings_validation_names_field(field, value, exc):
    with pytest.raises(exc, match=field):
        P.SystemSettings(**{field: value})


def test_system_settings_cross_field_checks():
    with pytest.raises(ValueError, match="min_connections_per_node"):
        P.SystemSettings(min_connections_per_node=10, max_connections_per_node=5)
    with pytest.raises(ValueError, match="conn_pools_per_node"):
        P.SystemSettings(conn_pools_per_node=8, max_connections_per_node=4)


# --------------------------------------------------------------------------- concurrency

def test_concurrent_resolve_derive_register():
    n_threads, iters = 16, 60
    base = Behavior.DEFAULT.derive_with_changes(
        uniq("conc"), reads_sc={"read_mode_sc": "linearize"}, writes_retryable={"max_retries": 5},
        reads_batch={"max_concurrent_nodes": 4}, total_timeout=2)
    expected = {key: Behavior(uniq("ref"), dict(base.patches), parent=Behavior.DEFAULT)
                .get_settings(*key) for key in ALL_KEYS}
    shared = uniq("shared")
    prefix = uniq("t")
    barrier = threading.Barrier(n_threads)
    errors: list[str] = []

    def worker(i: int) -> None:
        try:
            barrier.wait()
            for j in range(iters):
                if j % 8 == i % 8:
                    base.clear_cache()
                for key in ALL_KEYS:
                    s = base.get_settings(*key)
                    if s != expected[key]:
                        errors.append(f"{key}: {s!r} != {expected[key]!r}")
                    if base.get_compiled(*key) != P.compile_settings(expected[key]):
                        errors.append(f"compiled mismatch for {key}")
                child = base.derive_with_changes(f"{prefix}-{i}-{j}", reads={"max_retries": i},
                                                 retry_delay=j / 1000)
                c = child.get_settings(OpKind.READ, OpShape.BATCH, Mode.SC)
                if (c.max_retries, c.retry_delay, c.read_mode_sc, c.max_concurrent_nodes,
                        c.total_timeout) != (i, ms(j), P.ReadModeSC.LINEARIZE, 4,
                                             timedelta(seconds=2)):
                    errors.append(f"child {i}-{j}: {c!r}")
                Behavior(shared, {Scope.ALL: Settings(max_retries=i)})
                got = P.get_behavior(shared)
                if got is None or got.name != shared or not 0 <= got.max_retries < n_threads:
                    errors.append(f"registry: {got!r}")
                if P.get_behavior(f"{prefix}-{i}-{j}") is not child:
                    errors.append(f"child {i}-{j} not registered")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(f"thread {i}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    names = {c.name for c in base.children}
    assert names == {f"{prefix}-{i}-{j}" for i in range(n_threads) for j in range(iters)}
    for key in ALL_KEYS:
        assert base.get_settings(*key) == expected[key]
