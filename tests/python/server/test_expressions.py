"""Expressions beyond the captured cases: operators, variables, CDT calls,
expression-op flags, and the type checks that reject an expression (4)."""
import struct

import pytest

import wire


class P(str):
    """A string literal (particle prefix 3); plain str is a raw name."""


def mp(v):
    """Tiny msgpack encoder for expressions."""
    if v is None:
        return b"\xc0"
    if v is True or v is False:
        return b"\xc3" if v else b"\xc2"
    if isinstance(v, int):
        if 0 <= v < 128:
            return bytes([v])
        if -32 <= v < 0:
            return struct.pack(">b", v)
        return b"\xd3" + struct.pack(">q", v)
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, (str, bytes)):
        if isinstance(v, P):
            b = b"\x03" + v.encode()
        elif isinstance(v, str):
            b = v.encode()
        else:
            b = v
        assert len(b) < 256
        return (bytes([0xa0 | len(b)]) if len(b) < 32 else b"\xd9" + bytes([len(b)])) + b
    if isinstance(v, list):
        assert len(v) < 16
        return bytes([0x90 | len(v)]) + b"".join(mp(x) for x in v)
    if isinstance(v, dict):
        return bytes([0x80 | len(v)]) + b"".join(mp(k) + mp(x) for k, x in v.items())
    raise TypeError(v)


def binv(t, name):
    return [81, t, name]


A = binv(2, "a")


@pytest.fixture(scope="module")
def port(Server):
    srv = Server()
    srv.start()
    p = srv.nodes[0][1]
    fs = wire.key_fields("test", "exp", "k1", send_key=True)
    ops = [wire.int_op(2, "a", 10), wire.op(2, 2, "f", struct.pack(">d", 2.5)),
           wire.str_op(2, "s", "hello"), wire.op(2, 20, "l", bytes.fromhex("93010203")),
           wire.op(2, 19, "m", mp({P("x"): 1}))]
    ans = wire.decode(wire.request(p, wire.msg(info2=1, fields=fs, ops=ops)))
    assert ans["msgs"][0]["result_code"] == 0
    yield p
    srv.stop()


def exp_read(port, e, flags=0, key="k1"):
    fs = wire.key_fields("test", "exp", key)
    o = wire.op(7, 4, "r", mp([e, flags]))
    m = wire.decode(wire.request(port, wire.msg(info1=1, info2=0x80, fields=fs, ops=[o])))
    m = m["msgs"][0]
    if m["result_code"]:
        return m["result_code"], None
    op = m["ops"][0]
    return 0, (op["particle"], op["value"])


def i64(v):
    return (1, struct.pack(">q", v).hex())


def f64(v):
    return (2, struct.pack(">d", v).hex())


def boolean(v):
    return (17, "01" if v else "00")


def string(v):
    return (3, v.encode().hex())


