"""A scripted fake Aerospike node: a socket server thread for client tests.

It answers info requests (tend, ``client.info``) from a dict of values and
data commands (proto type 3) from a script of actions, and records every
request it receives.  Used by the golden-vector tests (answers = captured
real-server bytes) and by the fault tests (answers = broken frames, resets,
silence).

Actions for data commands (``node.push(...)``; with an empty script
``node.default`` is used, which by default closes the connection and counts
an unexpected request):

* ``bytes``                  send them, keep the connection open
* ``Reply(data, close=...)`` send, then optionally close
* ``Partial(data, n)``       send the first n bytes, then close
* ``Close()``                close without replying
* ``Hang()``                 never answer; keep the socket open (until stop)
* ``Delay(seconds, action)`` wait, then do action
* ``Then(data, action)``     send data, then do action (e.g. ``Hang()``)
* a callable ``f(request_bytes) -> action``
"""

from __future__ import annotations

import collections
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from capwire import full_replicas


@dataclass
class Reply:
    data: bytes
    close: bool = False


@dataclass
class Partial:
    data: bytes
    n: int


@dataclass
class Close:
    pass


@dataclass
class Hang:
    pass


@dataclass
class Delay:
    seconds: float
    action: Any


@dataclass
class Then:
    data: bytes
    action: Any


def default_info(name: str = "A1", namespaces=("test", "bar")) -> dict[str, str]:
    """What a fresh single CE 8.1.2 node answers to the tend commands."""
    return {
        "node": name,
        "build": "8.1.2.0",
        "partition-generation": "0",
        "peers-generation": "0",
        "peers-clear-std": "0,3000,[]",
        "peers-clear-alt": "0,3000,[]",
        "replicas": full_replicas(namespaces),
        "cluster-name": "null",
        "rebalance-generation": "1",
    }


class FakeNode:
    """One fake node on 127.0.0.1 (ephemeral port)."""

    def __init__(self, info: Mapping[str, str] | None = None, *,
                 info_hook: Callable[[str], str | None] | None = None) -> None:
        self.info = dict(default_info() if info is None else info)
        self.info_hook = info_hook          # cmd -> value or None (fall back to .info)
        self.requests: list[bytes] = []     # type-3 requests, proto header included
        self.info_requests: list[bytes] = []
        self.unexpected = 0                 # data requests that found no script entry
        self.accepted = 0                   # connections accepted
        self.default: Any = Close()
        self.info_action: Any = None        # override for info replies (faults)
        self.info_exact: dict[bytes, bytes] = {}  # whole request -> whole reply
        self._script: collections.deque = collections.deque()
        self._info_script: collections.deque = collections.deque()
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._stop = threading.Event()
        self._srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._srv.bind(("127.0.0.1", 0))
        self._srv.listen(64)
        self.port = self._srv.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, daemon=True,
                                        name=f"fakenode-{self.port}")
        self._thread.start()

    # ---- control ----------------------------------------------------------

    @property
    def seed(self) -> str:
        return f"127.0.0.1:{self.port}"

    def push(self, *actions: Any) -> None:
        with self._lock:
            self._script.extend(actions)

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self.requests.clear()
            self.info_requests.clear()
            self.unexpected = 0
            self.info_exact.clear()
            self._info_script.clear()
        self.default = Close()
        self.info_action = None

    def pending(self) -> int:
        with self._lock:
            return len(self._script)

    def wait_requests(self, n: int, timeout: float = 5.0) -> list[bytes]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._lock:
                if len(self.requests) >= n:
                    return list(self.requests)
            time.sleep(0.005)
        with self._lock:
            return list(self.requests)

    def drop_connections(self) -> None:
        """Reset every open connection (the listener keeps running)."""
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            _hard_close(c)

    def drop_connections_gracefully(self) -> None:
        """Close every open connection with FIN (like idle reaping)."""
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self) -> None:
        """Stop listening and drop every connection (a dead node)."""
        self._stop.set()
        try:
            self._srv.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass
        try:
            self._srv.close()
        except OSError:
            pass
        self.drop_connections()
        self._thread.join(timeout=5)

    def __enter__(self) -> "FakeNode":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- server -----------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._srv.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.accepted += 1
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            while not self._stop.is_set():
                hdr = _recv_exact(conn, 8)
                if hdr is None:
                    return
                (word,) = struct.unpack(">Q", hdr)
                ptype, size = (word >> 48) & 0xFF, word & 0xFFFFFFFFFFFF
                if size > 64 * 1024 * 1024:
                    return
                body = _recv_exact(conn, size)
                if body is None:
                    return
                if ptype == 1:
                    if not self._answer_info(conn, hdr + body):
                        return
                    continue
                with self._lock:
                    self.requests.append(hdr + body)
                    action = self._script.popleft() if self._script else None
                    if action is None:
                        self.unexpected += 1
                        action = self.default
                if not self._do(conn, action, hdr + body):
                    return
        except OSError:
            pass
        finally:
            with self._lock:
                self._conns.discard(conn)
            try:
                conn.close()
            except OSError:
                pass

    def info_push(self, *actions: Any) -> None:
        """Actions for the next info requests (tend included); a callable
        may return None to answer normally."""
        with self._lock:
            self._info_script.extend(actions)

    def info_reply(self, request: bytes) -> bytes:
        """The normal answer to an info request (proto header included)."""
        text = request[8:].decode("utf-8", "replace")
        out = []
        for cmd in text.split("\n"):
            if not cmd:
                continue
            value = self.info_hook(cmd) if self.info_hook else None
            if value is None:
                value = self.info.get(cmd, "ERROR:4:unrecognized command")
            out.append(f"{cmd}\t{value}\n")
        body = "".join(out).encode()
        return struct.pack(">Q", (2 << 56) | (1 << 48) | len(body)) + body

    def _answer_info(self, conn: socket.socket, request: bytes) -> bool:
        with self._lock:
            self.info_requests.append(request)
            exact = self.info_exact.get(request)
            scripted = self._info_script.popleft() if self._info_script else None
        if exact is not None:
            conn.sendall(exact)
            return True
        action = scripted if scripted is not None else self.info_action
        while callable(action) and not isinstance(action, type):
            action = action(request)
        if action is not None:
            return self._do(conn, action, request)
        conn.sendall(self.info_reply(request))
        return True

    def _do(self, conn: socket.socket, action: Any, request: bytes) -> bool:
        """Carry out one action; False = the connection is finished."""
        while callable(action) and not isinstance(action, type):
            action = action(request)
        if isinstance(action, Then):
            conn.sendall(action.data)
            return self._do(conn, action.action, request)
        if isinstance(action, Delay):
            if self._stop.wait(action.seconds):
                return False
            return self._do(conn, action.action, request)
        if isinstance(action, (bytes, bytearray)):
            conn.sendall(action)
            return True
        if isinstance(action, Reply):
            conn.sendall(action.data)
            if action.close:
                _graceful_close(conn)
                return False
            return True
        if isinstance(action, Partial):
            conn.sendall(action.data[:action.n])
            _graceful_close(conn)
            return False
        if isinstance(action, Close):
            _hard_close(conn)
            return False
        if isinstance(action, Hang):
            self._stop.wait()
            return False
        raise TypeError(f"unknown fake-node action {action!r}")


def _recv_exact(conn: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def _graceful_close(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def _hard_close(conn: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), like a crashed or strict server."""
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        conn.close()
    except OSError:
        pass
