"""The chained builders (psdk-api 1.6-1.9) against the server, single node
and 3 nodes: each record-exists action on missing and existing records,
generation checks, TTL specials (-1 never expire, -2 no change, 0 namespace
default, N seconds), touch with a TTL, header reads, durable delete and
read-after-write results."""

from __future__ import annotations

import asyncio

import pytest

from chelpers import assert_default_expiry, behavior, ttl_or_skip

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def s(session):
    if not hasattr(session, "upsert"):
        pytest.skip("chained builders not available")
    return session


def _one(stream):
    rows = list(stream)
    assert len(rows) == 1, rows
    assert rows[0].is_ok
    return rows[0]


# --------------------------------------------------------------------------- exists actions

def test_upsert_creates_then_merges(s, key):
    k = key()
    _one(s.upsert(k).put({"a": 1, "b": 2}).execute())
    _one(s.upsert(k).put({"b": 3, "c": 4}).execute())
    rec = s.get(k)
    assert rec.bins == {"a": 1, "b": 3, "c": 4} and rec.generation == 2


def test_insert(s, key):
    from cspike import RecordExistsError
    k = key()
    _one(s.insert(k).put({"a": 1, "b": 2}).execute())
    with pytest.raises(RecordExistsError) as ei:
        s.insert(k).put({"a": 9}).execute()
    assert ei.value.result_code == 5 and ei.value.in_doubt is False
    assert s.get(k).bins == {"a": 1, "b": 2}


def test_update(s, key):
    from cspike import RecordNotFoundError
    k = key()
    with pytest.raises(RecordNotFoundError) as ei:
        s.update(k).put({"a": 1}).execute()
    assert ei.value.result_code == 2
    assert s.exists(k) is False
    s.put(k, {"a": 1, "b": 2})
    _one(s.update(k).put({"c": 3}).execute())
    rec = s.get(k)
    assert rec.bins == {"a": 1, "b": 2, "c": 3} and rec.generation == 2


def test_replace(s, key):
    k = key()
    _one(s.replace(k).put({"f": 6}).execute())  # creates
    assert s.get(k).bins == {"f": 6}
    s.put(k, {"a": 1})
    _one(s.replace(k).put({"e": 5}).execute())
    rec = s.get(k)
    assert rec.bins == {"e": 5} and rec.generation == 3


def test_replace_if_exists(s, key):
    from cspike import InvalidRequestError, RecordNotFoundError
    k = key()
    with pytest.raises(RecordNotFoundError):
        s.replace_if_exists(k).put({"a": 1}).execute()
    s.put(k, {"a": 1, "b": 2})
    _one(s.replace_if_exists(k).put({"d": 4}).execute())
    assert s.get(k).bins == {"d": 4}
    # Replacing with nothing but a NULL bin is a parameter error (capture).
    with pytest.raises(InvalidRequestError):
        s.replace_if_exists(k).put({"d": None}).execute()
    assert s.get(k).bins == {"d": 4}


def test_replace_only_switch(s, key):
    from cspike import RecordNotFoundError
    with pytest.raises(RecordNotFoundError):
        s.upsert(key()).put({"a": 1}).replace_only().execute()


# --------------------------------------------------------------------------- generation

def test_generation_check(s, key):
    from cspike import GenerationError
    k = key()
    s.put(k, {"a": 1})
    with pytest.raises(GenerationError) as ei:
        s.upsert(k).put({"a": 2}).ensure_generation_is(5).execute()
    assert ei.value.result_code == 3 and ei.value.in_doubt is False
    _one(s.upsert(k).put({"a": 3}).ensure_generation_is(1).execute())
    rec = s.get(k)
    assert rec.bins == {"a": 3} and rec.generation == 2
    with pytest.raises(GenerationError):
        s.upsert(k).put({"a": 4}).ensure_generation_is(1).execute()
    # On a missing record the check fails too (capture "generation EQ on missing").
    with pytest.raises(GenerationError):
        s.upsert(key("missing")).put({"a": 1}).ensure_generation_is(1).execute()
    assert s.exists(key("missing")) is False


