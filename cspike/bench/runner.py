"""Runs the bench: target, data, one subprocess per (client, mode, repeat).

Every run is a fresh process (worker.py, or the C baseline binary) so one
client cannot disturb another and getrusage covers exactly one client.  With
repeats the rows are run round after round (A B C, A B C, ...), so slow
drift of a noisy machine spreads over every row instead of landing on one;
the report quotes the median of the repeats.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from . import clients as _clients

HERE = Path(__file__).resolve().parent
WORKER = HERE / "worker.py"


@dataclass
class Row:
    client: str          # "cspike", "c", or a peer
    mode: str
    python: Optional[str]  # interpreter for worker rows; None for the C binary
    concurrency: str = ""
    runs: list = field(default_factory=list)
    skip: Optional[str] = None  # why it was not run ("not available: ...")

    @property
    def label(self) -> str:
        return "C baseline" if self.client == "c" else self.client


def concurrency(opts, mode: str) -> str:
    if mode in ("sync", "sync-builder"):
        return f"{opts.threads} thr"
    if mode == "batch":
        return f"{opts.threads} thr x{opts.batch_size}"
    if mode in ("async", "async-builder"):
        return f"{opts.tasks} tasks"
    if mode == "async-batch":
        return f"{opts.tasks} tasks x{opts.batch_size}"
    if mode == "pool":
        return f"{opts.pool_loops}x{opts.pool_tasks}"
    return ""


# ---- locating binaries -------------------------------------------------------------


def _build_dir() -> Optional[Path]:
    """The meson build dir of an editable install (where _core was built)."""
    try:
        from .. import _core
        p = Path(_core.__file__).resolve()
    except Exception:
        return None
    # <build>/src/python/_core.*.so
    if p.parent.name == "python" and p.parent.parent.name == "src":
        return p.parent.parent.parent
    return None


def _installed_bin(name: str) -> Optional[Path]:
    try:
        from importlib import resources
        p = resources.files("cspike") / "_bin" / name
        if p.is_file():
            return Path(str(p))
    except Exception:
        pass
    return None


def find_c_bench() -> Optional[str]:
    env = os.environ.get("CSPIKE_BENCH_C")
    if env:
        return env
    for cand in (_installed_bin("cspike-bench-c"),
                 (_build_dir() / "bench" / "c" / "cspike-bench-c") if _build_dir() else None):
        if cand is not None and cand.is_file() and os.access(cand, os.X_OK):
            return str(cand)
    return shutil.which("cspike-bench-c")


def find_server_bin() -> Optional[str]:
    env = os.environ.get("CSPIKE_SERVER_BIN")
    if env:
        return env
    p = _installed_bin("cspike-server")
    if p is None and _build_dir() is not None:
        p = _build_dir() / "server" / "cspike-server"
    return str(p) if p is not None and p.is_file() else None


def core_path() -> Optional[str]:
    try:
        from .. import _core
        return str(Path(_core.__file__).resolve())
    except Exception:
        return None


# ---- target ------------------------------------------------------------------------


class Target:
    """The cluster under test: --hosts, or the embedded server we start."""

    def __init__(self, opts) -> None:
        self.opts = opts
        self.server = None
        self.seeds = opts.hosts

    def __enter__(self) -> "Target":
        if self.seeds:
            return self
        from ..testing import Server
        kw = {}
        if self.opts.server_threads:
            kw["threads"] = self.opts.server_threads
        binary = find_server_bin()
        if binary:
            kw["binary"] = binary
        self.server = Server(nodes=self.opts.nodes, **kw)
        self.seeds = self.server.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.server is not None:
            self.server.stop()

    def describe(self) -> str:
        if self.server is None:
            return f"--hosts {self.seeds}"
        return f"embedded cspike-server, {self.opts.nodes} node(s), {self.seeds}"

    def stats(self) -> Optional[dict]:
        if self.server is None:
            return None
        try:
            return self.server.stats()
        except Exception:
            return None


def server_cpu_us(s: Optional[dict]) -> Optional[float]:
    if not s:
        return None
    return float(s.get("cpu_user_us", 0)) + float(s.get("cpu_sys_us", 0))


# ---- data --------------------------------------------------------------------------


def populate(opts, seeds: str, log: Callable[[str], None]) -> None:
    """Write every key once so reads find their record."""
    c_bin = find_c_bench()
    t0 = time.perf_counter()
    if c_bin and opts.namespace and opts.bin == "b0":
        cmd = [c_bin, "--hosts", seeds, "--namespace", opts.namespace, "--set", opts.set,
               "--keys", str(opts.keys), "--payload", opts.payload, "--size", str(opts.size),
               "--threads", "4", "--populate", "--duration", "0", "--no-progress"]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        for line in p.stdout.splitlines():
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("ev") == "populated" and not ev.get("errors"):
                log(f"populated {opts.keys:,} keys in {time.perf_counter() - t0:.1f}s")
                return
        log(f"C populate failed ({p.stdout.strip()[-200:]} {p.stderr.strip()[-200:]}); "
            "using cspike")
    from .. import Behavior, Key, SyncClient
    spec = {"payload": opts.payload, "size": opts.size, "bin": opts.bin}
    from .worker import payload_bins
    bins = payload_bins(spec)
    with SyncClient(seeds) as c:
        s = c.create_session(Behavior.DEFAULT)
        n = opts.keys
        step = (n + 3) // 4

        def part(lo: int, hi: int) -> None:
            for i in range(lo, hi):
                s.put(Key(opts.namespace, opts.set, i), bins)
        ts = [threading.Thread(target=part, args=(i, min(i + step, n))) for i in range(0, n, step)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    log(f"populated {opts.keys:,} keys in {time.perf_counter() - t0:.1f}s (cspike)")


# ---- one run ---------------------------------------------------------------------------


def worker_spec(opts, row: Row, seeds: str) -> dict:
    return {
        "client": row.client, "mode": row.mode, "seeds": seeds,
        "namespace": opts.namespace, "set": opts.set, "bin": opts.bin,
        "keys": opts.keys, "read_pct": opts.reads, "payload": opts.payload,
        "size": opts.size, "threads": opts.threads, "tasks": opts.tasks,
        "loops": opts.pool_loops, "tasks_per_loop": opts.pool_tasks,
        "batch_size": opts.batch_size, "duration": opts.duration, "warmup": opts.warmup,
        "loop": opts.loop, "core_path": core_path(), "seed": opts.seed,
        "progress_interval": 0.5,
    }


#: Modes the C baseline has: blocking threads, and the core's event-loop
#: driver with one loop (async) or several (AsyncPool's counterpart).
C_MODES = ("sync", "async", "pool")


def c_command(opts, c_bin: str, seeds: str, mode: str = "sync") -> list:
    cmd = [c_bin, "--hosts", seeds, "--namespace", opts.namespace, "--set", opts.set,
           "--keys", str(opts.keys), "--read-pct", str(opts.reads),
           "--payload", opts.payload, "--size", str(opts.size),
           "--duration", str(opts.duration), "--warmup", str(opts.warmup)]
    if mode == "async":
        cmd += ["--inflight", str(opts.tasks), "--loops", "1"]
    elif mode == "pool":
        cmd += ["--inflight", str(opts.pool_tasks), "--loops", str(opts.pool_loops)]
    else:
        cmd += ["--threads", str(opts.threads)]
    return cmd


def run_once(opts, row: Row, target: Target, on_progress: Callable[[float, int], None]) -> dict:
    """Start one worker, follow its events, return the run's figures."""
    if row.client == "c":
        c_bin = find_c_bench()
        if not c_bin:
            return {"status": "unavailable", "reason": "cspike-bench-c not built"}
        cmd = c_command(opts, c_bin, target.seeds, row.mode)
    else:
        cmd = [row.python, str(WORKER), json.dumps(worker_spec(opts, row, target.seeds))]
    limit = opts.warmup + opts.duration + 120
    err_file = tempfile.TemporaryFile(mode="w+")
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err_file, text=True,
                            bufsize=1, env=env)
    timed_out = threading.Event()

    def on_timeout() -> None:
        # Python workers dump every thread's stack on SIGUSR1 (faulthandler),
        # so a hang inside a client shows where it hangs.
        timed_out.set()
        if proc.poll() is None and row.client != "c":
            try:
                proc.send_signal(signal.SIGUSR1)
                proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if proc.poll() is None:
            proc.kill()

    timer = threading.Timer(limit, on_timeout)
    timer.start()
    s0 = s1 = None
    result: dict[str, Any] = {}
    status = None
    last = "start"
    try:
        for line in proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            kind = ev.get("ev")
            last = kind if kind != "progress" else f"progress t={ev.get('t')} ops={ev.get('ops')}"
            if kind == "measure":
                s0 = target.stats()
            elif kind == "done":
                s1 = target.stats()
            elif kind == "progress":
                on_progress(ev.get("t", 0.0), ev.get("ops", 0))
            elif kind == "result":
                result = ev
                status = "ok"
            elif kind == "unavailable":
                status = "unavailable"
                result = {"reason": ev.get("reason", "")}
            elif kind == "error":
                status = "error"
                result = {"reason": ev.get("error", ""), "trace": ev.get("trace", "")}
        proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err_file.seek(0)
    stderr = err_file.read()[-6000:]
    err_file.close()
    if status is None:
        why = (f"timed out after {limit:.0f} s" if timed_out.is_set()
               else f"exit {proc.returncode}")
        return {"status": "error", "reason": f"worker {why}, last event {last!r}",
                "stderr": stderr.strip()}
    if status != "ok":
        return {"status": status, **result}
    return figures(result, s0, s1)