@pytest.mark.parametrize("e,want", [
    ([20, A, 5, 1], i64(16)),
    ([21, A], i64(-10)),
    ([22, A, -3], i64(-30)),
    ([23, A, 3], i64(3)),
    ([23, 2.0], f64(0.5)),
    ([26, A, 3], i64(1)),
    ([24, 2.0, 3.0], f64(8.0)),
    ([25, 8.0, 2.0], f64(3.0)),
    ([27, [21, A]], i64(10)),
    ([28, binv(7, "f")], f64(2.0)),
    ([29, binv(7, "f")], f64(3.0)),
    ([30, binv(7, "f")], i64(2)),
    ([31, A], f64(10.0)),
    ([32, A, 6], i64(2)),
    ([33, A, 5], i64(15)),
    ([34, A, 3], i64(9)),
    ([35, 0], i64(-1)),
    ([36, A, 2], i64(40)),
    ([37, -1, 60], i64(15)),
    ([38, -16, 2], i64(-4)),
    ([39, A], i64(2)),
    ([40, A, True], i64(60)),
    ([41, A, True], i64(62)),
    ([40, -1, False], i64(-1)),
    ([50, A, 3, 7], i64(3)),
    ([51, 1.5, binv(7, "f")], f64(2.5)),
    ([7, 0, "^he.*o$", binv(3, "s")], boolean(True)),
    ([7, 2, "^HE", binv(3, "s")], boolean(True)),   # REG_ICASE on glibc
    ([125, "x", 5, "y", [20, [124, "x"], 1], [22, [124, "x"], [124, "y"]]], i64(30)),
    ([123, [3, A, 50], P("big"), [3, A, 5], P("mid"), P("small")], string("mid")),
    ([123, [3, A, 50], [0], P("small")], string("small")),
    ([9, A, [126, [1, 10]]], boolean(True)),
    ([9, A, [126, [1, 2]]], boolean(False)),
    ([127, 2, 0, [16], binv(4, "l")], i64(3)),                       # list size
    ([127, 4, 0x40, [1, 4], binv(4, "l")], (20, "9401020304")),      # local append
    ([127, 2, 0, [19, 7, [20, A, -9]], binv(4, "l")], i64(2)),       # get by index a-9
    ([127, 2, 0, [97, 7, P("x")], binv(5, "m")], i64(1)),           # map get by key
    ([101, binv(5, "m")], (20, "91a20378")),
    ([102, binv(5, "m")], (20, "9101")),
    ([70], string("exp")),
    ([71], boolean(True)),
    ([80, 3], string("k1")),
    ([82, "s"], i64(3)),
    ([82, "nosuch"], i64(0)),
    ([69], i64(-1)),
    ([68], i64(-1)),
    ([4, [64, 7], 0], boolean(True)),
    ([1, [126, [1, 2]], [126, [1, 2]]], boolean(True)),
    ([16, [1, A, 10], [17, [0], True]], boolean(True)),
    ([19, True, False, False], boolean(True)),
    ([19, True, True, False], boolean(False)),
    ([18, [1, A, 10]], boolean(False)),
])
def test_exp_read_values(port, e, want):
    assert exp_read(port, e) == (0, want)


@pytest.mark.parametrize("e", [
    [23, A, 0],                 # integer division by zero
    [26, A, 0],
    binv(3, "a"),               # wrong bin type
    [80, 2],                    # key is a string
    [1, binv(5, "m"), binv(5, "m")],  # unordered maps do not compare
    [127, 2, 0, [16], binv(4, "nosuch")],
])
def test_exp_read_unknown(port, e):
    assert exp_read(port, e) == (26, None)
    assert exp_read(port, e, flags=16) == (0, (0, ""))


@pytest.mark.parametrize("e", [
    [1, A, 1.5],                # mixed types
    [20, A, 1.5],
    [16, True],                 # too few args
    [18, A],
    [1, [70], [0]],             # str vs bool
    [124, "x"],                 # undefined variable
    [125, "1x", 1, [124, "1x"]],  # bad variable name
    [125, "x", [124, "x"], 1],  # used while defined
    [123, True, 1, P("s")],     # branch types differ
    [81, 2, "a" * 16],          # bin name too long
    [64, 0],                    # modulo by zero
    [99],                       # unknown opcode
    [8, [70], [70]],            # cmp_geo needs GeoJSON
    [127, 2, 0, [16], A],       # CDT call on an integer
    [7, 0, "[", binv(3, "s")],  # bad regex
])
def test_exp_read_rejected(port, e):
    assert exp_read(port, e) == (4, None)


def test_exp_read_flags(port):
    assert exp_read(port, A, flags=1) == (4, None)  # only EVAL_NO_FAIL on reads


def exp_modify(port, name, e, flags=0, key="k2"):
    fs = wire.key_fields("test", "exp", key)
    o = wire.op(8, 4, name, mp([e, flags]))
    rd = wire.op(1, 0, name)
    m = wire.decode(wire.request(port, wire.msg(info1=1, info2=0x81, fields=fs, ops=[o, rd])))
    m = m["msgs"][0]
    return m["result_code"], [(o["op"], o["particle"], o["value"]) for o in m["ops"]]


