"""Figures of the runs -> one summary per row -> table, JSON, markdown.

A row's figure is the median over its repeats (this machine is noisy); the
spread column shows how far the repeats were apart.  Ratios:

* Py/C: a cspike row's client CPU per operation over the pure-C baseline's
  on the same workload and driver (blocking threads for sync, builder and
  batch rows; the core's event-loop driver for async and AsyncPool rows):
  what the Python layer costs.  For batch rows the operation is one key.
* cspike/peer: for a peer row, cspike's ops/s over the peer's in the same
  mode, and cspike's operations per client-CPU-second over the peer's
  (= peer CPU per op / cspike CPU per op).  Above 1 means cspike is ahead.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from typing import Any, Iterable, Optional

MODE_TITLES = {
    "sync": "sync fast path",
    "sync-builder": "sync builder",
    "async": "async fast path (1 loop)",
    "async-builder": "async builder (1 loop)",
    "pool": "AsyncPool fast path",
    "batch": "batch read/write (sync)",
    "async-batch": "batch read/write (async)",
}


def _hist_cls():
    try:
        from .._core import Histogram
        return Histogram
    except Exception:
        from .pyhist import Histogram
        return Histogram


def hist_percentiles_us(snapshot) -> tuple:
    """(p50, p99, p99.9) in µs of a Histogram.snapshot() (None when empty)."""
    if not snapshot:
        return (None, None, None)
    h = _hist_cls().from_snapshot(tuple(snapshot))
    if h.count == 0:
        return (None, None, None)
    return tuple(v / 1000.0 for v in h.percentiles([50, 99, 99.9]))


def _median(vals: Iterable[Optional[float]]) -> Optional[float]:
    v = [x for x in vals if x is not None]
    return statistics.median(v) if v else None


def summarize(row) -> dict:
    """Median figures of a row's successful runs, or why it has none."""
    ok = [r for r in row.runs if r.get("status") == "ok"]
    s: dict[str, Any] = {
        "client": row.client, "label": row.label, "mode": row.mode,
        "concurrency": row.concurrency, "repeats": len(ok),
    }
    if row.skip:
        s.update(status="not available", reason=row.skip)
        return s
    if not ok:
        bad = row.runs[-1] if row.runs else {"status": "error", "reason": "not run"}
        st = "not available" if bad.get("status") == "unavailable" else "error"
        s.update(status=st, reason=bad.get("reason", ""))
        return s
    s["status"] = "ok"
    for k in ("ops_s", "cpu_us_op", "p50_us", "p99_us", "p999_us", "srv_cpu_us_op"):
        s[k] = _median(r.get(k) for r in ok)
    rates = [r["ops_s"] for r in ok]
    s["ops_s_min"], s["ops_s_max"] = min(rates), max(rates)
    s["spread_pct"] = ((max(rates) - min(rates)) / 2 / s["ops_s"] * 100) if s["ops_s"] else 0.0
    for k in ("ops", "reads", "writes", "not_found", "errors", "timeouts"):
        s[k] = sum(int(r.get(k) or 0) for r in ok)
    first = next((r.get("first_error") for r in ok if r.get("first_error")), None)
    if first:
        s["first_error"] = first
    for k in ("version", "api", "hist_impl", "loop", "python", "gil"):
        s[k] = ok[-1].get(k)
    failed = [r for r in row.runs if r.get("status") != "ok"]
    if failed:
        s["failed_runs"] = len(failed)
        s["failed_reason"] = failed[-1].get("reason", "")
    return s


#: The C baseline row each cspike mode is measured against: the same driver
#: (blocking threads, or the event-loop driver) at the same concurrency.
C_REFERENCE = {"sync": "sync", "sync-builder": "sync", "batch": "sync",
               "async": "async", "async-builder": "async", "async-batch": "async",
               "pool": "pool"}