def test_generation_check_on_delete_and_operate(s, key):
    from cspike import GenerationError
    k = key()
    s.put(k, {"i": 1})
    with pytest.raises(GenerationError):
        s.query(k).delete().ensure_generation_is(99).execute()
    assert s.exists(k) is True
    rec = _one(s.upsert(k).add("i", 1).get("i").ensure_generation_is(1).execute()).record
    assert rec.bins["i"] == 2
    rows = list(s.query(k).delete().ensure_generation_is(2).execute())
    assert all(r.is_ok for r in rows)
    assert s.exists(k) is False


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "1"])
def test_generation_bad_input(s, key, bad):
    with pytest.raises((ValueError, TypeError)):
        s.upsert(key()).put({"a": 1}).ensure_generation_is(bad)


# --------------------------------------------------------------------------- TTL

def _ttl_close(rec, want, slack=3):
    assert want - slack <= rec.ttl <= want, (rec.ttl, want)


def test_ttl_specials(s, key, default_ttl):
    k = key()
    ttl_or_skip(lambda: s.upsert(k).put({"a": 1}).expire_record_after_seconds(100).execute())
    _ttl_close(s.get(k), 100)
    void = s.get(k).void_time
    # -2: keep the current expiry
    _one(s.upsert(k).put({"a": 2}).with_no_change_in_expiration().execute())
    rec = s.get(k)
    assert rec.void_time == void and rec.generation == 2
    # -1: never expire
    _one(s.upsert(k).put({"a": 3}).never_expire().execute())
    rec = s.get(k)
    assert rec.ttl == -1 and rec.void_time is None
    # -2 after -1 keeps "never"
    _one(s.upsert(k).put({"a": 4}).with_no_change_in_expiration().execute())
    assert s.get(k).ttl == -1
    # N seconds again, then 0 = the namespace default-ttl
    _one(s.upsert(k).put({"a": 5}).expire_record_after_seconds(1000).execute())
    _ttl_close(s.get(k), 1000)
    _one(s.upsert(k).put({"a": 6}).expiry_from_server_default().execute())
    assert_default_expiry(s.get(k), default_ttl)


def test_ttl_minus2_on_new_record_gets_default(s, key, default_ttl):
    k = key()
    _one(s.upsert(k).put({"a": 1}).with_no_change_in_expiration().execute())
    assert_default_expiry(s.get(k), default_ttl)


def test_ttl_plain_put_resets_to_default(s, key, default_ttl):
    """A write without TTL (record_ttl 0) resets a TTL'd record to the
    namespace default (captures: every write with TTL 0 does)."""
    k = key()
    ttl_or_skip(lambda: s.upsert(k).put({"a": 1}).expire_record_after_seconds(100).execute())
    s.put(k, {"a": 2})
    assert_default_expiry(s.get(k), default_ttl)


def test_ttl_bad_values(s, key):
    from cspike import InvalidRequestError
    for bad in (0, -1, -2, -3, 1.5, True):
        with pytest.raises((ValueError, TypeError)):
            s.upsert(key()).put({"a": 1}).expire_record_after_seconds(bad)
    # More than 10 years: the server refuses it (result 4), nothing written;
    # refusing it client-side is fine too.
    k = key("huge")
    with pytest.raises((InvalidRequestError, ValueError)):
        s.upsert(k).put({"a": 1}).expire_record_after_seconds(315360001).execute()
    assert s.exists(k) is False


def test_touch_with_ttl(s, key):
    k = key()
    ttl_or_skip(lambda: s.upsert(k).put({"a": 1}).expire_record_after_seconds(100).execute())
    rows = list(s.query(k).touch().expire_record_after_seconds(200).execute())
    assert len(rows) == 1 and rows[0].is_ok
    rec = s.get(k)
    _ttl_close(rec, 200)
    assert rec.generation == 2 and rec.bins == {"a": 1}


def test_touch_op_with_ttl_and_read(s, key):
    k = key()
    s.put(k, {"i": 7})
    rec = ttl_or_skip(lambda: _one(
        s.upsert(k).touch_record().get("i").expire_record_after_seconds(300).execute()).record)
    assert rec.bins["i"] == 7
    assert rec.generation == 2
    _ttl_close(rec, 300)


