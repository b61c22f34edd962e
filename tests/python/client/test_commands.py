"""Single-record commands on the fast path, single node and 3 nodes:
get (all / selected bins), exists (header only), put, delete, touch and
operate with read-after-write results per operation."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(60)


def test_get_missing_raises(session, key):
    from cspike import AerospikeError, RecordNotFoundError
    with pytest.raises(RecordNotFoundError) as ei:
        session.get(key("missing"))
    assert ei.value.result_code == 2
    assert ei.value.in_doubt is False
    assert isinstance(ei.value, AerospikeError)


def test_put_merges_and_generation_counts(session, key, default_ttl):
    from chelpers import assert_default_expiry
    k = key()
    session.put(k, {"a": 1, "b": "x"})
    session.put(k, {"b": "y", "c": 2.5})
    rec = session.get(k)
    assert rec.bins == {"a": 1, "b": "y", "c": 2.5}
    assert rec.generation == 2
    assert_default_expiry(rec, default_ttl)


def test_exists_delete_bool(session, key):
    k = key()
    assert session.exists(k) is False
    assert session.delete(k) is False
    session.put(k, {"a": 1})
    assert session.exists(k) is True
    assert session.delete(k) is True
    assert session.exists(k) is False
    assert session.delete(k) is False
    from cspike import RecordNotFoundError
    with pytest.raises(RecordNotFoundError):
        session.get(k)


def test_touch(session, key):
    from cspike import RecordNotFoundError
    k = key()
    with pytest.raises(RecordNotFoundError):
        session.touch(k)
    session.put(k, {"a": 1})
    assert session.touch(k) is None
    rec = session.get(k)
    assert rec.generation == 2
    assert rec.bins == {"a": 1}


def test_kwargs_and_arg_errors(session, key):
    k = key()
    session.put(key=k, bins={"a": 1})
    assert session.get(key=k, bins=["a"]).bins == {"a": 1}
    with pytest.raises(TypeError):
        session.get()
    with pytest.raises(TypeError):
        session.get(k, ["a"], 3)
    with pytest.raises(TypeError):
        session.put(k, {"a": 1}, nope=1)


def test_operate_results_per_op(session, key):
    from cspike import Operation as Op
    k = key()
    session.put(k, {"i": 10, "f": 1.5, "s": "abc", "blob": b"\x01", "x": "gone"})
    rec = session.operate(k, [
        Op.add("i", 5), Op.get("i"),
        Op.add("f", 0.25), Op.get("f"),
        Op.append("s", "def"), Op.prepend("s", "xyz"), Op.get("s"),
        Op.append("blob", b"\x02\xff"), Op.get("blob"),
        Op.delete_bin("x"), Op.get("x"),
        Op.put("w", [1, 2]), Op.get("w"),
    ])
    assert rec.generation == 2
    assert rec.results == [None, 15, None, 1.75, None, None, "xyzabcdef",
                           None, b"\x01\x02\xff", None, None, None, [1, 2]]
    assert rec.bins["i"] == 15
    assert rec.bins["f"] == 1.75
    assert rec.bins["s"] == "xyzabcdef"
    assert rec.bins["blob"] == b"\x01\x02\xff"
    assert rec.bins.get("x") is None
    assert rec.bins["w"] == [1, 2]
    assert session.get(k).bins == {"i": 15, "f": 1.75, "s": "xyzabcdef",
                                   "blob": b"\x01\x02\xff", "w": [1, 2]}


def test_operate_read_write_read_same_bin(session, key):
    from cspike import Operation as Op
    k = key()
    session.put(k, {"w": 1})
    rec = session.operate(k, [Op.get("w"), Op.put("w", 2), Op.get("w")])
    assert rec.results == [1, None, 2]
    assert rec.bins["w"] == [1, 2]  # a bin read twice keeps both values, in order


def test_operate_creates_record_and_bins(session, key):
    from cspike import Operation as Op
    k = key()
    rec = session.operate(k, [Op.add("n", 3), Op.append("s", "new"), Op.get("n"), Op.get("s")])
    assert rec.results[2:] == [3, "new"]
    assert rec.generation == 1


def test_operate_read_all(session, key):
    from cspike import Operation as Op
    k = key()
    session.put(k, {"a": 1, "b": "x"})
    rec = session.operate(k, [Op.put("c", 3), Op.get()])
    assert rec.bins == {"a": 1, "b": "x", "c": 3}


def test_operate_touch_and_delete_record(session, key):
    from cspike import Operation as Op
    from cspike import RecordNotFoundError
    k = key()
    session.put(k, {"a": 1})
    # The server answers no entry at all for TOUCH, even with
    # RESPOND_ALL_OPS: results must still line up with the operations.
    rec = session.operate(k, [Op.touch(), Op.get("a")])
    assert rec.generation == 2
    assert rec.results == [None, 1]
    assert rec.bins == {"a": 1}
    rec = session.operate(k, [Op.get("a"), Op.touch(), Op.put("b", 2), Op.get("b")])
    assert rec.results == [1, None, None, 2]
    assert rec.bins == {"a": 1, "b": 2}
    rec = session.operate(k, [Op.get("a"), Op.delete()])
    assert rec.results == [1, None]
    with pytest.raises(RecordNotFoundError):
        session.get(k)
    # DELETE then WRITE in one call re-creates the record.
    session.put(k, {"a": 1})
    session.operate(k, [Op.delete(), Op.put("y", 1)])
    assert session.get(k).bins == {"y": 1}


def test_operate_is_atomic_on_error(session, key):
    from cspike import BinTypeError
    from cspike import Operation as Op
    k = key()
    session.put(k, {"s": "abc", "i": 1})
    with pytest.raises(BinTypeError) as ei:
        session.operate(k, [Op.put("z", 1), Op.add("s", 1)])
    assert ei.value.result_code == 12
    assert ei.value.in_doubt is False
    rec = session.get(k)
    assert "z" not in rec.bins and rec.generation == 1
    with pytest.raises(BinTypeError):
        session.operate(k, [Op.append("i", "x")])
    with pytest.raises(BinTypeError):
        session.operate(k, [Op.add("i", 1.5)])  # float into an int bin


def test_operate_read_only_on_missing_record(session, key):
    from cspike import Operation as Op
    from cspike import RecordNotFoundError
    with pytest.raises(RecordNotFoundError):
        session.operate(key("nope"), [Op.get("a")])


def test_durable_delete(any_client, key):
    """CE refuses durable deletes (25) and leaves the record; EE deletes."""
    from cspike import EnterpriseOnlyError
    from chelpers import behavior
    s = any_client.create_session(behavior(durable_delete=True))
    k = key()
    s.put(k, {"a": 1})
    try:
        assert s.delete(k) is True
    except EnterpriseOnlyError as e:
        assert e.result_code == 25 and e.in_doubt is False
        assert s.get(k).bins == {"a": 1}
    else:
        assert s.exists(k) is False


def test_send_key_and_key_mismatch(any_client, key):
    """A record written with its key stored refuses another key that maps
    to the same digest; cspike cannot produce such a pair, so only check
    that both policies write and read the same record."""
    from chelpers import behavior
    k = key("sk")
    with_key = any_client.create_session(behavior(send_key=True))
    without = any_client.create_session(behavior(send_key=False))
    with_key.put(k, {"a": 1})
    without.put(k, {"b": 2})
    assert with_key.get(k).bins == {"a": 1, "b": 2}
