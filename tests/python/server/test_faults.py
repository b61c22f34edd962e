"""Fault injection of the embedded server, one test per control command."""
import base64
import socket
import time

import pytest

import wire


def pid_of(d):
    return (d[0] | d[1] << 8) & 4095


def claims(port, ns="test"):
    """{column: set(pids)} claimed by the node, and the namespace regime."""
    text = wire.info(port, "replicas").split("\t", 1)[1].strip()
    for ent in text.split(";"):
        name, rest = ent.split(":", 1)
        if name != ns:
            continue
        parts = rest.split(",")
        regime, n = int(parts[0]), int(parts[1])
        cols = {}
        for i in range(n):
            bm = base64.b64decode(parts[2 + i])
            cols[i] = {p for p in range(4096) if bm[p >> 3] & (0x80 >> (p & 7))}
        return cols, regime
    raise KeyError(ns)


def key_on_partitions(pids, prefix="k"):
    for i in range(100000):
        k = f"{prefix}{i}"
        if pid_of(wire.digest("s", k)) in pids:
            return k
    raise AssertionError("no key found")


def put_get(port, key, value=1):
    fs = wire.key_fields("test", "s", key)
    w = wire.decode(wire.request(port, wire.msg(info2=1, fields=fs, ops=[wire.int_op(2, "a", value)])))
    r = wire.decode(wire.request(port, wire.msg(info1=3, fields=fs)))
    return w["msgs"][0]["result_code"], r["msgs"][0]


def test_kill_and_restart(Server):
    with Server(nodes=3) as _:
        pass
    srv = Server(nodes=3)
    srv.start()
    try:
        ports = [p for _, p in srv.nodes]
        names = [n for n, _ in srv.nodes]
        assert wire.info(ports[0], "peers-generation") == "peers-generation\t4\n"
        held = wire.connect(ports[2])
        srv.kill(2)
        with pytest.raises(ConnectionRefusedError):
            wire.connect(ports[2])
        # Open connections of the killed node are closed.
        held.settimeout(2)
        assert held.recv(1) == b""
        held.close()
        peers = wire.info(ports[0], "peers-clear-std")
        assert names[2] not in peers and names[1] in peers
        assert wire.info(ports[0], "peers-generation") == "peers-generation\t5\n"
        # Survivors now own every partition between them.
        m0, _ = claims(ports[0])
        m1, _ = claims(ports[1])
        assert len(m0[0]) + len(m1[0]) == 4096
        # Data survives (RF 2).
        rc, rec = put_get(ports[0], "after-kill")
        assert rc == 0 and rec["result_code"] == 0
        srv.restart(2)
        assert srv.node_states()[2]["alive"]
        assert wire.info(ports[2], "node") == f"node\t{names[2]}\n"
        m0, _ = claims(ports[0])
        m2, _ = claims(ports[2])
        assert m2[0] and len(m0[0]) < 2100
        rc, rec = put_get(ports[2], "after-kill")
        assert rec["result_code"] == 0
        with pytest.raises(Exception):
            srv.restart(2)
    finally:
        srv.stop()


def test_kill_with_rebalance_delay(Server):
    srv = Server(nodes=3, rebalance_delay_ms=300, migrate_delay_ms=300)
    srv.start()
    try:
        port = srv.nodes[0][1]
        srv.kill(2)
        assert wire.info(port, "cluster-stable") == "cluster-stable\tERROR:7:unstable cluster\n"
        time.sleep(0.4)
        st = wire.info(port, "statistics")
        assert "cluster_size=2;" in st and "cluster_integrity=true" in st
        assert srv.nodes[2][0] in wire.info(port, "peers-clear-std")
        time.sleep(0.4)
        assert "ERROR" not in wire.info(port, "cluster-stable")
        assert srv.nodes[2][0] not in wire.info(port, "peers-clear-std")
    finally:
        srv.stop()


def test_migrate(Server):
    srv = Server(nodes=3)
    srv.start()
    try:
        ports = [p for _, p in srv.nodes]
        m0, regime0 = claims(ports[0])
        m1, _ = claims(ports[1])
        pid = min(m1[0])  # a partition node 1 masters
        key = key_on_partitions({pid})
        assert put_get(ports[1], key)[0] == 0
        srv.migrate(pid, 0)
        n0, regime = claims(ports[0])
        n1, _ = claims(ports[1])
        assert regime == regime0 + 1
        assert pid in n0[0] and pid not in n1[0]
        # The old owner answers 11 for it; the new one and others serve.
        fs = wire.key_fields("test", "s", key)
        old = wire.decode(wire.request(ports[1], wire.msg(info1=3, fields=fs)))
        assert old["msgs"][0]["result_code"] == 11
        new = wire.decode(wire.request(ports[0], wire.msg(info1=3, fields=fs)))
        assert new["msgs"][0]["result_code"] == 0
        assert put_get(ports[2], key)[0] == 0
    finally:
        srv.stop()


