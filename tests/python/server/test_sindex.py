"""Secondary indexes beyond the captured cases: queries across a 3-node
cluster (each node answers the partitions it masters), paging with
MAX_RECORDS + DIGEST_ARRAY + BVAL_ARRAY, string / blob / collection /
context / geo indexes, filters and bin selection, index maintenance seen
through queries, population (WO / 203), and start errors."""
import json
import time

import pytest

import wire

N = 600


def pid_of(d):
    return d[0] | (d[1] & 0x0F) << 8


def digest_of(r):
    return bytes.fromhex(dict(r["fields"])[4])


# ---- request building --------------------------------------------------------


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


def query_msg(rng, pids=range(4096), digests=(), bvals=(), max_records=None, set_name="si",
              itype=None, ctx=None, index_name=None, filt=None, info1=3, ops=()):
    fs = [wire.field(0, b"test")]
    if set_name is not None:
        fs.append(wire.field(1, set_name.encode()))
    if itype is not None:
        fs.append(wire.field(26, bytes([itype])))
    fs.append(wire.field(22, rng))
    if ctx is not None:
        fs.append(wire.field(23, ctx))
    if index_name is not None:
        fs.append(wire.field(21, index_name.encode()))
    if filt is not None:
        fs.append(wire.field(43, filt))
    if pids:
        fs.append(wire.field(11, b"".join(p.to_bytes(2, "little") for p in pids)))
    if digests:
        fs.append(wire.field(12, b"".join(digests)))
        fs.append(wire.field(15, b"".join(v.to_bytes(8, "little", signed=True) for v in bvals)))
    if max_records is not None:
        fs.append(wire.field(13, max_records.to_bytes(8, "big")))
    return wire.msg(info1=info1, info3=4, fields=fs, ops=list(ops), ttl=0xFFFFFFFF)


def run(port, m):
    """(records, partition-done pids) of a query stream, or the start error."""
    with wire.connect(port) as s:
        s.sendall(m)
        first = wire.read_message(s)
        rows = wire.decode(first)["msgs"]
        if len(rows) == 1 and not rows[0]["info3"] & 5 and rows[0]["n_fields"] == 0 \
                and rows[0]["result_code"]:
            return rows[0]["result_code"]
        msgs = [first]
        if not any(r["info3"] & 1 for r in rows):
            msgs += wire.read_stream(s)
    rows = [r for x in msgs for r in wire.decode(x)["msgs"]]
    assert rows[-1]["info3"] & 1 and rows[-1]["result_code"] == 0
    recs = [r for r in rows[:-1] if not r["info3"] & 4]
    done = [r["generation"] for r in rows[:-1] if r["info3"] & 4]
    assert all(r["result_code"] == 11 for r in rows[:-1] if r["info3"] & 4)
    return recs, done


def bval_of(r):
    return int.from_bytes(bytes.fromhex(dict(r["fields"])[15]), "little", signed=True)


def ops_of(r):
    return {o["bin"]: o["value"] for o in r["ops"]}


def info1(port, cmd):
    out = wire.info(port, cmd)
    return out.split("\t", 1)[1].rstrip("\n")


def put(port, key, ops, set_name="si"):
    fs = wire.key_fields("test", set_name, key, send_key=True)
    ans = wire.decode(wire.request(port, wire.msg(info2=1, fields=fs, ops=ops)))
    assert ans["msgs"][0]["result_code"] == 0


def mp_str(s):
    b = b"\x03" + s.encode()
    return bytes([0xa0 | len(b)]) + b


def mp_int(v):
    assert 0 <= v < 128
    return bytes([v])


def list_op(name, items):
    return wire.op(2, 20, name, bytes([0x90 | len(items)]) + b"".join(items))


def map_op(name, pairs):
    return wire.op(2, 19, name, bytes([0x80 | len(pairs)]) + b"".join(k + v for k, v in pairs))


def wait_ready(port, name, timeout=5.0):
    deadline = time.monotonic() + timeout
    while "load_pct=100" not in info1(port, f"sindex-stat:namespace=test;indexname={name}"):
        assert time.monotonic() < deadline
        time.sleep(0.01)


def expected_keys(pred):
    return {wire.digest("si", f"k{i}") for i in range(N) if pred(i)}