def test_exp_modify_flags(port):
    fs = wire.key_fields("test", "exp", "k2")
    wire.request(port, wire.msg(info2=1, fields=fs, ops=[wire.int_op(2, "a", 1)]))
    # create-only on an existing bin: 6; with POLICY_NO_FAIL nothing happens.
    assert exp_modify(port, "a", 5, flags=1)[0] == 6
    assert exp_modify(port, "a", 5, flags=1 | 8) == (0, [(8, 0, ""), (1, 1, i64(1)[1])])
    # update-only on a missing bin: 17.
    assert exp_modify(port, "b", 5, flags=2)[0] == 17
    assert exp_modify(port, "b", 5) == (0, [(8, 0, ""), (1, 1, i64(5)[1])])
    # nil deletes only with ALLOW_DELETE; without any flag it fails with 26.
    assert exp_modify(port, "b", None)[0] == 26
    assert exp_modify(port, "b", None, flags=4) == (0, [(8, 0, ""), (1, 0, "")])
    # unknown result: 26, or no change with EVAL_NO_FAIL.
    assert exp_modify(port, "a", binv(2, "nosuch"))[0] == 26
    assert exp_modify(port, "a", binv(2, "nosuch"), flags=16) == \
        (0, [(8, 0, ""), (1, 1, i64(1)[1])])
    # a failing op discards the whole command.
    fs2 = wire.key_fields("test", "exp", "k2")
    ops = [wire.int_op(2, "a", 99), wire.op(8, 4, "a", mp([[23, A, 0], 0]))]
    m = wire.decode(wire.request(port, wire.msg(info2=1, fields=fs2, ops=ops)))
    assert m["msgs"][0]["result_code"] == 26
    assert exp_read(port, A, key="k2") == (0, i64(1))
    # later ops see earlier ones in the same command.
    ops = [wire.int_op(2, "a", 7), wire.op(8, 4, "c", mp([[22, A, 2], 0])),
           wire.op(7, 4, "r", mp([[20, binv(2, "c"), 1], 0]))]
    m = wire.decode(wire.request(port, wire.msg(info1=1, info2=1, fields=fs2, ops=ops)))
    assert m["msgs"][0]["result_code"] == 0
    assert [(o["op"], o["value"]) for o in m["msgs"][0]["ops"]] == [(7, i64(15)[1])]


def test_filter_on_delete_and_read(port):
    fs = wire.key_fields("test", "exp", "k3")
    wire.request(port, wire.msg(info2=1, fields=fs, ops=[wire.int_op(2, "a", 3)]))
    flt = wire.field(43, mp([1, A, 4]))
    assert wire.decode(wire.request(port, wire.msg(info2=3, fields=fs + [flt])))[
        "msgs"][0]["result_code"] == 27
    flt = wire.field(43, mp([1, A, 3]))
    assert wire.decode(wire.request(port, wire.msg(info2=3, fields=fs + [flt])))[
        "msgs"][0]["result_code"] == 0
    # A filter that is not boolean: 4 (checked once the record is found).
    wire.request(port, wire.msg(info2=1, fields=fs, ops=[wire.int_op(2, "a", 3)]))
    flt = wire.field(43, mp(A))
    assert wire.decode(wire.request(port, wire.msg(info1=3, fields=fs + [flt])))[
        "msgs"][0]["result_code"] == 4


def test_cmp_geo(port):
    fs = wire.key_fields("test", "exp", "geo")
    pt = b'{"type":"Point","coordinates":[-122.0,37.5]}'
    wire.request(port, wire.msg(info2=1, fields=fs, ops=[wire.op(2, 23, "g", b"\0\0\0" + pt)]))
    poly = b'{"type":"Polygon","coordinates":[[[-123,37],[-121,37],[-121,38],[-123,38],[-123,37]]]}'
    far = b'{"type":"AeroCircle","coordinates":[[0.0,0.0],1000]}'
    near = b'{"type":"AeroCircle","coordinates":[[-122.001,37.5],1000]}'
    for region, want in ((poly, True), (far, False), (near, True)):
        e = [8, binv(8, "g"), b"\x17" + region]
        assert exp_read(port, e, key="geo") == (0, boolean(want))