def test_touch_missing_is_an_empty_stream(s, key):
    assert list(s.query(key("nope")).touch().execute()) == []


# --------------------------------------------------------------------------- reads

def test_header_read(s, key, default_ttl):
    k = key()
    s.put(k, {"a": 1, "b": "x"})
    s.put(k, {"a": 2})
    r = _one(s.query(k).with_no_bins().execute())
    assert r.record.bins == {}
    assert r.record.generation == 2
    assert_default_expiry(r.record, default_ttl)


def test_query_single_key(s, key):
    k = key()
    s.put(k, {"a": 1, "b": "x"})
    assert _one(s.query(k).execute()).record.bins == {"a": 1, "b": "x"}
    assert _one(s.query(k).bins(["b"]).execute()).record.bins == {"b": "x"}
    assert _one(s.query(k).bin("a").get().execute()).record.bins["a"] == 1
    # A missing key gives an empty stream, or a NOT_FOUND row when asked.
    assert list(s.query(key("nope")).execute()) == []
    rows = list(s.query(key("nope")).respond_all_keys().execute())
    assert [r.result_code for r in rows] == [2]
    with pytest.raises(Exception):
        s.query(key("nope")).execute().first_or_raise()


def test_exists_and_delete_builders(s, key):
    k = key()
    assert list(s.query(k).exists().execute()) == []
    rows = list(s.query(k).exists().respond_all_keys().execute())
    assert len(rows) == 1 and rows[0].as_bool() is False
    s.put(k, {"a": 1})
    assert _one(s.query(k).exists().execute()).as_bool() is True
    assert list(s.query(key("nope")).delete().execute()) == []
    r = _one(s.query(k).delete().execute())
    assert r.record is None
    assert s.exists(k) is False


def test_read_after_write_results(s, key):
    k = key()
    s.put(k, {"i": 1, "s": "b"})
    rec = _one(s.upsert(k).add("i", 4).get("i").append("s", "c").prepend("s", "a")
               .get("s").set_to("n", [1]).get("n").remove_bin("s").execute()).record
    assert rec.bins["i"] == 5 and rec.bins["s"] == "abc" and rec.bins["n"] == [1]
    assert s.get(k).bins == {"i": 5, "n": [1]}
    rec = _one(s.upsert(k).bin("i").add(1).bin("i").get().execute()).record
    assert rec.bins["i"] == 6


def test_durable_delete_builder(s, key, any_client):
    from cspike import EnterpriseOnlyError
    k = key()
    s.put(k, {"a": 1})
    try:
        list(s.query(k).delete().with_durable_delete().execute())
    except EnterpriseOnlyError as e:
        assert e.result_code == 25
        assert s.exists(k) is True
    else:
        assert s.exists(k) is False


def test_send_key_policy_on_builders(any_client, key):
    from cspike import KeyMismatchError  # noqa: F401 - named in the API
    sess = any_client.create_session(behavior(send_key=True))
    if not hasattr(sess, "upsert"):
        pytest.skip("chained builders not available")
    k = key(42)
    _one(sess.insert(k).put({"v": "int-key"}).execute())
    assert sess.get(k).bins == {"v": "int-key"}


def test_async_builders(any_client, key):
    from cspike import Client, RecordExistsError
    seeds = ",".join(f"{h}:{p}" for _n, h, p in any_client.nodes())

    async def main():
        async with Client(seeds) as c:
            s = c.create_session()
            if not hasattr(s, "upsert"):
                pytest.skip("async builders not available")
            k = key("a")
            rows = [x async for x in await s.insert(k).put({"a": 1}).execute()]
            assert len(rows) == 1 and rows[0].is_ok
            with pytest.raises(RecordExistsError):
                await s.insert(k).put({"a": 2}).execute()
            r = [x async for x in await s.upsert(k).add("a", 2).get("a").execute()]
            assert r[0].record.bins["a"] == 3
            r = [x async for x in await s.query(k).with_no_bins().execute()]
            assert r[0].record.generation == 2

    asyncio.run(main())