# ---- a 3-node cluster ----------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(Server):
    srv = Server(nodes=3)
    srv.start()
    ports = [p for _, p in srv.nodes]
    for i in range(N):
        put(ports[i % 3], f"k{i}", [wire.int_op(2, "n", i % 100), wire.str_op(2, "s", f"v{i % 7}"),
                                    wire.str_op(2, "tag", "even" if i % 2 == 0 else "odd")])
    # Created through one node: definitions are cluster-wide (SMD).
    assert info1(ports[0], "sindex-create:namespace=test;set=si;indexname=si_n;bin=n;"
                           "type=numeric") == "ok"
    assert info1(ports[1], "sindex-create:namespace=test;set=si;indexname=si_s;bin=s;"
                           "type=string") == "ok"
    for p in ports:
        wait_ready(p, "si_n")
        wait_ready(p, "si_s")
    yield srv, ports
    srv.stop()


def union(ports, m):
    """Records of every node; each node answers only the partitions it
    masters (PARTITION_DONE with 11 for the others)."""
    total, owned = [], []
    for p in ports:
        recs, done = run(p, m)
        mine = set(range(4096)) - set(done)
        assert all(pid_of(digest_of(r)) in mine for r in recs)
        total += recs
        owned.append(mine)
    assert sum(len(o) for o in owned) == 4096
    assert set().union(*owned) == set(range(4096))
    return total


def test_cluster_numeric_range(cluster):
    srv, ports = cluster
    recs = union(ports, query_msg(rng_int("n", 10, 29)))
    ds = [digest_of(r) for r in recs]
    assert len(ds) == len(set(ds))
    assert set(ds) == expected_keys(lambda i: 10 <= i % 100 <= 29)
    for r in recs:
        assert bval_of(r) == int(ops_of(r)["n"], 16)
        assert [f for f, _ in r["fields"]] == [0, 4, 1, 2, 15]


def test_cluster_order_within_node(cluster):
    srv, ports = cluster
    for p in ports:
        recs, _ = run(p, query_msg(rng_int("n", 0, 99)))
        keys = [(pid_of(digest_of(r)), bval_of(r), digest_of(r)) for r in recs]
        assert keys == sorted(keys)  # partition order, then (bval, digest)


def test_cluster_string_equality(cluster):
    srv, ports = cluster
    recs = union(ports, query_msg(rng_bytes("s", "v3", 3)))
    assert {digest_of(r) for r in recs} == expected_keys(lambda i: i % 7 == 3)
    h = bval_of(recs[0])
    assert all(bval_of(r) == h for r in recs)
    assert run(ports[0], query_msg(rng_bytes("s", "nope", 3)))[0] == []
    # By index name (empty bin name in the range).
    recs = union(ports, query_msg(rng_bytes("", "v3", 3), index_name="si_s"))
    assert {digest_of(r) for r in recs} == expected_keys(lambda i: i % 7 == 3)


def test_cluster_paging(cluster):
    """Pages of 11 per node, resumed with the last digest + bval of every
    partition cut short, as a client's partition tracker does."""
    srv, ports = cluster
    seen = []
    for p in ports:
        recs, done = run(p, query_msg(rng_int("n", 0, 49)))
        owned = sorted(set(range(4096)) - set(done))
        full = [digest_of(r) for r in recs]
        pids, resume, got = owned, {}, []
        while True:
            ds = [resume[q][0] for q in sorted(resume)]
            bv = [resume[q][1] for q in sorted(resume)]
            recs, _ = run(p, query_msg(rng_int("n", 0, 49), pids=pids, digests=ds, bvals=bv,
                                       max_records=11))
            assert len(recs) <= 11
            got += [digest_of(r) for r in recs]
            if len(recs) < 11:
                break
            last_pid = pid_of(digest_of(recs[-1]))
            for r in recs:
                resume[pid_of(digest_of(r))] = (digest_of(r), bval_of(r))
            # partitions before the last one answered are finished
            resume = {q: v for q, v in resume.items() if q >= last_pid}
            pids = [q for q in pids if q > last_pid]
        assert got == full
        seen += got
    assert set(seen) == expected_keys(lambda i: i % 100 <= 49) and len(seen) == len(set(seen))


def test_filter_selection_nobins(cluster):
    srv, ports = cluster
    # tag == "even": [1, [81, 3, "tag"], "\x03even"]
    flt = bytes([0x93, 0x01, 0x93, 0x51, 0x03, 0xa3]) + b"tag" + mp_str("even")
    recs = union(ports, query_msg(rng_int("n", 0, 9), filt=flt))
    assert {digest_of(r) for r in recs} == expected_keys(lambda i: i % 100 <= 9 and i % 2 == 0)
    recs = union(ports, query_msg(rng_int("n", 0, 9), info1=1, ops=[wire.op(1, 0, "tag")]))
    assert recs and all([o["bin"] for o in r["ops"]] == ["tag"] for r in recs)
    recs = union(ports, query_msg(rng_int("n", 0, 9), info1=0x21))
    assert recs and all(r["n_ops"] == 0 and r["info1"] == 0x20 for r in recs)
    assert all(15 in dict(r["fields"]) for r in recs)


