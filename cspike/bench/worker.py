"""One benchmark run in a process of its own.

``python worker.py '<json spec>'`` - started by ``python -m cspike bench``
with whichever interpreter has the client under test (the peers run under
``--peer-python``), so this file imports nothing from cspike except, when it
can, the C histogram (``cspike._core.Histogram``, loaded straight from the
extension file the parent names).  It talks to the parent in JSON lines on
stdout::

    {"ev": "ready"}                        clients connected, warm-up starts
    {"ev": "measure"}                      measured window starts (the parent
                                           snapshots the server's CPU here)
    {"ev": "progress", "t": s, "ops": n}   every --progress-interval seconds
    {"ev": "done"}                         measured window over
    {"ev": "result", ...}                  the figures
    {"ev": "unavailable", "reason": ...}   mode not built / client missing
    {"ev": "error", "error": ...}          anything else

Every client runs the same loops below: the same key sequence, the same
per-operation bookkeeping (one clock read and one histogram record per
operation), so the harness costs every client the same.  CPU is
getrusage(RUSAGE_SELF) over the measured window: the whole process, every
thread (cluster tend threads, Tokio runtimes, executor threads included).
"""

from __future__ import annotations

import array
import asyncio
import importlib.util
import json
import os
import random
import resource
import sys
import threading
import time
import traceback

SEQ_LEN = 1 << 17  # key-sequence length (power of two, > default key count)


def emit(ev: str, **kw) -> None:
    kw["ev"] = ev
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