def add_ratios(summaries: list[dict]) -> None:
    by = {(s["client"], s["mode"]): s for s in summaries if s["status"] == "ok"}
    for s in summaries:
        if s["status"] != "ok":
            continue
        ref = C_REFERENCE.get(s["mode"], "sync")
        c = by.get(("c", ref)) or by.get(("c", "sync"))
        if s["client"] == "cspike" and c and c.get("cpu_us_op") and s.get("cpu_us_op"):
            s["py_over_c_cpu"] = s["cpu_us_op"] / c["cpu_us_op"]
            s["c_reference"] = c["mode"]
            if s["mode"] == c["mode"] and c.get("ops_s"):
                s["py_over_c_ops"] = s["ops_s"] / c["ops_s"]
        if s["client"] not in ("cspike", "c"):
            cs = by.get(("cspike", s["mode"]))
            if cs and s.get("ops_s"):
                s["cspike_over_peer_ops"] = cs["ops_s"] / s["ops_s"]
                if cs.get("cpu_us_op") and s.get("cpu_us_op"):
                    s["cspike_over_peer_eff"] = s["cpu_us_op"] / cs["cpu_us_op"]


def targets(summaries: list[dict], reads: Optional[int] = None) -> list[dict]:
    """The design's performance targets, where this run measured both sides."""
    by = {(s["client"], s["mode"]): s for s in summaries if s["status"] == "ok"}

    def cpu(client, mode):
        s = by.get((client, mode))
        return s.get("cpu_us_op") if s else None

    out = []

    def check(what, target, value, ok, cond=""):
        out.append({"what": what, "target": target, "measured": value,
                    "met": None if value is None else bool(ok), "cond": cond})

    # The design states the per-op ratios for one connection; with more
    # threads on a GIL build the sync rows also pay GIL hand-offs, so say
    # under which conditions a ratio was measured.
    sync_row = by.get(("cspike", "sync"))
    cond = ""
    if sync_row:
        cond = sync_row["concurrency"] + {True: ", GIL on", False: ", GIL off"}.get(
            sync_row.get("gil"), "")
    sync, c = cpu("cspike", "sync"), cpu("c", "sync")
    r = sync / c if sync and c else None
    check("sync fast path CPU/op vs pure C", "<= 1.3x", r, r is not None and r <= 1.3, cond)
    b = cpu("cspike", "sync-builder")
    r = b / sync if b and sync else None
    check("sync builder CPU/op vs sync fast path", "<= 1.3x", r, r is not None and r <= 1.3,
          cond)
    ab, a = cpu("cspike", "async-builder"), cpu("cspike", "async")
    r = ab / a if ab and a else None
    check("async builder CPU/op vs async fast path", "<= 1.3x", r, r is not None and r <= 1.3)
    r = a / sync if a and sync else None
    check("async (1 loop) CPU/op vs sync fast path", "<= 1.5x", r, r is not None and r <= 1.5)
    bt = cpu("cspike", "batch")
    r = bt / sync if bt and sync else None
    mix = "reads only" if reads == 100 else "mixed workload" if reads is None else f"{reads}% reads"
    check(f"batch CPU per key vs single-key sync op ({mix})", "<= 0.1x", r,
          r is not None and r <= 0.1)
    for s in summaries:
        if s["status"] == "ok" and s.get("cspike_over_peer_eff") is not None:
            e = s["cspike_over_peer_eff"]
            check(f"ops per client-CPU-s vs {s['label']} ({s['mode']})", "> 1x", e, e > 1)
    return out


# ---- formatting ---------------------------------------------------------------------------


def _num(v, fmt="{:,.0f}", none="-") -> str:
    return none if v is None else fmt.format(v)


def _ratio(v) -> str:
    return "" if v is None else f"{v:.2f}x"