def test_start_errors(cluster):
    srv, ports = cluster
    p = ports[0]
    assert run(p, query_msg(rng_int("nosuch", 0, 1))) == 201
    assert run(p, query_msg(rng_int("n", 5, 1))) == 4  # begin > end
    assert run(p, query_msg(rng_int("n", 0, 1), itype=1)) == 201  # no list index
    assert run(p, query_msg(rng_bytes("n", "x", 3))) == 201  # index is numeric
    assert run(p, query_msg(rng_int("n", 0, 1), set_name=None)) == 201  # set index only
    assert run(p, query_msg(rng_int("n", 0, 1), index_name="nosuch")) == 201
    assert run(p, query_msg(rng_int("", 0, 1))) == 4  # no bin, no index name
    assert run(p, query_msg(b"\x02" + rng_int("n", 0, 1)[1:])) == 4  # 2 ranges
    assert run(p, query_msg(rng_int("n", 0, 1)[:-3])) == 4  # truncated
    assert run(p, query_msg(rng_int("n", 0, 1), ctx=b"\x91")) == 4  # bad context
    # Resume digests without BVAL_ARRAY.
    d = wire.digest("si", "k1")
    fs = [wire.field(0, b"test"), wire.field(1, b"si"), wire.field(22, rng_int("n", 0, 1)),
          wire.field(12, d)]
    assert run(p, wire.msg(info1=3, info3=4, fields=fs, ttl=0xFFFFFFFF)) == 4
    # An unknown set cannot have an index (only whole-namespace ones apply).
    assert run(p, query_msg(rng_int("n", 0, 99), set_name="nosuchset")) == 201


# ---- single-node index types and maintenance ----------------------------------------


@pytest.fixture
def single(Server):
    srv = Server()
    srv.start()
    yield srv.nodes[0][1]
    srv.stop()


def digests(recs):
    return {digest_of(r) for r in recs}


def test_maintenance_seen_by_queries(single):
    p = single
    assert info1(p, "sindex-create:namespace=test;set=si;indexname=ix;bin=n;type=numeric") == "ok"
    for i in range(20):
        put(p, f"k{i}", [wire.int_op(2, "n", i)])
    q = query_msg(rng_int("n", 5, 9))
    assert digests(run(p, q)[0]) == {wire.digest("si", f"k{i}") for i in range(5, 10)}
    put(p, "k5", [wire.int_op(2, "n", 100)])  # moves out of the range
    put(p, "k15", [wire.int_op(2, "n", 7)])  # moves in
    put(p, "k6", [wire.str_op(2, "n", "x")])  # no longer numeric
    fs = wire.key_fields("test", "si", "k7")
    wire.request(p, wire.msg(info2=3, fields=fs))  # delete
    want = {wire.digest("si", f"k{i}") for i in (8, 9, 15)}
    recs = run(p, q)[0]
    assert digests(recs) == want
    assert {bval_of(r) for r in recs} == {7, 8, 9}
    assert info1(p, "truncate:namespace=test;set=si") == "ok"
    assert run(p, q)[0] == []
    assert info1(p, "sindex-stat:namespace=test;indexname=ix").startswith("entries=0;")


