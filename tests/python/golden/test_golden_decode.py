"""Every captured single-record response decodes through the client.

Each type-3 answer of records / operate / errors / expressions / the cluster
captures (whatever request produced it) is served to a plain ``get``: the
client must turn it into the bins, generation and void time an independent
reader finds in the bytes, or into the exception class and result code of
the captured result code; never a crash or a ProtocolError.

Not applicable: batch.json and scan-query.json (streams of several as_msg;
cspike has no batch/scan API yet), info and admin answers (covered by
test_golden_info.py; admin not implemented), cases where nothing or a
non-type-3 message was received.
"""

from __future__ import annotations

import pytest

import capwire as W
from capwire import NotExpressible

pytestmark = pytest.mark.timeout(60)

FILES = ("records", "operate", "errors", "expressions", "info-cluster3")


def _responses():
    out = []
    for f in FILES:
        for i, c in enumerate(W.load(f)):
            if W.single_response(c) is not None:
                out.append(pytest.param(f, i, id=f"{f}-{i}-{c['name']}"))
    return out


def test_response_inventory():
    """Which captured answers are single-record as_msgs (and so checked)."""
    n = 0
    for f in FILES:
        for c in W.load(f):
            rs = W.response_bytes(c)
            if W.single_response(c) is not None:
                n += 1
            elif rs and not any("..." in h for h in c["response_hex"]):
                types = {t for r in rs for _v, t, _b in W.split_proto(r)}
                # Not single-record: info (1), admin (2), several messages.
                assert types <= {1, 2, 3}, (f, c["name"], types)
    assert n >= 180


@pytest.mark.parametrize("file,index", _responses())
def test_decode_captured_response(g, file, index):
    from cspike import AerospikeError, GeoJSON, Key, ProtocolError
    from cspike.exceptions import exception_for_code
    c = W.load(file)[index]
    resp = W.single_response(c)
    g.node.push(W.response_bytes(c)[0])
    key = Key("test", "decode", "k")
    try:
        rec = g.session().get(key)
    except ProtocolError as e:  # pragma: no cover - the failure we look for
        pytest.fail(f"client could not decode a real server answer: {e}")
    except AerospikeError as e:
        assert resp.result_code != 0, f"unexpected {e!r}"
        assert type(e) is exception_for_code(resp.result_code)
        assert e.result_code == resp.result_code
        return
    assert resp.result_code == 0
    assert rec.generation == resp.generation
    assert rec.void_time == (None if resp.record_ttl == 0 else resp.record_ttl + W.CITRUSLEAF_EPOCH)
    try:
        expected = {o.name.decode(): W.py_value(o.particle, o.value, GeoJSON) for o in resp.ops}
    except NotExpressible:
        # e.g. a prefix-less msgpack string: only require a clean decode.
        assert set(rec.bins) == {o.name.decode() for o in resp.ops}
        return
    assert rec.bins == expected
