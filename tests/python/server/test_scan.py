"""Partition scans beyond the captured cases: cluster ownership, paging with
MAX_RECORDS + DIGEST_ARRAY, filters, bin selection, start errors."""
import struct

import pytest

import wire

N_KEYS = 300


def pid_of(d):
    return d[0] | (d[1] & 0x0F) << 8


def scan_msg(pids=None, digests=None, max_records=None, set_name="sc", info1=3, ops=(),
             filt=None, task=None):
    fs = [wire.field(0, b"test")]
    if set_name is not None:
        fs.append(wire.field(1, set_name.encode()))
    if task is not None:
        fs.append(wire.field(7, task.to_bytes(8, "big")))
    if pids is not None:
        fs.append(wire.field(11, b"".join(p.to_bytes(2, "little") for p in pids)))
    if digests:
        fs.append(wire.field(12, b"".join(digests)))
    if max_records is not None:
        fs.append(wire.field(13, max_records.to_bytes(8, "big")))
    if filt is not None:
        fs.append(wire.field(43, filt))
    return wire.msg(info1=info1, info3=4, fields=fs, ops=list(ops), ttl=0xFFFFFFFF)


def run_scan(port, m):
    """(records, partition-done pids) of a scan stream."""
    with wire.connect(port) as s:
        s.sendall(m)
        rows = [r for x in wire.read_stream(s) for r in wire.decode(x)["msgs"]]
    assert rows[-1]["info3"] & 1 and rows[-1]["result_code"] == 0
    recs = [r for r in rows[:-1] if not r["info3"] & 4]
    done = [r["generation"] for r in rows[:-1] if r["info3"] & 4]
    assert all(r["result_code"] == 11 for r in rows[:-1] if r["info3"] & 4)
    return recs, done


def digest_of(r):
    return bytes.fromhex(dict(r["fields"])[4])


def fill(port):
    for i in range(N_KEYS):
        fs = wire.key_fields("test", "sc", f"k{i}", send_key=(i % 2 == 0))
        ops = [wire.int_op(2, "n", i), wire.str_op(2, "s", f"v{i}")]
        assert wire.decode(wire.request(port, wire.msg(info2=1, fields=fs, ops=ops)))[
            "msgs"][0]["result_code"] == 0


@pytest.fixture(scope="module")
def single(Server):
    srv = Server()
    srv.start()
    fill(srv.nodes[0][1])
    yield srv.nodes[0][1]
    srv.stop()


def test_full_scan_and_fields(single):
    recs, done = run_scan(single, scan_msg(pids=range(4096)))
    assert done == [] and len(recs) == N_KEYS
    pids = [pid_of(digest_of(r)) for r in recs]
    assert pids == sorted(pids)  # partition order, digest order inside
    for r in recs:
        f = dict(r["fields"])
        n = int(r["ops"][0]["value"], 16)
        assert f[0] == b"test".hex() and f[1] == b"sc".hex()
        assert (2 in f) == (n % 2 == 0)  # KEY only when it was sent
        assert [o["bin"] for o in r["ops"]] == ["n", "s"]


def test_paging_with_digest_array(single):
    seen, pids, resume = [], list(range(4096)), []
    while True:
        recs, _ = run_scan(single, scan_msg(pids=pids or None, digests=resume, max_records=7))
        assert len(recs) <= 7
        if not recs:
            break
        seen += [digest_of(r) for r in recs]
        last = {}
        for r in recs:
            last[pid_of(digest_of(r))] = digest_of(r)
        top = max(last)
        # Partitions below the last one returned are finished.
        pids = [p for p in pids if p > top]
        resume = [last[top]]
        if not pids and not resume:
            break
    assert len(seen) == len(set(seen)) == N_KEYS


def test_filter_selection_nobins(single):
    flt = bytes.fromhex("9305935102a16e") + bytes([10])  # n < 10
    recs, _ = run_scan(single, scan_msg(pids=range(4096), filt=flt))
    assert sorted(int(r["ops"][0]["value"], 16) for r in recs) == list(range(10))
    recs, _ = run_scan(single, scan_msg(pids=range(4096), info1=1, ops=[wire.op(1, 0, "s")]))
    assert all([o["bin"] for o in r["ops"]] == ["s"] for r in recs)
    recs, _ = run_scan(single, scan_msg(pids=range(4096), info1=0x21))
    assert len(recs) == N_KEYS and all(r["n_ops"] == 0 and r["info1"] == 0x20 for r in recs)
    recs, _ = run_scan(single, scan_msg(pids=range(4096), set_name="nosuchset"))
    assert recs == []
    recs, _ = run_scan(single, scan_msg(pids=range(4096), set_name=None))
    assert len(recs) >= N_KEYS  # whole namespace


def start_error(port, m):
    with wire.connect(port) as s:
        s.sendall(m)
        ans = wire.read_message(s)
    msgs = wire.decode(ans)["msgs"]
    assert len(msgs) == 1 and not msgs[0]["info3"] & 1
    return msgs[0]["result_code"]


def test_start_errors(single):
    assert start_error(single, scan_msg(pids=[1, 1])) == 4
    assert start_error(single, scan_msg(pids=[4096])) == 4
    assert start_error(single, scan_msg()) == 16
    assert start_error(single, scan_msg(pids=[1], filt=bytes.fromhex("935102a161"))) == 4
    run_scan(single, scan_msg(pids=[1], task=777))
    assert start_error(single, scan_msg(pids=[1], task=777)) == 4


def test_cluster_scan_union(Server):
    srv = Server(nodes=3)
    srv.start()
    try:
        ports = [p for _, p in srv.nodes]
        fill(ports[0])
        total, all_done = [], []
        for p in ports:
            recs, done = run_scan(p, scan_msg(pids=range(4096)))
            total += [digest_of(r) for r in recs]
            all_done.append(set(done))
        # Every partition has exactly one master: the nodes split the scan.
        assert len(total) == len(set(total)) == N_KEYS
        owned = [set(range(4096)) - d for d in all_done]
        assert sum(len(o) for o in owned) == 4096
        assert set().union(*owned) == set(range(4096))
    finally:
        srv.stop()