def test_collection_context_blob_geo(single):
    p = single
    for cmd in ("sindex-create:namespace=test;set=si;indexname=li;indextype=list;bin=l;type=numeric",
                "sindex-create:namespace=test;set=si;indexname=mk;indextype=mapkeys;bin=m;type=string",
                "sindex-create:namespace=test;set=si;indexname=mv;indextype=mapvalues;bin=m;type=numeric",
                "sindex-create:namespace=test;set=si;indexname=cx;context=kiKiA2E=;bin=m;type=numeric",
                "sindex-create:namespace=test;set=si;indexname=bl;bin=b;type=blob",
                "sindex-create:namespace=test;set=si;indexname=geo;bin=g;type=geo2dsphere"):
        assert info1(p, cmd) == "ok"
    put(p, "a", [list_op("l", [mp_int(1), mp_int(2), mp_int(3)]),
                 map_op("m", [(mp_str("a"), mp_int(5)), (mp_str("b"), mp_int(6))]),
                 wire.op(2, 4, "b", b"\x01\x02")])
    put(p, "b", [list_op("l", [mp_int(3), mp_int(4)]),
                 map_op("m", [(mp_str("a"), mp_int(6)), (mp_str("c"), mp_int(7))]),
                 wire.op(2, 4, "b", b"\x01\x03")])
    da, db = wire.digest("si", "a"), wire.digest("si", "b")
    # List range: each record once even when several elements match.
    recs = run(p, query_msg(rng_int("l", 1, 4), itype=1))[0]
    assert sorted(digest_of(r) for r in recs) == sorted([da, db])
    assert digests(run(p, query_msg(rng_int("l", 4, 4), itype=1))[0]) == {db}
    assert digests(run(p, query_msg(rng_bytes("m", "c", 3), itype=2))[0]) == {db}
    assert digests(run(p, query_msg(rng_int("m", 6, 6), itype=3))[0]) == {da, db}
    ctx = bytes([0x92, 0x22]) + mp_str("a")
    assert digests(run(p, query_msg(rng_int("m", 6, 6), ctx=ctx))[0]) == {db}
    assert digests(run(p, query_msg(rng_bytes("b", b"\x01\x02", 4)))[0]) == {da}
    # Geo: points within a circle, a region containing a point.
    def geo(js):
        return b"\x00\x00\x00" + js.encode()
    put(p, "pt", [wire.op(2, 23, "g", geo('{"type":"Point","coordinates":[10.0,20.0]}'))])
    put(p, "far", [wire.op(2, 23, "g", geo('{"type":"Point","coordinates":[-50.0,-20.0]}'))])
    put(p, "poly", [wire.op(2, 23, "g", geo(
        '{"type":"Polygon","coordinates":[[[0,0],[0,5],[5,5],[5,0],[0,0]]]}'))])
    circle = '{"type":"AeroCircle","coordinates":[[10.0,20.0],1000]}'
    recs = run(p, query_msg(rng_bytes("g", circle, 23)))[0]
    assert digests(recs) == {wire.digest("si", "pt")}
    assert bval_of(recs[0]) != 0  # the point's S2 cell
    inside = '{"type":"Point","coordinates":[1.0,1.0]}'
    assert digests(run(p, query_msg(rng_bytes("g", inside, 23)))[0]) == {wire.digest("si", "poly")}
    assert run(p, query_msg(rng_bytes("g", "{not json", 23))) == 4
    listing = info1(p, "sindex-list:namespace=test")
    assert "indexname=cx:set=si:bin=m:type=numeric:indextype=default:context=[map_key(\"a\")]" \
        in listing
    assert "context=kiKiA2E=" in info1(p, "sindex-list:namespace=test;b64=true")


def test_population_write_only(Server):
    srv = Server(sindex_populate_ms=400)
    srv.start()
    try:
        p = srv.nodes[0][1]
        # An empty set: readable at once.
        assert info1(p, "sindex-create:namespace=test;set=si;indexname=e;bin=n;type=numeric") == "ok"
        for i in range(10):
            put(p, f"k{i}", [wire.int_op(2, "n", i), wire.int_op(2, "m", i)])
        assert len(run(p, query_msg(rng_int("n", 0, 9)))[0]) == 10
        # A populated set: WO and 203 until population is over.
        assert info1(p, "sindex-create:namespace=test;set=si;indexname=w;bin=m;type=numeric") == "ok"
        assert "indexname=w:set=si:bin=m:type=numeric:indextype=default:context=null:exp=null:" \
               "state=WO" in info1(p, "sindex-list")
        assert ":index_populating=true:" in info1(p, "sets/test/si")
        assert run(p, query_msg(rng_int("m", 0, 9))) == 203
        put(p, "k10", [wire.int_op(2, "m", 5)])  # maintained while populating
        wait_ready(p, "w")
        assert "load_pct=100;load_time=400;" in info1(p, "sindex-stat:namespace=test;indexname=w")
        assert len(run(p, query_msg(rng_int("m", 5, 5)))[0]) == 2
    finally:
        srv.stop()


def test_definitions_across_nodes(Server):
    srv = Server(nodes=3)
    srv.start()
    try:
        ports = [p for _, p in srv.nodes]
        assert info1(ports[0], "sindex-create:namespace=test;indexname=x;bin=a;type=string") == "ok"
        listings = {info1(p, "sindex-list") for p in ports}
        assert len(listings) == 1
        assert info1(ports[1], "sindex-create:namespace=test;indexname=y;bin=a;type=string") == "ok"
        assert "indexname=y:" in info1(ports[2], "sindex-list")  # renamed everywhere
        assert info1(ports[2], "sindex-delete:namespace=test;indexname=y") == "ok"
        assert all(info1(p, "sindex-list") == "" for p in ports)
    finally:
        srv.stop()
