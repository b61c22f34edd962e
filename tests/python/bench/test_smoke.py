"""Smoke test of python -m cspike bench: every available mode for a second
against the embedded server (or $CSPIKE_TEST_HOSTS); the counts must add up
and nothing may fail.  One test function, so pytest-xdist never runs two
benches at once."""

import json
import os
import subprocess
import sys

from cspike.bench import main
from cspike.bench.clients import MODES
from cspike.bench.runner import WORKER, find_c_bench


def test_every_available_mode_adds_up(tmp_path):
    out, md = tmp_path / "smoke.json", tmp_path / "smoke.md"
    argv = ["--duration", "1", "--warmup", "0.2", "--keys", "2000", "--threads", "2",
            "--tasks", "8", "--pool", "2x4", "--batch-size", "16", "--quiet",
            "--json", str(out), "--markdown", str(md), "--set", "bench_smoke"]
    hosts = os.environ.get("CSPIKE_TEST_HOSTS", "").strip()
    if hosts:
        argv += ["--hosts", hosts]
    rc = main(argv)
    data = json.loads(out.read_text())
    rows = data["rows"]

    assert {r["mode"] for r in rows if r["client"] == "cspike"} == set(MODES)
    for r in rows:
        if r["status"] == "not available":
            assert r["reason"] and "ops_s" not in r
            continue
        assert r["status"] == "ok", (r["client"], r["mode"], r.get("reason"))
        for run in r["runs"]:
            what = (r["client"], r["mode"])
            assert run["ops"] > 0, what
            assert run["ops"] == run["reads"] + run["writes"], what
            assert run["errors"] == 0 and run["timeouts"] == 0, (what, run.get("first_error"))
            assert run["not_found"] == 0, what
            assert run["cpu_us_op"] > 0 and run["p50_us"] > 0, what
            assert run["p50_us"] <= run["p99_us"] <= run["p999_us"], what
            if not hosts:
                assert run["srv_cpu_us_op"] is not None, what
    by = {(r["client"], r["mode"]): r for r in rows}
    assert by[("cspike", "sync")]["status"] == "ok"
    assert by[("cspike", "async")]["status"] == "ok"
    assert rc == 0

    # The pure-C baseline rows, and the ratio of cspike to them.
    c_rows = [r for r in rows if r["client"] == "c"]
    assert {r["mode"] for r in c_rows} == {"sync", "async", "pool"}
    if find_c_bench():
        assert all(r["status"] == "ok" for r in c_rows)
        assert by[("cspike", "sync")]["py_over_c_cpu"] > 0
    else:
        assert all(r["status"] == "not available" for r in c_rows)

    text = md.read_text()
    assert text.startswith("# cspike bench") and "| sync | cspike |" in text


def test_worker_reports_unavailable_client():
    spec = {"client": "no-such-client", "mode": "sync", "seeds": "127.0.0.1:1"}
    p = subprocess.run([sys.executable, str(WORKER), json.dumps(spec)], capture_output=True,
                       text=True, timeout=120)
    events = [json.loads(line) for line in p.stdout.splitlines()]
    assert events[-1]["ev"] == "unavailable" and "no-such-client" in events[-1]["reason"]