def _sibling(name: str):
    """Import a module that sits next to this file, under a private name
    (this file may run with an interpreter where cspike is not installed)."""
    mod_name = f"_cspike_bench_{name}"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py")
    spec = importlib.util.spec_from_file_location(mod_name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = mod
    spec.loader.exec_module(mod)
    return mod


# ---- histogram -------------------------------------------------------------------


def load_histogram(core_path: str | None):
    """(Histogram class, "c" | "python").  The C one when cspike is importable
    or its extension file loads in this interpreter; else the pure-Python
    fallback (same layout, noted in the result because it costs more CPU)."""
    try:
        from cspike._core import Histogram  # type: ignore
        return Histogram, "c"
    except Exception:
        pass
    if core_path and os.path.exists(core_path):
        try:
            from importlib.machinery import ExtensionFileLoader
            loader = ExtensionFileLoader("cspike._core", core_path)
            spec = importlib.util.spec_from_file_location("cspike._core", core_path,
                                                          loader=loader)
            mod = importlib.util.module_from_spec(spec)
            loader.exec_module(mod)
            return mod.Histogram, "c"
        except Exception:
            pass
    return _sibling("pyhist").Histogram, "python"


# ---- workload ----------------------------------------------------------------------


def key_sequence(n_keys: int, read_pct: int, seed: int) -> array.array:
    """SEQ_LEN entries of key_index * 2 + is_write, the same for every client."""
    rnd = random.Random(seed)
    seq = array.array("q", bytes(8 * SEQ_LEN))
    for i in range(SEQ_LEN):
        k = rnd.randrange(n_keys)
        w = 1 if rnd.random() * 100 >= read_pct else 0
        seq[i] = k * 2 + w
    return seq


def payload_bins(spec: dict) -> dict:
    if spec["payload"] == "int":
        return {spec["bin"]: 1234567890123}  # the C baseline writes this too
    return {spec["bin"]: "".join("0123456789abcdef"[(i * 7 + 3) & 15]
                                 for i in range(spec["size"]))}


def start_pos(i: int) -> int:
    return (i * 40503 * 97) & (SEQ_LEN - 1)


class Counts:
    __slots__ = ("reads", "writes", "not_found", "errors", "timeouts", "first_error")

    def __init__(self) -> None:
        self.reads = self.writes = self.not_found = self.errors = self.timeouts = 0
        self.first_error = None

    def add(self, r, w, nf, e, to, first) -> None:
        self.reads += r
        self.writes += w
        self.not_found += nf
        self.errors += e
        self.timeouts += to
        if self.first_error is None and first is not None:
            self.first_error = first

    def merge(self, o: "Counts") -> None:
        self.add(o.reads, o.writes, o.not_found, o.errors, o.timeouts, o.first_error)


def _describe(e: BaseException) -> str:
    return f"{type(e).__module__}.{type(e).__qualname__}: {e}"[:400]


# The loops.  Locals only in the hot path; `t` is the end of the previous
# operation, so one clock read (inside record_since) per operation.

def sync_phase(get, put, keys, bins, seq, pos, t_stop, hist, nf_exc, to_exc):
    rec = hist.record_since
    pc = time.perf_counter_ns
    mask = len(seq) - 1
    reads = writes = nf = errors = timeouts = 0
    first = None
    t = pc()
    while t < t_stop:
        v = seq[pos]
        pos = (pos + 1) & mask
        k = keys[v >> 1]
        try:
            if v & 1:
                put(k, bins)
                writes += 1
            else:
                get(k)
                reads += 1
            t = rec(t)
        except nf_exc:
            reads += 1
            nf += 1
            t = rec(t)
        except to_exc as e:
            timeouts += 1
            first = first or _describe(e)
            t = pc()
        except Exception as e:  # noqa: BLE001 - counted and reported
            errors += 1
            first = first or _describe(e)
            t = pc()
    return pos, (reads, writes, nf, errors, timeouts, first)


async def async_phase(get, put, keys, bins, seq, pos, t_stop, hist, nf_exc, to_exc):
    rec = hist.record_since
    pc = time.perf_counter_ns
    mask = len(seq) - 1
    reads = writes = nf = errors = timeouts = 0
    first = None
    t = pc()
    while t < t_stop:
        v = seq[pos]
        pos = (pos + 1) & mask
        k = keys[v >> 1]
        try:
            if v & 1:
                await put(k, bins)
                writes += 1
            else:
                await get(k)
                reads += 1
            t = rec(t)
        except nf_exc:
            reads += 1
            nf += 1
            t = rec(t)
        except to_exc as e:
            timeouts += 1
            first = first or _describe(e)
            t = pc()
        except Exception as e:  # noqa: BLE001
            errors += 1
            first = first or _describe(e)
            t = pc()
    return pos, (reads, writes, nf, errors, timeouts, first)


# Batch loops: one call reads or writes a whole list of keys; every key
# counts as one operation, the latency is per call.  read_many/write_many
# return the number of keys that failed.

def sync_batch_phase(read_many, write_many, batches, bins, seq, pos, t_stop, hist,
                     nf_exc, to_exc):
    rec = hist.record_since
    pc = time.perf_counter_ns
    mask = len(seq) - 1
    nb = len(batches)
    reads = writes = errors = timeouts = 0
    first = None
    t = pc()
    while t < t_stop:
        v = seq[pos]
        pos = (pos + 1) & mask
        ks = batches[pos % nb]
        n = len(ks)
        try:
            if v & 1:
                bad = write_many(ks, bins)
                writes += n - bad
            else:
                bad = read_many(ks)
                reads += n - bad
            errors += bad
            t = rec(t)
        except to_exc as e:
            timeouts += n
            first = first or _describe(e)
            t = pc()
        except Exception as e:  # noqa: BLE001
            errors += n
            first = first or _describe(e)
            t = pc()
    return pos, (reads, writes, 0, errors, timeouts, first)


async def async_batch_phase(read_many, write_many, batches, bins, seq, pos, t_stop, hist,
                            nf_exc, to_exc):
    rec = hist.record_since
    pc = time.perf_counter_ns
    mask = len(seq) - 1
    nb = len(batches)
    reads = writes = errors = timeouts = 0
    first = None
    t = pc()
    while t < t_stop:
        v = seq[pos]
        pos = (pos + 1) & mask
        ks = batches[pos % nb]
        n = len(ks)
        try:
            if v & 1:
                bad = await write_many(ks, bins)
                writes += n - bad
            else:
                bad = await read_many(ks)
                reads += n - bad
            errors += bad
            t = rec(t)
        except to_exc as e:
            timeouts += n
            first = first or _describe(e)
            t = pc()
        except Exception as e:  # noqa: BLE001
            errors += n
            first = first or _describe(e)
            t = pc()
    return pos, (reads, writes, 0, errors, timeouts, first)


def make_batches(keys: list, seq, size: int, count: int = 512) -> list:
    out = []
    pos = 0
    for _ in range(count):
        b = []
        for _ in range(size):
            b.append(keys[seq[pos] >> 1])
            pos = (pos + 7) & (len(seq) - 1)
        out.append(b)
    return out


# ---- measured window ------------------------------------------------------------------


class Window:
    """Times of the run and the monitor thread that marks the measured
    window, samples getrusage at its start and prints progress."""

    def __init__(self, spec: dict, Histogram) -> None:
        self.spec = spec
        self.Histogram = Histogram
        self.hists: list = []  # measured-phase histograms (list.append is atomic)
        self.lock = threading.Lock()
        self.ru0 = None
        self.thread = None

    def plan(self) -> None:
        now = time.perf_counter_ns()
        self.t_start = now + 20_000_000
        self.t_measure = self.t_start + int(self.spec["warmup"] * 1e9)
        self.t_end = self.t_measure + int(self.spec["duration"] * 1e9)
        self.thread = threading.Thread(target=self._monitor, name="bench-monitor", daemon=True)
        self.thread.start()
        emit("ready")

    def new_hist(self):
        h = self.Histogram()
        self.hists.append(h)
        return h

    def _sleep_until(self, t: int) -> None:
        while True:
            d = t - time.perf_counter_ns()
            if d <= 0:
                return
            time.sleep(d / 1e9)

    def _monitor(self) -> None:
        self._sleep_until(self.t_measure)
        self.ru0 = resource.getrusage(resource.RUSAGE_SELF)
        emit("measure")
        interval = self.spec.get("progress_interval", 0.5)
        if interval <= 0:
            return
        while True:
            nxt = time.perf_counter_ns() + int(interval * 1e9)
            if nxt >= self.t_end:
                return
            self._sleep_until(nxt)
            ops = sum(h.count for h in list(self.hists))
            if self.spec["mode"] in BATCH_MODES:
                ops *= self.spec["batch_size"]
            emit("progress", t=round((time.perf_counter_ns() - self.t_measure) / 1e9, 3),
                 ops=ops)


BATCH_MODES = ("batch", "async-batch")


# ---- drivers ------------------------------------------------------------------------------


def run_sync(adapter, spec, win: Window, keys, seq, bins):
    mode = spec["mode"]
    n = spec["threads"]
    nf_exc, to_exc = adapter.not_found, adapter.timeout
    ops = adapter.sync_open(mode)  # (get, put, close) or (read_many, write_many, close)
    batch = mode in BATCH_MODES
    batches = make_batches(keys, seq, spec["batch_size"]) if batch else None
    results = [None] * n
    stops = [0] * n

    def worker(i: int) -> None:
        c = Counts()
        warm, hist = win.Histogram(), win.new_hist()
        pos = start_pos(i)
        try:
            if batch:
                pos, _ = sync_batch_phase(ops[0], ops[1], batches, bins, seq, pos,
                                          win.t_measure, warm, nf_exc, to_exc)
                pos, r = sync_batch_phase(ops[0], ops[1], batches, bins, seq, pos,
                                          win.t_end, hist, nf_exc, to_exc)
            else:
                pos, _ = sync_phase(ops[0], ops[1], keys, bins, seq, pos, win.t_measure,
                                    warm, nf_exc, to_exc)
                pos, r = sync_phase(ops[0], ops[1], keys, bins, seq, pos, win.t_end,
                                    hist, nf_exc, to_exc)
            c.add(*r)
        except BaseException as e:  # noqa: BLE001 - reported as the run's error
            c.errors += 1
            c.first_error = _describe(e)
        stops[i] = time.perf_counter_ns()
        results[i] = c

    threads = [threading.Thread(target=worker, args=(i,), name=f"bench-{i}") for i in range(n)]
    win.plan()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    total = Counts()
    for c in results:
        total.merge(c)
    try:
        ops[2]()
    except Exception:
        pass
    return total, max(stops), ru1


async def _async_tasks(open_ops, spec, win: Window, keys, seq, bins, base: int, n_tasks: int,
                       adapter, plan: bool):
    """n_tasks tasks on the running loop; returns (Counts, stop time)."""
    mode = spec["mode"]
    nf_exc, to_exc = adapter.not_found, adapter.timeout
    batch = mode in BATCH_MODES
    ops = await open_ops()
    batches = make_batches(keys, seq, spec["batch_size"]) if batch else None
    hist, warm = win.new_hist(), win.Histogram()
    phase = async_batch_phase if batch else async_phase
    src = batches if batch else keys
    if plan:
        win.plan()

    async def task(i: int):
        pos = start_pos(base + i)
        pos, _ = await phase(ops[0], ops[1], src, bins, seq, pos, win.t_measure, warm,
                             nf_exc, to_exc)
        return await phase(ops[0], ops[1], src, bins, seq, pos, win.t_end, hist,
                           nf_exc, to_exc)

    outs = await asyncio.gather(*(task(i) for i in range(n_tasks)), return_exceptions=True)
    stop = time.perf_counter_ns()
    c = Counts()
    for o in outs:
        if isinstance(o, BaseException):
            c.errors += 1
            c.first_error = c.first_error or _describe(o)
        else:
            c.add(*o[1])
    return c, stop, ops[2]


async def _close(aclose) -> None:
    try:
        await aclose()
    except Exception:
        pass


def new_loop(kind: str):
    if kind == "uvloop":
        import uvloop
        return uvloop.new_event_loop()
    # Explicitly the stdlib loop: some clients install uvloop's policy at import.
    return asyncio.SelectorEventLoop()


def run_in_loop(kind: str, coro_fn):
    loop = new_loop(kind)
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(coro_fn(loop))
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
            if hasattr(loop, "shutdown_default_executor"):
                loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def run_async(adapter, spec, win: Window, keys, seq, bins):
    result = {}

    async def main(loop):
        result["loop"] = f"{type(loop).__module__}.{type(loop).__name__}"
        c, stop, aclose = await _async_tasks(lambda: adapter.async_open(spec["mode"]), spec,
                                             win, keys, seq, bins, 0, spec["tasks"], adapter,
                                             True)
        result["ru1"] = resource.getrusage(resource.RUSAGE_SELF)
        await _close(aclose)
        return c, stop

    c, stop = run_in_loop(spec["loop"], main)
    return c, stop, result["ru1"], result["loop"]


def run_pool(adapter, spec, win: Window, keys, seq, bins):
    loops, tasks = spec["loops"], spec["tasks_per_loop"]
    result = {}

    async def per_loop(client, idx):
        loop = asyncio.get_running_loop()
        result.setdefault("loops", f"{type(loop).__module__}.{type(loop).__name__}")
        c, stop, aclose = await _async_tasks(
            lambda: adapter.pool_session_ops(client, spec["mode"]), spec, win, keys, seq, bins,
            idx * tasks, tasks, adapter, False)
        await _close(aclose)
        return c, stop

    async def main(loop):
        async with adapter.pool(loops) as pool:
            win.plan()
            outs = await pool.map(per_loop, range(loops))
            result["ru1"] = resource.getrusage(resource.RUSAGE_SELF)
        c = Counts()
        stop = 0
        for oc, ostop in outs:
            c.merge(oc)
            stop = max(stop, ostop)
        return c, stop

    c, stop = run_in_loop(spec["loop"], main)
    return c, stop, result["ru1"], result.get("loops", "?")


# ---- main -----------------------------------------------------------------------------------


def run(spec: dict) -> int:
    Histogram, hist_impl = load_histogram(spec.get("core_path"))
    clients = _sibling("clients")
    try:
        adapter = clients.make_adapter(spec)
    except clients.Unavailable as e:
        emit("unavailable", reason=str(e))
        return 0
    reason = adapter.unavailable(spec["mode"])
    if reason:
        emit("unavailable", reason=reason)
        return 0
    keys = adapter.keys(spec["namespace"], spec["set"], spec["keys"])
    seq = key_sequence(spec["keys"], spec["read_pct"], spec.get("seed", 1))
    bins = payload_bins(spec)
    win = Window(spec, Histogram)
    mode = spec["mode"]
    loop_name = None
    if mode in ("sync", "sync-builder", "batch"):
        counts, stop, ru1 = run_sync(adapter, spec, win, keys, seq, bins)
    elif mode in ("async", "async-builder", "async-batch"):
        counts, stop, ru1, loop_name = run_async(adapter, spec, win, keys, seq, bins)
    elif mode == "pool":
        counts, stop, ru1, loop_name = run_pool(adapter, spec, win, keys, seq, bins)
    else:
        emit("error", error=f"unknown mode {mode!r}")
        return 2
    if win.thread is not None:
        win.thread.join(timeout=5)
    emit("done")
    ru0 = win.ru0 or ru1
    merged = Histogram()
    for h in win.hists:
        merged.merge(h)
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    emit("result", client=spec["client"], mode=mode,
         version=adapter.version, api=adapter.api(mode),
         reads=counts.reads, writes=counts.writes, ops=counts.reads + counts.writes,
         not_found=counts.not_found, errors=counts.errors, timeouts=counts.timeouts,
         first_error=counts.first_error,
         wall_s=max(stop - win.t_measure, 1) / 1e9,
         cpu_user_s=ru1.ru_utime - ru0.ru_utime, cpu_sys_s=ru1.ru_stime - ru0.ru_stime,
         hist=list(merged.snapshot()), hist_impl=hist_impl, loop=loop_name,
         python=sys.version.split()[0], gil=bool(gil))
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:  # stacks on a crash, and on SIGUSR1 (the parent's "you hung" signal)
        import faulthandler
        import signal
        faulthandler.enable(all_threads=True)
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    except (ImportError, AttributeError, ValueError):
        pass
    spec = json.loads(argv[0] if argv and argv[0] != "-" else sys.stdin.read())
    try:
        return run(spec)
    except Exception as e:  # noqa: BLE001 - the parent shows it in the row
        emit("error", error=_describe(e), trace=traceback.format_exc()[-2000:])
        return 1


if __name__ == "__main__":
    sys.exit(main())