def figures(res: dict, s0: Optional[dict], s1: Optional[dict]) -> dict:
    """The parent's view of one run: rates, CPU per op, percentiles (µs)."""
    from .report import hist_percentiles_us
    ops = int(res.get("ops", 0))
    wall = float(res.get("wall_s", 0)) or 1e-9
    cpu = float(res.get("cpu_user_s", 0)) + float(res.get("cpu_sys_s", 0))
    out = {k: res.get(k) for k in ("client", "mode", "version", "api", "reads", "writes",
                                   "not_found", "errors", "timeouts", "first_error",
                                   "hist_impl", "loop", "python", "gil", "threads")}
    out.update(status="ok", ops=ops, wall_s=wall, ops_s=ops / wall,
               cpu_s=cpu, cpu_user_s=res.get("cpu_user_s"), cpu_sys_s=res.get("cpu_sys_s"),
               cpu_us_op=(cpu / ops * 1e6) if ops else None)
    p = hist_percentiles_us(res.get("hist"))
    out.update(p50_us=p[0], p99_us=p[1], p999_us=p[2], hist=res.get("hist"))
    h = res.get("hist")
    n_lat = sum(c for _, c in h[3]) if h else 0
    out["mean_us"] = (h[2] / n_lat / 1000.0) if n_lat else None
    c0, c1 = server_cpu_us(s0), server_cpu_us(s1)
    if c0 is not None and c1 is not None and ops:
        out["srv_cpu_us_op"] = (c1 - c0) / ops
        out["srv_requests"] = int(s1.get("requests", 0)) - int(s0.get("requests", 0))
    return out