COLUMNS = [
    # (header, key/fn, align)
    ("mode", lambda s: s["mode"], "<"),
    ("client", lambda s: s["label"], "<"),
    ("conc", lambda s: s["concurrency"], "<"),
    ("ops/s", lambda s: _num(s.get("ops_s")), ">"),
    ("±%", lambda s: _num(s.get("spread_pct"), "{:.0f}") if s.get("repeats", 0) > 1 else "", ">"),
    ("CPU µs/op", lambda s: _num(s.get("cpu_us_op"), "{:.2f}"), ">"),
    ("p50 µs", lambda s: _num(s.get("p50_us"), "{:,.0f}" if (s.get("p50_us") or 0) >= 100
                              else "{:.1f}"), ">"),
    ("p99 µs", lambda s: _num(s.get("p99_us"), "{:,.0f}" if (s.get("p99_us") or 0) >= 100
                              else "{:.1f}"), ">"),
    ("p99.9 µs", lambda s: _num(s.get("p999_us"), "{:,.0f}" if (s.get("p999_us") or 0) >= 100
                                else "{:.1f}"), ">"),
    ("err", lambda s: _num(s.get("errors"), "{:d}"), ">"),
    ("tmo", lambda s: _num(s.get("timeouts"), "{:d}"), ">"),
    ("srv µs/op", lambda s: _num(s.get("srv_cpu_us_op"), "{:.2f}"), ">"),
    ("Py/C CPU", lambda s: _ratio(s.get("py_over_c_cpu")), ">"),
    ("cspike/peer ops/s", lambda s: _ratio(s.get("cspike_over_peer_ops")), ">"),
    ("cspike/peer ops/CPU-s", lambda s: _ratio(s.get("cspike_over_peer_eff")), ">"),
]


def _cells(s: dict) -> list[str]:
    if s["status"] != "ok":
        note = s["status"] if s["status"] != "error" else "ERROR"
        reason = s.get("reason", "")
        return [s["mode"], s["label"], s["concurrency"], f"{note}: {reason}"[:110]]
    return [fn(s) for _, fn, _ in COLUMNS]


def _drop_empty_columns(summaries: list[dict]) -> list:
    keep = []
    ok = [s for s in summaries if s["status"] == "ok"]
    for i, col in enumerate(COLUMNS):
        if i < 4 or any(_cells(s)[i] for s in ok):
            keep.append(i)
    return keep


def header_lines(meta: dict) -> list[str]:
    o = meta["options"]
    payload = (f"1 int bin" if o["payload"] == "int" else f"1 x {o['size']}-char str bin")
    rep = f", {o['repeats']} repeats interleaved, medians" if o["repeats"] > 1 else ""
    lines = [
        f"cspike bench: {meta['target']}",
        f"{o['keys']:,} keys, {o['reads']}% reads, {payload}, {o['duration']:g} s measured "
        f"after {o['warmup']:g} s warm-up{rep}",
        f"Python {meta['python']} ({'GIL on' if meta['gil'] else 'GIL off'}), "
        f"event loop {o['loop']}, {meta['cpus']} CPUs ({meta['cpu_model']})",
        "CPU = getrusage of the client process (all threads) / operations; "
        "batch rows: one operation = one key, latency per call",
    ]
    return lines


