"""Helpers of the asyncio and concurrency suites (not fixtures).

Imported by ``tests/python/aio`` and ``tests/python/concurrency`` (their
conftests put this directory on ``sys.path``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import sys
import threading
import time
from typing import Any, Iterator

import pytest

from suite import NAMESPACE, REAL_CLUSTER, RUN_ID, await_for, wait_for  # noqa: F401 (re-exported)
from suite import behavior as _behavior

FREE_THREADED = hasattr(sys, "_is_gil_enabled")

try:  # uvloop is an optional dependency of cspike
    import uvloop  # noqa: F401
    HAVE_UVLOOP = True
    UVLOOP_MISSING = ""
except ImportError as exc:  # pragma: no cover - depends on the interpreter
    HAVE_UVLOOP = False
    tag = f"cp{sys.version_info[0]}{sys.version_info[1]}{'t' if FREE_THREADED else ''}"
    UVLOOP_MISSING = f"uvloop is not installed for this interpreter ({tag}: {exc})"

#: The Makefile installs uvloop into every test venv and sets this, so there
#: a missing uvloop fails the uvloop tests instead of skipping them.
UVLOOP_REQUIRED = os.environ.get("CSPIKE_REQUIRE_UVLOOP") == "1"


def need_uvloop() -> None:
    """Skip (or, under ``make``, fail) a test that needs uvloop when it is
    missing; otherwise warm it up."""
    if not HAVE_UVLOOP:
        if UVLOOP_REQUIRED:
            pytest.fail(f"CSPIKE_REQUIRE_UVLOOP=1 but {UVLOOP_MISSING}", pytrace=False)
        pytest.skip(UVLOOP_MISSING)
    warm_up_uvloop()

LOOP_KINDS = ("asyncio", "uvloop")

#: Client settings of the suites: quick tending, bounded connects.
CLIENT_KW = dict(tend_interval=0.25, connect_timeout=2.0)


def behavior(**changes: Any):
    """A Behavior derived from DEFAULT with these settings (unique name)."""
    return _behavior("aio", **changes)


def new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        import uvloop
        return uvloop.new_event_loop()
    if kind != "asyncio":
        raise ValueError(kind)
    return asyncio.new_event_loop()


_uvloop_warm = False


def warm_up_uvloop() -> None:
    """uvloop opens a process-wide pipe on its first loop and keeps it:
    open it before any descriptor count is taken."""
    global _uvloop_warm
    if HAVE_UVLOOP and not _uvloop_warm:
        run("uvloop", asyncio.sleep(0))
        _uvloop_warm = True


def run(kind: str, coro: Any) -> Any:
    """Run a coroutine to completion on a fresh loop of this kind."""
    with asyncio.Runner(loop_factory=lambda: new_loop(kind)) as r:
        return r.run(coro)


# ---------------------------------------------------------------- descriptors


def fd_table() -> dict[int, str]:
    """{fd: what it points at} of this process."""
    out = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            out[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # closed meanwhile (the listdir fd itself)
            pass
    return out


def fd_diff(before: dict[int, str], after: dict[int, str]) -> dict[int, str]:
    """Descriptors open now that were not open (to the same thing) before."""
    return {fd: t for fd, t in after.items() if before.get(fd) != t}


def _tcp_inodes_to(ports: set[int]) -> set[str]:
    inodes = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            remote = parts[2]
            state = parts[3]
            port = int(remote.rsplit(":", 1)[1], 16)
            # 01 ESTABLISHED, 02 SYN_SENT, 08 CLOSE_WAIT
            if port in ports and state in ("01", "02", "08"):
                inodes.add(parts[9])
    return inodes


def sockets_to(ports: Any) -> int:
    """How many of this process's sockets are connected to these ports."""
    if isinstance(ports, int):
        ports = {ports}
    ports = set(ports)
    mine = {t[len("socket:["):-1] for t in fd_table().values() if t.startswith("socket:[")}
    return len(mine & _tcp_inodes_to(ports))


def settle_fds(before: dict[int, str], timeout: float = 3.0) -> dict[int, str]:
    """Collect garbage and wait (bounded) until no new descriptor is open;
    returns what is still open beyond ``before``."""
    end = time.monotonic() + timeout
    while True:
        gc.collect()
        extra = fd_diff(before, fd_table())
        if not extra or time.monotonic() >= end:
            return extra
        time.sleep(0.02)


def nonmain_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t is not threading.main_thread()}


@contextlib.contextmanager
def no_leaks(what: str = "") -> Iterator[None]:
    """Assert that the block leaves no descriptor and no thread behind
    (after dropping its objects and a bounded wait)."""
    warm_up_uvloop()  # its process-global pipe is not the block's leak
    gc.collect()
    before = fd_table()
    threads = nonmain_threads()
    yield
    extra = settle_fds(before)
    assert not extra, f"descriptors leaked {what}: {extra}"
    end = time.monotonic() + 3.0
    while True:
        alive = {t for t in nonmain_threads() - threads
                 if t.is_alive() and not t.name.startswith(("asyncio_", "ThreadPoolExecutor"))}
        if not alive or time.monotonic() >= end:
            break
        time.sleep(0.02)
    assert not alive, f"threads left running {what}: {sorted(t.name for t in alive)}"


def driver_of(client: Any, loop: asyncio.AbstractEventLoop | None = None) -> Any:
    """The LoopDriver of ``client`` on ``loop`` (default: the running loop)."""
    loop = loop or asyncio.get_running_loop()
    return client._drivers.get(loop)


def inflight(client: Any, loop: asyncio.AbstractEventLoop | None = None) -> int:
    d = driver_of(client, loop)
    return 0 if d is None else d.inflight


def master_of(client: Any, key: Any) -> str | None:
    """Name of the node the client routes writes of ``key`` to."""
    return client._require().route(key.namespace, key.partition_id, 0)


def node_index(server: Any, name: str) -> int:
    for i, (n, _port) in enumerate(server.nodes):
        if n.upper() == name.upper():
            return i
    raise KeyError(name)


def run_isolated(code: str, timeout: float = 60.0, env: dict | None = None,
                 path: tuple = ()) -> tuple[int, str]:
    """Run ``code`` in a fresh interpreter (this one, same environment, the
    helper modules importable); returns (exit status, stdout + stderr).
    For scenarios where a client bug could hang or crash the test process:
    a hang becomes status -9 with "TIMED OUT" in the output."""
    import subprocess
    import textwrap
    e = dict(os.environ if env is None else env)
    here = os.path.dirname(os.path.abspath(__file__))
    # The child imports these helpers, ``suite`` and any module in ``path``.
    dirs = [*path, here, os.path.dirname(here)]
    e["PYTHONPATH"] = os.pathsep.join(dirs + [p for p in e.get("PYTHONPATH", "").split(os.pathsep) if p])
    e.setdefault("PYTHONFAULTHANDLER", "1")
    p = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=e,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = p.communicate(timeout=timeout)
        return p.returncode, out
    except subprocess.TimeoutExpired:
        import signal
        try:  # let faulthandler (SIGABRT) show where it hangs
            p.send_signal(signal.SIGABRT)
            out, _ = p.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
        return -9, f"TIMED OUT after {timeout} s\n{out}"
