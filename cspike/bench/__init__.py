"""python -m cspike bench: what every mode costs, next to the other clients.

Runs each (client, mode) in a subprocess of its own against the embedded
server (or --hosts) and prints one table: ops/s, client CPU µs per operation
(getrusage, whole process), latency percentiles from a C histogram, errors
and timeouts, the server's CPU per operation, the ratio of each cspike mode
to the pure-C baseline (bench/c) and, with --compare, the ratio of cspike to
each peer client in the same mode.  A mode that is not built yet is listed
as "not available", never given a number.

    python -m cspike bench                       # every cspike mode + C baseline
    python -m cspike bench --nodes 3 --compare --peer-python .venv-compare/bin/python
    python -m cspike bench --modes sync,async --threads 1 --tasks 64 --json out.json
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from .clients import MODES, PEERS

__all__ = ["main", "parse_args"]


def _modes(text: str) -> list[str]:
    out = []
    for m in (p.strip() for p in text.split(",")):
        if not m:
            continue
        if m == "all":
            out.extend(MODES)
        elif m in MODES:
            out.append(m)
        else:
            raise argparse.ArgumentTypeError(f"unknown mode {m!r} (modes: {', '.join(MODES)})")
    return list(dict.fromkeys(out))


def _peers(text: str) -> list[str]:
    out = []
    for p in (x.strip() for x in text.split(",")):
        if p == "all":
            out.extend(PEERS)
        elif p in PEERS:
            out.append(p)
        elif p:
            raise argparse.ArgumentTypeError(f"unknown peer {p!r} (peers: {', '.join(PEERS)})")
    return list(dict.fromkeys(out))


def _pool(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX*]\s*(\d+)\s*", text)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise argparse.ArgumentTypeError("--pool takes LOOPSxTASKS, e.g. 2x16")
    return int(m.group(1)), int(m.group(2))


def _pct(text: str) -> int:
    v = int(text)
    if not 0 <= v <= 100:
        raise argparse.ArgumentTypeError("--reads is a percentage 0..100")
    return v


def _pos(text: str) -> int:
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return v


def _secs(text: str) -> float:
    v = float(text)
    if v < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return v


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m cspike bench",
        description="Benchmark every cspike mode (and, with --compare, the other Python "
                    "clients) on one workload; one subprocess per run.")
    t = p.add_argument_group("target")
    t.add_argument("--hosts", help="seed list host:port[,...] of a running cluster "
                                   "(default: start the embedded server)")
    t.add_argument("--nodes", type=_pos, default=1,
                   help="nodes of the embedded server (default 1)")
    t.add_argument("--server-threads", type=_pos, help="service threads of the embedded server")
    t.add_argument("--namespace", default="test")
    t.add_argument("--set", default="bench")
    w = p.add_argument_group("workload")
    w.add_argument("-k", "--keys", type=_pos, default=100_000, help="key count (100000)")
    w.add_argument("--reads", type=_pct, default=50, help="percent of reads (50)")
    w.add_argument("--payload", choices=("str", "int"), default="str",
                   help="one bin: a string of --size chars, or an int (str)")
    w.add_argument("--size", type=int, default=50, help="string payload length (50)")
    w.add_argument("-d", "--duration", type=_secs, default=5.0, help="measured seconds (5)")
    w.add_argument("--warmup", type=_secs, default=1.0, help="warm-up seconds, not counted (1)")
    w.add_argument("--repeats", type=_pos, help="runs per row, interleaved; the report quotes "
                                                "medians (default 1, 3 with --compare)")
    w.add_argument("--no-populate", dest="populate", action="store_false",
                   help="do not write the keys first")
    w.add_argument("--seed", type=int, default=1, help="key sequence seed")
    c = p.add_argument_group("modes and concurrency")
    c.add_argument("--modes", type=_modes, default=list(MODES),
                   help=f"comma list of {', '.join(MODES)} or all (all)")
    c.add_argument("-t", "--threads", type=_pos, default=4,
                   help="threads of the sync and batch modes (4)")
    c.add_argument("-z", "--tasks", type=_pos, default=32, help="tasks of the async modes (32)")
    c.add_argument("--pool", type=_pool, default=(2, 16), metavar="LOOPSxTASKS",
                   help="AsyncPool loops x tasks per loop (2x16)")
    c.add_argument("--batch-size", type=_pos, default=128, help="keys per batch call (128)")
    c.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio",
                   help="event loop of the async modes, for every client (asyncio)")
    c.add_argument("--no-baseline", dest="baseline", action="store_false",
                   help="skip the pure-C baseline row")
    q = p.add_argument_group("peers")
    q.add_argument("--compare", type=_peers, nargs="?", const=list(PEERS), default=None,
                   metavar="PEERS",
                   help=f"also run the peers (comma list of {', '.join(PEERS)}; default all)")
    q.add_argument("--peer-python", default=sys.executable,
                   help="interpreter that has the peers installed (default: this one)")
    o = p.add_argument_group("output")
    o.add_argument("--json", metavar="FILE", help="write the results as JSON ('-' = stdout)")
    o.add_argument("--markdown", metavar="FILE",
                   help="write a markdown report, e.g. bench/results/NAME.md ('-' = stdout)")
    o.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    return p


def parse_args(argv: list[str]):
    opts = parser().parse_args(argv)
    opts.pool_loops, opts.pool_tasks = opts.pool
    if opts.repeats is None:
        opts.repeats = 3 if opts.compare else 1
    opts.bin = "b0"
    if opts.payload == "str" and opts.size < 0:
        parser().error("--size must be >= 0")
    return opts


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    opts = parse_args(argv)
    from . import report, runner
    result = runner.run(opts)
    summaries, meta = report.build(result, opts, argv)
    table = report.render_table(summaries, meta)
    if opts.json == "-":
        sys.stdout.write(report.to_json(summaries, meta, result["rows"]) + "\n")
    else:
        print(table)
        if opts.json:
            with open(opts.json, "w") as f:
                f.write(report.to_json(summaries, meta, result["rows"]) + "\n")
    if opts.markdown:
        md = report.to_markdown(summaries, meta)
        if opts.markdown == "-":
            sys.stdout.write(md)
        else:
            d = os.path.dirname(opts.markdown)
            if d:
                os.makedirs(d, exist_ok=True)
            with open(opts.markdown, "w") as f:
                f.write(md)
    failed = [s for s in summaries if s["status"] == "error"]
    return 1 if failed else 0