def render_table(summaries: list[dict], meta: dict) -> str:
    keep = _drop_empty_columns(summaries)
    heads = [COLUMNS[i][0] for i in keep]
    aligns = [COLUMNS[i][2] for i in keep]
    body = []
    for s in summaries:
        cells = _cells(s)
        if s["status"] == "ok":
            body.append([cells[i] for i in keep])
        else:
            body.append(cells)  # mode, client, conc, note (spans the rest)
    widths = [len(h) for h in heads]
    for cells in body:
        if len(cells) == len(heads):
            for i, c in enumerate(cells):
                widths[i] = max(widths[i], len(c))
        else:
            for i in range(3):
                widths[i] = max(widths[i], len(cells[i]))

    def fmt(cells):
        if len(cells) != len(heads):
            return "  ".join(f"{c:<{widths[i]}}" for i, c in enumerate(cells[:3])) + "  " + cells[3]
        return "  ".join(f"{c:{aligns[i]}{widths[i]}}" for i, c in enumerate(cells))

    out = header_lines(meta)
    out.append("")
    out.append(fmt(heads))
    out.append("  ".join("-" * w for w in widths))
    prev = None
    for s, cells in zip(summaries, body):
        if prev is not None and s["mode"] != prev:
            out.append("")
        prev = s["mode"]
        out.append(fmt(cells).rstrip())
    notes = _notes(summaries, meta.get("options", {}).get("loop"))
    if notes:
        out.append("")
        out.extend(notes)
    tg = meta.get("targets") or []
    if any(t["measured"] is not None for t in tg):
        out.append("")
        out.append("targets (design.md):")
        for t in tg:
            if t["measured"] is None:
                continue
            cond = f" [{t['cond']}]" if t.get("cond") else ""
            out.append(f"  {'met ' if t['met'] else 'MISS'}  {t['what']}{cond}: "
                       f"{t['measured']:.2f}x (target {t['target']})")
        hint = _target_hint(tg)
        if hint:
            out.append("  " + hint)
    return "\n".join(out)


def _target_hint(tg: list[dict]) -> str:
    """How to measure a target the way the design defines it, when this run
    measured it under other conditions."""
    for t in tg:
        if (t["what"].startswith("sync fast path") and t["measured"] is not None
                and t.get("cond") and not t["cond"].startswith("1 thr")):
            return ("(the design's per-op ratios are for one connection: "
                    "--threads 1; batch: --reads 100)")
    return ""


def _notes(summaries: list[dict], loop: Optional[str] = None) -> list[str]:
    out = []
    for s in summaries:
        ran = s.get("loop") or ""
        if s["status"] == "ok" and loop and ran and (("uvloop" in ran) != (loop == "uvloop")):
            out.append(f"! {s['label']} {s['mode']}: ran on {ran} (its pool chooses its own "
                       f"loops), not {loop}")
        if s["status"] == "ok" and s.get("first_error"):
            out.append(f"! {s['label']} {s['mode']}: first error: {s['first_error']}")
        if s["status"] == "ok" and s.get("failed_runs"):
            out.append(f"! {s['label']} {s['mode']}: {s['failed_runs']} failed run(s): "
                       f"{s['failed_reason'][:200]}")
        if s["status"] == "ok" and s.get("hist_impl") == "python":
            out.append(f"! {s['label']} {s['mode']}: pure-Python histogram (cspike's "
                       "extension did not load in this interpreter): its CPU/op is inflated")
        if s["status"] == "ok" and s.get("not_found"):
            out.append(f"! {s['label']} {s['mode']}: {s['not_found']} reads found no record")
    return out


# ---- JSON / markdown ---------------------------------------------------------------------


def machine() -> dict:
    model = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model or "?", "platform": platform.platform()}


def build(result: dict, opts, argv: list[str]) -> tuple[list[dict], dict]:
    summaries = [summarize(r) for r in result["rows"]]
    add_ratios(summaries)
    meta = dict(result["meta"])
    meta.update(machine())
    meta["python"] = sys.version.split()[0]
    meta["gil"] = bool(getattr(sys, "_is_gil_enabled", lambda: True)())
    meta["command"] = "python -m cspike bench " + " ".join(argv)
    meta["options"] = {k: getattr(opts, k) for k in (
        "keys", "reads", "payload", "size", "duration", "warmup", "repeats", "threads",
        "tasks", "pool_loops", "pool_tasks", "batch_size", "loop", "nodes", "modes",
        "compare", "peer_python")}
    meta["targets"] = targets(summaries, opts.reads)
    return summaries, meta


