"""Start-up time, ports, life cycle of the embedded server."""
import json
import subprocess
import threading
import time

import wire


def _start_time(server_bin, *args):
    t0 = time.monotonic()
    p = subprocess.Popen([server_bin, *args], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    elapsed = time.monotonic() - t0
    p.stdin.close()
    p.wait(timeout=10)
    return elapsed, json.loads(line)


def test_startup_under_200ms(server_bin):
    best = min(_start_time(server_bin)[0] for _ in range(3))
    assert best < 0.2, f"start-up took {best * 1000:.0f} ms"
    best3 = min(_start_time(server_bin, "--nodes", "3")[0] for _ in range(3))
    assert best3 < 0.2, f"3-node start-up took {best3 * 1000:.0f} ms"


def test_ready_line_lists_listening_nodes(server_bin):
    _, info = _start_time(server_bin, "--nodes", "2")
    assert [sorted(n) for n in info["nodes"]] == [["name", "port"]] * 2
    assert isinstance(info["pid"], int)


def test_parallel_servers_get_different_ports(Server):
    servers = [Server() for _ in range(4)]
    threads = [threading.Thread(target=s.start) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        ports = [p for s in servers for _, p in s.nodes]
        assert len(set(ports)) == len(ports)
        for s in servers:
            assert wire.info(s.nodes[0][1], "status") == "status\tok\n"
    finally:
        for s in servers:
            s.stop()


def test_exits_when_stdin_closes(server_bin):
    p = subprocess.Popen([server_bin], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    json.loads(p.stdout.readline())
    p.stdin.close()
    assert p.wait(timeout=5) == 0


def test_context_manager_returns_seeds(Server):
    srv = Server(nodes=3)
    with srv as seeds:
        assert seeds == ",".join(f"127.0.0.1:{p}" for _, p in srv.nodes)
        assert srv.running
    assert not srv.running


def test_explicit_port(Server):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with Server(port=port) as seeds:
        assert seeds == f"127.0.0.1:{port}"


def test_bad_arguments(server_bin):
    r = subprocess.run([server_bin, "--nodes", "0"], capture_output=True, text=True,
                       timeout=5)
    assert r.returncode == 2 and "usage" in r.stderr


def test_control_errors(Server):
    import pytest

    with Server() as _:
        pass
    srv = Server()
    srv.start()
    try:
        with pytest.raises(Exception, match="unknown command"):
            srv.command("frobnicate")
        with pytest.raises(Exception, match="bad arguments"):
            srv.command("kill 9")
        assert srv.command("ping") == "pong"
    finally:
        srv.stop()
