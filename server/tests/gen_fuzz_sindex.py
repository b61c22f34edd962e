"""Seed inputs for server/fuzz_server.c that exercise secondary indexes:
index definitions (create / rename / delete / list / stat), writes that
maintain them, and index queries (ranges, equality, index name, collection
indexes, contexts, GeoJSON, paging with DIGEST_ARRAY + BVAL_ARRAY, start
errors).  An input is one byte (the node) then proto messages.

    python3 server/tests/gen_fuzz_sindex.py server/tests/fuzz_sindex
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "python", "server"))
import wire  # noqa: E402


def info(*cmds):
    body = "".join(c + "\n" for c in cmds).encode()
    return b"\x02\x01" + len(body).to_bytes(6, "big") + body


def mp_str(s):
    b = b"\x03" + s.encode()
    return bytes([0xa0 | len(b)]) + b


def put(key, ops):
    return wire.msg(info2=1, fields=wire.key_fields("test", "fz", key, send_key=True), ops=ops)


def rng_int(bin_name, lo, hi):
    b = bin_name.encode()
    return (bytes([1, len(b)]) + b + bytes([1]) + (8).to_bytes(4, "big")
            + lo.to_bytes(8, "big", signed=True) + (8).to_bytes(4, "big")
            + hi.to_bytes(8, "big", signed=True))


def rng_bytes(bin_name, value, ptype):
    b = bin_name.encode()
    v = value.encode() if isinstance(value, str) else bytes(value)
    return (bytes([1, len(b)]) + b + bytes([ptype]) + len(v).to_bytes(4, "big") + v
            + len(v).to_bytes(4, "big") + v)


def query(rng, pids=range(256), extra=(), max_records=None, set_name=b"fz"):
    fs = [wire.field(0, b"test"), wire.field(1, set_name), wire.field(22, rng)]
    fs += list(extra)
    if pids:
        fs.append(wire.field(11, b"".join(p.to_bytes(2, "little") for p in pids)))
    if max_records:
        fs.append(wire.field(13, max_records.to_bytes(8, "big")))
    return wire.msg(info1=3, info3=4, fields=fs, ttl=0xFFFFFFFF)


CREATE = info("sindex-create:namespace=test;set=fz;indexname=fn;bin=n;type=numeric",
              "sindex-create:namespace=test;set=fz;indexname=fs;bin=s;type=string",
              "sindex-create:namespace=test;set=fz;indexname=fl;indextype=list;bin=l;type=numeric",
              "sindex-create:namespace=test;set=fz;indexname=fk;indextype=mapkeys;bin=m;type=string",
              "sindex-create:namespace=test;set=fz;indexname=fv;indextype=mapvalues;bin=m;type=numeric",
              "sindex-create:namespace=test;set=fz;indexname=fc;context=kiKiA2E=;bin=m;type=numeric",
              "sindex-create:namespace=test;set=fz;indexname=fb;bin=b;type=blob",
              "sindex-create:namespace=test;set=fz;indexname=fg;bin=g;type=geo2dsphere")

RECORDS = b"".join(
    put(f"f{i}", [wire.int_op(2, "n", i), wire.str_op(2, "s", f"v{i % 3}"),
                  wire.op(2, 20, "l", bytes([0x92, i % 5, 7])),
                  wire.op(2, 19, "m", bytes([0x82]) + mp_str("a") + bytes([i % 4])
                          + mp_str("b") + bytes([9])),
                  wire.op(2, 4, "b", bytes([i])),
                  wire.op(2, 23, "g", b"\x00\x00\x00" + (
                      '{"type":"Point","coordinates":[%d.0,%d.0]}' % (i, i)).encode())])
    for i in range(12))

SEEDS = {
    "defs": info("sindex-create:namespace=test;set=fz;indexname=a;bin=n;type=numeric",
                 "sindex-create:namespace=test;set=fz;indexname=a;bin=x;type=numeric",
                 "sindex-create:ns=test;set=fz;indexname=b;indexdata=n,numeric",
                 "sindex-create:namespace=test;indexname=c;bin=n;type=INTEGER",
                 "sindex-list", "sindex-list:namespace=test;b64=true",
                 "sindex-stat:namespace=test;indexname=b", "sindex/test/b", "sindex/test",
                 "sindex-exists:namespace=test;indexname=b",
                 "sindex-delete:namespace=test;indexname=b",
                 "sindex-delete:namespace=test;indexname=nosuch"),
    "numeric": CREATE + RECORDS + query(rng_int("n", 2, 9), pids=range(4096)),
    "string": CREATE + RECORDS + query(rng_bytes("s", "v1", 3), pids=range(4096)),
    "by_name": CREATE + RECORDS + query(rng_int("", 0, 5), pids=range(4096),
                                         extra=[wire.field(21, b"fn")]),
    "list": CREATE + RECORDS + query(rng_int("l", 0, 7), pids=range(4096),
                                      extra=[wire.field(26, b"\x01")]),
    "mapkeys": CREATE + RECORDS + query(rng_bytes("m", "a", 3), pids=range(4096),
                                         extra=[wire.field(26, b"\x02")]),
    "context": CREATE + RECORDS + query(rng_int("m", 1, 2), pids=range(4096),
                                         extra=[wire.field(23, bytes([0x92, 0x22]) + mp_str("a"))]),
    "geo": CREATE + RECORDS + query(rng_bytes(
        "g", '{"type":"AeroCircle","coordinates":[[3.0,3.0],300000]}', 23), pids=range(4096)),
    "blob": CREATE + RECORDS + query(rng_bytes("b", b"\x04", 4), pids=range(4096)),
    "paging": CREATE + RECORDS + query(rng_int("n", 0, 11), pids=range(4096), max_records=3)
    + query(rng_int("n", 0, 11), pids=range(2000, 4096), max_records=3,
            extra=[wire.field(12, wire.digest("fz", "f3")),
                   wire.field(15, (3).to_bytes(8, "little"))]),
    "errors": CREATE + query(rng_int("nosuch", 0, 1)) + query(rng_int("n", 9, 1))
    + query(rng_int("n", 0, 1), extra=[wire.field(26, b"")])
    + query(rng_int("n", 0, 1), extra=[wire.field(23, b"\x91")])
    + query(b"\x02" + rng_int("n", 0, 1)[1:]),
    "maintenance": CREATE + RECORDS
    + put("f1", [wire.int_op(2, "n", 100)]) + put("f2", [wire.str_op(2, "n", "x")])
    + wire.msg(info2=3, fields=wire.key_fields("test", "fz", "f4"))
    + info("truncate:namespace=test;set=fz", "sindex-delete:namespace=test;indexname=fl")
    + query(rng_int("n", 0, 200), pids=range(4096)),
}


def main(out):
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        # Node 0 for every seed; the others too where ownership matters.
        for node in (range(3) if name in ("numeric", "paging") else (0,)):
            with open(os.path.join(out, f"sindex_{name}_{node}.bin"), "wb") as f:
                f.write(bytes([node]) + data)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__),
                                                             "fuzz_sindex"))