# ---- the plan -------------------------------------------------------------------------------


def probe_peer(python: str, client: str) -> Optional[str]:
    """None when `python` can import the peer, else the reason."""
    mod = _clients.CLIENT_MODULES[client]
    try:
        p = subprocess.run([python, "-c", f"import {mod}"], capture_output=True, text=True,
                           timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{python}: {e}"
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["?"])[-1]
        return f"not installed for {python} ({last[:120]})"
    return None


def plan_rows(opts) -> list[Row]:
    rows: list[Row] = []
    peers = [] if opts.compare is None else opts.compare
    peer_reason = {p: probe_peer(opts.peer_python, p) for p in peers}
    for mode in opts.modes:
        r = Row("cspike", mode, sys.executable, concurrency(opts, mode))
        try:
            r.skip = _clients.cspike_unavailable(mode)
        except Exception as e:  # noqa: BLE001
            r.skip = f"not available: {e}"
        rows.append(r)
        if mode in C_MODES and opts.baseline:
            c = Row("c", mode, None, concurrency(opts, mode))
            if not find_c_bench():
                c.skip = "not available: cspike-bench-c not built"
            rows.append(c)
        for p in peers:
            if mode not in _clients.CLIENT_MODES[p]:
                continue
            pr = Row(p, mode, opts.peer_python, concurrency(opts, mode))
            if peer_reason[p]:
                pr.skip = peer_reason[p]
            rows.append(pr)
    return rows


class Progress:
    """One status line on stderr: which run, elapsed, ops/s so far."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.width = 0

    def _write(self, text: str, final: bool) -> None:
        if self.quiet:
            return
        if self.tty:
            pad = max(self.width - len(text), 0)
            sys.stderr.write("\r" + text + " " * pad + ("\n" if final else ""))
            self.width = 0 if final else len(text)
        elif final:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def update(self, text: str) -> None:
        self._write(text, False)

    def line(self, text: str) -> None:
        self._write(text, True)


def run(opts) -> dict:
    """Plan, start the target, populate, run every row (repeats interleaved)."""
    progress = Progress(opts.quiet)
    rows = plan_rows(opts)
    runnable = [r for r in rows if r.skip is None]
    meta: dict[str, Any] = {}
    with Target(opts) as target:
        meta["target"] = target.describe()
        if opts.populate:
            populate(opts, target.seeds, progress.line)
        total = len(runnable) * opts.repeats
        n = 0
        for rep in range(opts.repeats):
            for row in runnable:
                n += 1
                head = f"[{n}/{total}] {row.mode:<13} {row.label:<13} {row.concurrency}"

                def on_progress(t: float, ops: int, head=head) -> None:
                    rate = ops / t if t > 0 else 0.0
                    progress.update(f"{head}  {t:4.1f}/{opts.duration:g}s  {rate:>11,.0f} ops/s")

                progress.update(f"{head}  starting")
                res = run_once(opts, row, target, on_progress)
                if res["status"] == "error" and "editable package failed" in res.get("reason", ""):
                    # A worker of an editable install rebuilds cspike on import; someone
                    # editing the sources meanwhile breaks that build for a moment.
                    progress.update(f"{head}  rebuild failed, retrying in 20 s")
                    time.sleep(20)
                    res = run_once(opts, row, target, on_progress)
                res["repeat"] = rep
                row.runs.append(res)
                if res["status"] == "unavailable":
                    row.skip = "not available: " + res.get("reason", "").removeprefix(
                        "not available: ")
                    runnable = [r for r in runnable if r is not row]
                if res["status"] == "ok":
                    cpu = res.get("cpu_us_op")
                    progress.line(f"{head}  {res['ops_s']:>11,.0f} ops/s  "
                                  f"{cpu:6.1f} µs CPU/op  err {res['errors']} "
                                  f"tmo {res['timeouts']}" if cpu is not None else
                                  f"{head}  no operations completed")
                else:
                    progress.line(f"{head}  {res['status']}: {res.get('reason', '')[:160]}")
    meta["rows"] = len(rows)
    return {"meta": meta, "rows": rows}