def to_json(summaries: list[dict], meta: dict, rows) -> str:
    runs = {(r.client, r.mode): r.runs for r in rows}
    out = {"meta": meta, "rows": []}
    for s in summaries:
        d = dict(s)
        d["runs"] = runs.get((s["client"], s["mode"]), [])
        out["rows"].append(d)
    return json.dumps(out, indent=2, default=str)


def to_markdown(summaries: list[dict], meta: dict) -> str:
    import datetime
    keep = _drop_empty_columns(summaries)
    heads = [COLUMNS[i][0] for i in keep]
    lines = [f"# cspike bench, {datetime.date.today().isoformat()}", ""]
    lines.append(f"`{meta['command']}`")
    lines.append("")
    for h in header_lines(meta):
        lines.append(f"- {h}")
    lines.append("")
    lines.append("| " + " | ".join(heads) + " |")
    lines.append("|" + "|".join("---:" if COLUMNS[i][2] == ">" else "---" for i in keep) + "|")
    for s in summaries:
        cells = _cells(s)
        if s["status"] == "ok":
            row = [cells[i] for i in keep]
        else:
            row = cells[:3] + [cells[3].replace("|", "/")] + [""] * (len(keep) - 4)
        lines.append("| " + " | ".join(row) + " |")
    notes = _notes(summaries, meta.get("options", {}).get("loop"))
    if notes:
        lines.append("")
        lines.extend(f"- {n}" for n in notes)
    tg = [t for t in meta.get("targets") or [] if t["measured"] is not None]
    if tg:
        lines += ["", "## Targets (design.md)", "", "| target | measured | met |", "|---|---:|---|"]
        for t in tg:
            cond = f" [{t['cond']}]" if t.get("cond") else ""
            lines.append(f"| {t['what']}{cond} {t['target']} | {t['measured']:.2f}x | "
                         f"{'yes' if t['met'] else '**no**'} |")
        hint = _target_hint(tg)
        if hint:
            lines += ["", hint]
    apis = [s for s in summaries if s["status"] == "ok" and (s.get("api") or s["client"] == "c")]
    if apis:
        lines += ["", "## What each row calls", ""]
        for s in apis:
            if s["client"] == "c":
                drv = ("spk_sync_execute on blocking threads" if s["mode"] == "sync" else
                       "spk_loop event-loop driver, one loop per thread")
                lines.append(f"- C baseline, {s['mode']}: core library only, {drv}")
                continue
            loop = f"; event loop {s['loop']}" if s.get("loop") else ""
            lines.append(f"- {s['label']} ({s.get('version')}), {s['mode']}: `{s['api']}`{loop}")
    lines += ["", "## Method", ""] + [f"- {m}" for m in METHOD] + [""]
    return "\n".join(lines)


METHOD = [
    "Every row is a process of its own (python worker, or the C binary): connect, warm up, "
    "then a measured window; rows run round after round (A B C, A B C) and the table quotes "
    "the median of the rounds, +/- half the range of ops/s.",
    "Client CPU = getrusage(RUSAGE_SELF) over the measured window: every thread of the "
    "client process (tend threads, Tokio runtimes, executor threads).  Server CPU = the "
    "embedded server's getrusage over the same window.  Client and server share the "
    "machine's cores, so ops/s is the box's throughput while CPU/op is the client's own "
    "cost.",
    "Every Python client runs the same loops: the same random key sequence, one clock "
    "read and one record into a C histogram per operation (about 0.2 us/op of harness CPU "
    "for the sync loop, 0.3 us/op for the async loop, measured with a no-op client).",
    "Keys are built once where the API has a key object (cspike, aerospike-sdk); the "
    "official client and aerospike-py take (ns, set, key) tuples.  Batch rows count every "
    "key as one operation; their latency is per call.  Batch results are materialised "
    "and each row's status checked.",
    "The official client has no asyncio API: its async rows run the sync client through "
    "loop.run_in_executor(None, ...) (the default executor).",
]
