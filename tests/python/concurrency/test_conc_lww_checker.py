"""The last-writer-wins checker of the concurrency tests (lww.py) catches
what it must: a lost acknowledged write, a write reported as not applied
that landed, a value never written, a read of another key's value.  No
server needed."""

from __future__ import annotations

import pytest

from lww import INF, Write, WriteLog

pytestmark = pytest.mark.timeout(10)


class _Err(Exception):
    def __init__(self, in_doubt):
        super().__init__("x")
        self.in_doubt = in_doubt
        self.result_code = 9


def _log(*writes):
    log = WriteLog()
    for key, token, start, end, outcome in writes:
        log.writes[key].append(Write(key, token, start, INF if outcome == "doubt" else end, outcome))
    return log


def test_accepts_last_acknowledged_write():
    log = _log(("k", ("a", 1), 0, 10, "ok"), ("k", ("b", 1), 20, 30, "ok"))
    log.check({"k": ("b", 1)})


def test_accepts_either_of_overlapping_writes():
    log = _log(("k", ("a", 1), 0, 30, "ok"), ("k", ("b", 1), 10, 20, "ok"))
    log.check({"k": ("a", 1)})
    log.check({"k": ("b", 1)})


def test_detects_lost_write():
    log = _log(("k", ("a", 1), 0, 10, "ok"), ("k", ("b", 1), 20, 30, "ok"))
    with pytest.raises(AssertionError, match="lost write"):
        log.check({"k": ("a", 1)})


def test_in_doubt_write_may_land_late():
    log = _log(("k", ("a", 1), 0, 10, "doubt"), ("k", ("b", 1), 20, 30, "ok"))
    log.check({"k": ("a", 1)})
    log.check({"k": ("b", 1)})


def test_detects_failed_write_that_landed():
    log = _log(("k", ("a", 1), 0, 10, "fail"), ("k", ("b", 1), 20, 30, "ok"))
    with pytest.raises(AssertionError, match="not applied"):
        log.check({"k": ("a", 1)})


def test_deletes():
    log = _log(("k", ("a", 1), 0, 10, "ok"), ("k", None, 20, 30, "ok"))
    log.check({"k": None})
    with pytest.raises(AssertionError, match="lost write"):
        log.check({"k": ("a", 1)})
    log2 = _log(("k", None, 0, 10, "ok"), ("k", ("a", 1), 20, 30, "ok"))
    with pytest.raises(AssertionError, match="record missing"):
        log2.check({"k": None})


def test_detects_foreign_values_and_reads():
    log = _log(("k", ("a", 1), 0, 10, "ok"))
    with pytest.raises(AssertionError, match="never written"):
        log.check({"k": ("z", 9)})
    log.read("k", ("z", 9))
    with pytest.raises(AssertionError, match="never written to that key"):
        log.check({"k": ("a", 1)})


def test_recording_api():
    log = WriteLog()
    w = log.begin("k", ("a", 1))
    log.end(w)
    w2 = log.begin("k", ("a", 2))
    log.end(w2, _Err(in_doubt=True))
    w3 = log.begin("k", ("a", 3))
    log.end(w3, _Err(in_doubt=False))
    assert (w.outcome, w2.outcome, w3.outcome) == ("ok", "doubt", "fail")
    assert w2.end == INF and log.acked() == 1
    log.check({"k": ("a", 2)})
    with pytest.raises(AssertionError):
        log.check({"k": ("a", 3)})


def test_write_block_records_each_outcome():
    from cspike import AerospikeError, TimeoutError as AsTimeout
    log = WriteLog()
    with log.write("k", ("a", 1)) as ok:
        pass
    with log.write("k", ("a", 2)) as doubt:
        raise AsTimeout("late", in_doubt=True)
    with log.write("k", ("a", 3)) as fail:
        raise AerospikeError("refused", result_code=13)
    with pytest.raises(ValueError):
        with log.write("k", ("a", 4)) as other:
            raise ValueError("not a database error")
    assert (ok.outcome, doubt.outcome, fail.outcome, other.outcome) == ("ok", "doubt", "fail", "pending")
    assert doubt.end == INF and ok.end != INF
    assert [w.token for w in log.writes["k"]] == [("a", 1), ("a", 2), ("a", 3), ("a", 4)]
