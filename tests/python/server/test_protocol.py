"""Error paths answered byte by byte as the real server answers them."""
import pytest

import wire


@pytest.fixture(scope="module")
def port(Server):
    srv = Server()
    srv.start()
    yield srv.nodes[0][1]
    srv.stop()


def hdr(rc, gen=0, void=0):
    return bytes.fromhex("0203000000000016" "16000000") + bytes([0, rc]) + \
        gen.to_bytes(4, "big") + void.to_bytes(4, "big") + bytes(8)


def put(fields, ops, info2=1, info3=0, gen=0, ttl=0):
    return wire.msg(info2=info2, info3=info3, fields=fields, ops=ops, gen=gen, ttl=ttl)


def test_unknown_namespace(port):
    fs = wire.key_fields("nosuchns", "s", "k")
    assert wire.request(port, put(fs, [wire.int_op(2, "a", 1)])) == hdr(20)
    get = wire.msg(info1=3, fields=fs)
    assert wire.request(port, get) == hdr(20)


def test_record_too_big_and_just_under(port):
    fs = wire.key_fields("test", "big", "k")
    big = wire.op(2, 4, "blob", b"\xab" * (1024 * 1024))
    assert wire.request(port, put(fs, [big])) == hdr(13)
    ok = wire.op(2, 4, "blob", b"\xab" * (1024 * 1024 - 200))
    assert wire.request(port, put(fs, [ok])) == hdr(0, gen=1)


def test_generation_mismatch(port):
    fs = wire.key_fields("test", "s", "gen")
    assert wire.request(port, put(fs, [wire.int_op(2, "a", 1)])) == hdr(0, 1)
    # EQ with a wrong generation: result 3 with the record's generation.
    assert wire.request(port, put(fs, [wire.int_op(2, "a", 2)], info2=5, gen=7)) == hdr(3, 1)
    assert wire.request(port, put(fs, [wire.int_op(2, "a", 2)], info2=5, gen=1)) == hdr(0, 2)
    # GT needs a strictly greater generation; success sets old + 1.
    assert wire.request(port, put(fs, [wire.int_op(2, "a", 2)], info2=9, gen=2)) == hdr(3, 2)
    assert wire.request(port, put(fs, [wire.int_op(2, "a", 2)], info2=9, gen=9)) == hdr(0, 3)
    # Deletes never return metadata.
    assert wire.request(port, wire.msg(info2=7, gen=99, fields=fs)) == hdr(3)


def test_key_exists_and_not_found(port):
    fs = wire.key_fields("test", "s", "exists")
    create = put(fs, [wire.int_op(2, "a", 1)], info2=0x21)
    assert wire.request(port, create) == hdr(0, 1)
    assert wire.request(port, create) == hdr(5, 1)
    missing = wire.key_fields("test", "s", "missing")
    assert wire.request(port, wire.msg(info1=3, fields=missing)) == hdr(2)
    assert wire.request(port, put(missing, [wire.int_op(2, "a", 1)], info3=8)) == hdr(2)
    assert wire.request(port, wire.msg(info2=3, fields=missing)) == hdr(2)


def test_bin_name_too_long(port):
    fs = wire.key_fields("test", "s", "binname")
    assert wire.request(port, put(fs, [wire.int_op(2, "a" * 15, 1)])) == hdr(0, 1)
    assert wire.request(port, put(fs, [wire.int_op(2, "a" * 16, 1)])) == hdr(21)
    # On a read the record is found first: the reply carries its generation.
    rd = wire.msg(info1=1, fields=fs, ops=[wire.op(1, 0, "b" * 16)])
    assert wire.request(port, rd) == hdr(21, 1)


def test_key_mismatch(port):
    fs = wire.key_fields("test", "s", "sk", send_key=True)
    assert wire.request(port, put(fs, [wire.int_op(2, "a", 1)])) == hdr(0, 1)
    other = fs[:3] + [wire.field(2, b"\x03other")]
    assert wire.request(port, put(other, [wire.int_op(2, "a", 1)])) == hdr(19, 1)
    rd = wire.msg(info1=1, fields=other, ops=[wire.op(1, 0, "a")])
    assert wire.request(port, rd) == hdr(19, 1)


def test_malformed_messages(port):
    fs = wire.key_fields("test", "s", "malformed")
    # Trailing bytes, n_fields larger than present, missing digest.
    m = wire.msg(info1=3, fields=fs)
    trailing = m[:2] + (int.from_bytes(m[2:8], "big") + 4).to_bytes(6, "big") + m[8:] + bytes(4)
    assert wire.request(port, trailing) == hdr(4)
    assert wire.request(port, wire.msg(info1=3, fields=fs[:2])) == hdr(16)
    assert wire.request(port, wire.msg(info1=3, fields=fs[1:])) == hdr(20)
    # info1 = info2 = 0; write without ops.
    assert wire.request(port, wire.msg(fields=fs)) == hdr(4)
    assert wire.request(port, wire.msg(info2=1, fields=fs)) == hdr(4)


def test_ttl_rules(port):
    fs = wire.key_fields("test", "s", "ttl")
    ten_years = 315360000
    assert wire.request(port, put(fs, [wire.int_op(2, "a", 1)], ttl=ten_years + 1)) == hdr(4)
    assert wire.request(port, put(fs, [wire.int_op(2, "a", 1)], ttl=0xFFFFFFFD)) == hdr(4)
    ans = wire.decode(wire.request(port, put(fs, [wire.int_op(2, "a", 1)], ttl=100)))
    rel = ans["msgs"][0]["record_ttl"] - wire.now_cl()
    assert 99 <= rel <= 101


def test_connection_level(port):
    import socket

    # Bad proto version: closed (RST) without an answer.
    m = wire.msg(info1=3, fields=wire.key_fields("test", "s", "x"))
    with wire.connect(port) as s:
        s.sendall(b"\x01" + m[1:])
        with pytest.raises(wire.Closed) as e:
            wire.read_message(s, 2.0)
        assert e.value.how == "reset" and e.value.got == b""
    # Type 5: no answer, connection stays open.
    with wire.connect(port) as s:
        s.sendall(b"\x02\x05" + m[2:])
        with pytest.raises(socket.timeout):
            wire.read_message(s, 0.3)
    # Admin on CE: 51.
    with wire.connect(port) as s:
        s.sendall(bytes.fromhex("020200000000001a00001401000000000000000000000000000000060061646d696e"))
        assert wire.read_message(s).hex() == "020200000000001000330000000000000000000000000000"