def test_delay(Server):
    srv = Server()
    srv.start()
    try:
        port = srv.nodes[0][1]
        srv.delay(0, 300)
        t0 = time.monotonic()
        assert wire.info(port, "status") == "status\tok\n"
        assert time.monotonic() - t0 >= 0.29
        srv.delay(0, 0)
        t0 = time.monotonic()
        wire.info(port, "status")
        assert time.monotonic() - t0 < 0.2
    finally:
        srv.stop()


def test_close_after(Server):
    srv = Server()
    srv.start()
    try:
        port = srv.nodes[0][1]
        fs = wire.key_fields("test", "s", "ca")
        get = wire.msg(info1=3, fields=fs)
        srv.close_after(0, 2)
        with wire.connect(port) as s:
            s.sendall(get)
            assert wire.read_message(s)[13] == 2  # answered
            s.sendall(get)
            assert wire.read_message(s)[13] == 2  # answered, then closed
            with pytest.raises(wire.Closed):
                wire.read_message(s, 2.0)
        srv.close_after(0, 1, drop=True)
        with wire.connect(port) as s:
            s.sendall(get)
            with pytest.raises(wire.Closed) as e:
                wire.read_message(s, 2.0)
            assert e.value.got == b""
        # Back to normal.
        assert wire.request(port, get)[13] == 2
    finally:
        srv.stop()


def test_fail_next(Server):
    srv = Server()
    srv.start()
    try:
        port = srv.nodes[0][1]
        fs = wire.key_fields("test", "s", "fn")
        put = wire.msg(info2=1, fields=fs, ops=[wire.int_op(2, "a", 1)])
        srv.fail_next(0, 18, count=2)
        assert wire.request(port, put)[13] == 18
        assert wire.request(port, put)[13] == 18
        assert wire.request(port, put)[13] == 0
        # Info is not affected.
        srv.fail_next(0, 9)
        assert wire.info(port, "status") == "status\tok\n"
        assert wire.request(port, put)[13] == 9
    finally:
        srv.stop()


@pytest.mark.parametrize("mode", ["garbage", "truncate", "type", "version", "oversize"])
def test_corrupt_next(Server, mode):
    srv = Server()
    srv.start()
    try:
        port = srv.nodes[0][1]
        fs = wire.key_fields("test", "s", "cn")
        wire.request(port, wire.msg(info2=1, fields=fs, ops=[wire.int_op(2, "a", 1)]))
        get = wire.msg(info1=3, fields=fs)
        good = wire.request(port, get)
        srv.corrupt_next(0, mode)
        with wire.connect(port) as s:
            s.sendall(get)
            if mode == "garbage":
                bad = wire.read_message(s)
                assert bad[:8] == good[:8] and bad != good
            elif mode == "truncate":
                got = b""
                s.settimeout(2.0)
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    got += chunk
                assert got == good[: len(good) // 2]
            elif mode == "type":
                bad = wire.read_message(s)
                assert bad[1] == 9 and bad[2:] == good[2:]
            elif mode == "version":
                bad = wire.read_message(s)
                assert bad[0] == 1 and bad[1:] == good[1:]
            else:
                hdr = wire.recv_exact(s, 8, time.monotonic() + 2)
                assert int.from_bytes(hdr[2:8], "big") > 128 * 1024 * 1024
                with pytest.raises(wire.Closed):
                    wire.read_message(s, 2.0)
        assert wire.request(port, get) == good
    finally:
        srv.stop()


def test_stats(Server):
    srv = Server()
    srv.start()
    try:
        a = srv.stats()
        for _ in range(50):
            wire.info(srv.nodes[0][1], "status")
        b = srv.stats()
        assert b["requests"] - a["requests"] == 50
        assert b["cpu_user_us"] + b["cpu_sys_us"] >= a["cpu_user_us"] + a["cpu_sys_us"]
        assert b["nodes"][0]["requests"] >= 50
    finally:
        srv.stop()
